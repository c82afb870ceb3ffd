//! The stored form of a record's data key: a small header, then the model's JSON.
//!
//! Every place that writes or reads a data key goes through [`encode`] and [`decode`] (fills,
//! upserts, removals, the sweep), so the header is what the read path needs to decide, without
//! parsing the JSON, whether a record is fresh, due for an early refresh (XFetch) or only
//! servable as stale while the source fails:
//!
//! ```text
//! byte  0       format version (1)
//! bytes 1..9    stored at: ms since the Unix epoch (i64, big-endian)
//! bytes 9..17   logical expiry: ms since the Unix epoch (i64, big-endian)
//! bytes 17..21  fetch delta: how long the source call that produced it took, ms (u32, BE)
//! bytes 21..    the model's JSON
//! ```
//!
//! The store keeps the key past its logical expiry by the stale-if-error window, so an expired
//! value is still there to serve when the source fails. Anything else under a data key (an
//! older format, the plain JSON of earlier versions, garbage) decodes as an error, which the
//! engine treats as a miss and refetches: never a panic.
//!
//! The format is the crate's own: nothing outside it reads or writes these bytes (the tower
//! crate stores its responses in a format of its own).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::clock::now_ms;
use super::Cache;

/// The format version this module writes (the first byte of every entry).
pub(crate) const VERSION: u8 = 1;
/// Bytes before the JSON.
pub(crate) const HEADER_LEN: usize = 21;
/// The fetch delta assumed for a record stored without a source call of its own (a webhook
/// delivery for a record not cached before): a typical Airtable call.
pub(crate) const ASSUMED_FETCH_MS: u32 = 250;

/// What the header of a stored record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    /// When it was stored, ms since the Unix epoch.
    pub(crate) stored_at_ms: i64,
    /// When it stops being fresh, ms since the Unix epoch.
    pub(crate) expires_at_ms: i64,
    /// How long the source call that produced it took, ms (XFetch's delta).
    pub(crate) fetch_ms: u32,
}

/// A decoded data key: the header and the model's JSON (a view into the stored bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    /// The header.
    pub(crate) header: EntryHeader,
    /// The model's JSON.
    pub(crate) json: Bytes,
}

/// Why stored bytes are not an entry (the engine treats it as a miss).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EntryError {
    /// The first byte is not a format version this build reads (e.g. the plain JSON of an
    /// earlier version starts with `{`).
    #[error("stored entry of unknown format (first byte {0:#04x})")]
    UnknownFormat(u8),
    /// Shorter than the header.
    #[error("stored entry truncated to {0} bytes")]
    Truncated(usize),
}

impl EntryHeader {
    /// Whether the record is still fresh at `now_ms`.
    pub(crate) fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Whether an expired record may still be served at `now_ms` while the source fails:
    /// within `window` past its expiry.
    pub(crate) fn is_stale_servable(&self, now_ms: i64, window: Duration) -> bool {
        now_ms < self.expires_at_ms.saturating_add(millis(window))
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein: "Optimal Probabilistic Cache Stampede
    /// Prevention"): refresh now if `now − delta · β · ln(draw) ≥ expiry`, where `draw` is
    /// uniform in (0, 1] and delta the fetch time. The closer the expiry, the likelier; the
    /// slower the fetch, the earlier. With many readers, one of them refreshes shortly before
    /// the expiry and nobody waits; a key read once an hour is practically never refreshed
    /// early. β = 0, or an unknown delta, never refreshes early.
    pub(crate) fn refresh_early(&self, now_ms: i64, beta: f64, draw: f64) -> bool {
        if beta <= 0.0 || self.fetch_ms == 0 || !beta.is_finite() {
            return false;
        }
        let draw = if draw > 0.0 && draw <= 1.0 {
            draw
        } else {
            f64::MIN_POSITIVE
        };
        let ahead_ms = -f64::from(self.fetch_ms) * beta * draw.ln();
        (now_ms as f64) + ahead_ms >= self.expires_at_ms as f64
    }
}

/// The stored bytes of a record: header, then `json`.
pub(crate) fn encode(header: &EntryHeader, json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + json.len());
    out.put_u8(VERSION);
    out.put_i64(header.stored_at_ms);
    out.put_i64(header.expires_at_ms);
    out.put_u32(header.fetch_ms);
    out.put_slice(json);
    out.freeze()
}

/// Reads stored bytes written by [`encode`]; the JSON is a view into `raw`, not a copy.
pub(crate) fn decode(raw: &Bytes) -> Result<StoredEntry, EntryError> {
    let Some(&version) = raw.first() else {
        return Err(EntryError::Truncated(0));
    };
    if version != VERSION {
        return Err(EntryError::UnknownFormat(version));
    }
    let header = raw
        .get(1..HEADER_LEN)
        .ok_or(EntryError::Truncated(raw.len()))?;
    let (stored_at, rest) = header.split_at(8);
    let (expires_at, fetch) = rest.split_at(8);
    let i64_at = |b: &[u8]| <[u8; 8]>::try_from(b).map(i64::from_be_bytes);
    let u32_at = |b: &[u8]| <[u8; 4]>::try_from(b).map(u32::from_be_bytes);
    match (i64_at(stored_at), i64_at(expires_at), u32_at(fetch)) {
        (Ok(stored_at_ms), Ok(expires_at_ms), Ok(fetch_ms)) => Ok(StoredEntry {
            header: EntryHeader {
                stored_at_ms,
                expires_at_ms,
                fetch_ms,
            },
            json: raw.slice(HEADER_LEN..),
        }),
        _ => Err(EntryError::Truncated(raw.len())),
    }
}

/// Whole milliseconds of `duration`, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whole milliseconds of `duration` as a fetch delta, saturating.
pub(crate) fn fetch_millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

impl Cache {
    /// A record's data entry as stored now: the header (fresh for the data TTL, jittered) and
    /// `json`, and the store TTL, which keeps it the stale-if-error window longer.
    pub(crate) fn data_entry(&self, json: &[u8], fetch_ms: u32) -> (Bytes, Duration) {
        let ttl = self.jittered(self.inner.config.data_ttl);
        let now = now_ms();
        let header = EntryHeader {
            stored_at_ms: now,
            expires_at_ms: now.saturating_add(millis(ttl)),
            fetch_ms,
        };
        (
            encode(&header, json),
            ttl.saturating_add(self.inner.config.stale_if_error),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_header_and_json() {
        let header = EntryHeader {
            stored_at_ms: 1_764_098_645_123,
            expires_at_ms: 1_764_127_445_123,
            fetch_ms: u32::MAX,
        };
        let raw = encode(&header, b"{}");
        assert_eq!(raw.len(), HEADER_LEN + 2);
        let entry = decode(&raw).expect("entry");
        assert_eq!(entry.header, header);
        assert_eq!(&entry.json[..], b"{}");
        let expiry = header.expires_at_ms;
        assert!(entry.header.is_fresh(expiry - 1) && !entry.header.is_fresh(expiry));
    }

    #[test]
    fn old_unknown_and_truncated_formats_are_errors_not_panics() {
        assert_eq!(
            decode(&Bytes::from_static(br#"{"id":"recA"}"#)),
            Err(EntryError::UnknownFormat(b'{'))
        );
        assert_eq!(decode(&Bytes::new()), Err(EntryError::Truncated(0)));
        assert_eq!(
            decode(&Bytes::from_static(&[VERSION, 0, 0, 0])),
            Err(EntryError::Truncated(4))
        );
        assert_eq!(
            decode(&Bytes::from_static(&[2; 40])),
            Err(EntryError::UnknownFormat(2))
        );
        // A bare header is an entry with empty JSON (which then fails the model, a miss).
        let bare = encode(
            &EntryHeader {
                stored_at_ms: 0,
                expires_at_ms: 0,
                fetch_ms: 0,
            },
            b"",
        );
        assert!(decode(&bare).expect("entry").json.is_empty());
    }

    #[test]
    fn early_refresh_gets_likelier_towards_the_expiry() {
        let header = EntryHeader {
            stored_at_ms: 0,
            expires_at_ms: 100_000,
            fetch_ms: 200,
        };
        let share = |now: i64| {
            let draws = 10_000;
            (1..=draws)
                .filter(|i| header.refresh_early(now, 1.0, f64::from(*i) / f64::from(draws)))
                .count()
        };
        // P(refresh) = exp(-remaining / (delta·β)).
        let at_two_deltas = share(100_000 - 400);
        let at_half_delta = share(100_000 - 100);
        assert!(at_two_deltas < at_half_delta);
        assert!((1_200..1_500).contains(&at_two_deltas), "{at_two_deltas}");
        assert!((5_900..6_200).contains(&at_half_delta), "{at_half_delta}");
        assert_eq!(share(100_000), 10_000, "expired: always");
        assert_eq!(share(0), 0, "long before: never");
    }

    #[test]
    fn stale_is_servable_only_within_the_window_past_the_expiry() {
        let header = EntryHeader {
            stored_at_ms: 0,
            expires_at_ms: 1_000,
            fetch_ms: 0,
        };
        assert!(header.is_stale_servable(1_500, Duration::from_secs(1)));
        assert!(!header.is_stale_servable(2_000, Duration::from_secs(1)));
        assert!(!header.is_stale_servable(1_500, Duration::ZERO));
    }

    #[test]
    fn early_refresh_follows_xfetch_at_one_delta_before_the_expiry() {
        let header = EntryHeader {
            stored_at_ms: 0,
            expires_at_ms: 10_000,
            fetch_ms: 100,
        };
        // 100 ms before expiry: a draw of 0.5 gives 100·ln 2 ≈ 69 ms, not yet; 0.1 gives 230 ms.
        assert!(!header.refresh_early(9_900, 1.0, 0.5));
        assert!(header.refresh_early(9_900, 1.0, 0.1));
        // Ten seconds (a hundred deltas) before expiry, practically never; β = 0 never.
        assert!(!header.refresh_early(0, 1.0, 1e-12));
        assert!(!header.refresh_early(9_999, 0.0, 1e-12));
    }
}
