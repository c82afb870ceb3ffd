//! The stored form of a response: a small binary layout under `keys.http(request_key)`.
//!
//! ```text
//! "PH" version:u8 kind:u8
//! kind 0 (response): status:u16 stored_at_ms:u64 initial_age_ms:u64 ttl_ms:u64 swr_ms:u64
//!                    sie_ms:u64 keep_ms:u64 flags:u8 etag:(u16 len, bytes) vary:(u16 count, (u16 len, name)*)
//!                    headers:(u16 count, (u16 len, name, u32 len, value)*) body:(u32 len, bytes)
//! kind 1 (vary marker): vary:(u16 count, (u16 len, name)*)
//! ```
//!
//! `stored_at_ms` is the response time, `initial_age_ms` the corrected initial age (RFC 9111
//! §4.2.3); `flags`: 1 must-revalidate, 2 no-cache, 4 the `ETag` was made by the layer.
//! All integers are big-endian. A response whose request key has variants (`Vary`) is stored
//! under the variant's key, and a vary marker naming the varied headers under the plain key.
//! Decoding never copies the body: it is a slice of the stored bytes.
//!
//! Why not core's record entry header ([`podium_cache_core::cache::entry`]: version, stored
//! at, logical expiry, fetch delta, then JSON): the two formats share only "a version byte and
//! a time stored", and what follows answers different questions. A record's header serves
//! XFetch (an absolute expiry and the fetch delta); a response's must compute RFC 9111 §4.2.3
//! age and §4.2 freshness at every use (the origin's corrected initial age, a lifetime, the
//! stale-while-revalidate, stale-if-error and validation windows, `must-revalidate`/`no-cache`)
//! and carry a status, headers and `Vary` names. Both read the one clock of entries shared
//! between instances, core's [`now_ms`](podium_cache_core::cache::now_ms) (here as unsigned
//! milliseconds, what the age arithmetic of RFC 9111 uses), and the stamps this crate keeps
//! as counters are parsed by core's [`Dependents::parse_sequence`](podium_cache_core::cache::Dependents::parse_sequence).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::policy::Freshness;

const MAGIC: &[u8; 2] = b"PH";
const VERSION: u8 = 2;
const MUST_REVALIDATE: u8 = 1;
const NO_CACHE: u8 = 2;
const GENERATED_ETAG: u8 = 4;
const KIND_RESPONSE: u8 = 0;
const KIND_VARY: u8 = 1;
/// A stored entry could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// It does not start with this layout's magic and version.
    #[error("not a stored response (bad magic or version)")]
    Format,
    /// It ends early.
    #[error("stored response is truncated")]
    Truncated,
    /// A field holds something HTTP does not allow.
    #[error("stored response has an invalid {0}")]
    Invalid(&'static str),
    /// A field is longer than the layout can hold.
    #[error("response {0} is too large to store")]
    TooLarge(&'static str),
}

/// Headers never stored: hop-by-hop ones and those the layer computes per response. (A
/// response with `Set-Cookie` is stored only in the standards mode, cookie and all, RFC 9111
/// §3.1.)
fn is_stored_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "age"
            | "content-length"
            | "cache-status"
            | "x-cache"
            | "x-cache-hits"
            | "x-cache-misses"
            | "x-airtable-calls"
    )
}

/// What one key of the layer holds.
#[derive(Clone, Debug)]
pub(crate) enum Stored {
    /// A response.
    Response(Arc<StoredResponse>),
    /// The plain key of a response that varies on these (lower-cased) request headers.
    Vary(Vec<String>),
}

/// A stored response.
#[derive(Clone, Debug)]
pub(crate) struct StoredResponse {
    pub status: StatusCode,
    /// When the response arrived (RFC 9111 §4.2.3 `response_time`).
    pub stored_at_ms: u64,
    /// Its corrected initial age (RFC 9111 §4.2.3).
    pub initial_age_ms: u64,
    /// Its freshness lifetime.
    pub ttl_ms: u64,
    pub swr_ms: u64,
    /// Its stale-if-error window (RFC 5861 §4).
    pub sie_ms: u64,
    /// How long past freshness it is kept to be validated.
    pub keep_ms: u64,
    pub must_revalidate: bool,
    pub no_cache: bool,
    /// The `ETag` was made by the layer (the origin cannot validate it).
    pub generated_etag: bool,
    pub etag: HeaderValue,
    pub vary: Vec<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Milliseconds since the Unix epoch: core's clock (entries are shared between instances).
pub(crate) fn now_ms() -> u64 {
    u64::try_from(podium_cache_core::cache::now_ms()).unwrap_or(0)
}

/// A strong validator from the body: `"` + 32 hex digits of its SHA-256 + `"`.
pub(crate) fn strong_etag(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let text = format!("\"{}\"", hex::encode(&digest[..16]));
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// How an entry stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    /// Within its freshness lifetime.
    Fresh,
    /// Past it, within its stale-while-revalidate window.
    Stale,
    /// Past both.
    Expired,
}

impl StoredResponse {
    /// A response to store that arrived at `response_time_ms` with the corrected initial age
    /// `initial_age_ms`. Keeps the service's `ETag` or adds a strong one.
    pub fn new(
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        freshness: &Freshness,
        times: (u64, u64),
        vary: Vec<String>,
    ) -> Self {
        let (response_time_ms, initial_age_ms) = times;
        headers.retain_stored();
        let (etag, generated_etag) = match headers.get(header::ETAG) {
            Some(etag) => (etag.clone(), false),
            None => {
                let etag = strong_etag(&body);
                headers.insert(header::ETAG, etag.clone());
                (etag, true)
            }
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            status,
            stored_at_ms: response_time_ms,
            initial_age_ms,
            ttl_ms: ms(freshness.ttl),
            swr_ms: ms(freshness.stale_while_revalidate),
            sie_ms: ms(freshness.stale_if_error),
            keep_ms: ms(freshness.keep),
            must_revalidate: freshness.must_revalidate,
            no_cache: freshness.no_cache,
            generated_etag,
            etag,
            vary,
            headers,
            body,
        }
    }

    /// Its current age in milliseconds (RFC 9111 §4.2.3): corrected initial age plus resident
    /// time.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        self.initial_age_ms
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// Fresh, stale but servable while revalidated (stale-while-revalidate), or in need of
    /// validation, at `now_ms`.
    pub fn age(&self, now_ms: u64) -> Age {
        let age = self.age_ms(now_ms);
        if self.no_cache {
            Age::Expired
        } else if age < self.ttl_ms {
            Age::Fresh
        } else if !self.must_revalidate && age < self.ttl_ms.saturating_add(self.swr_ms) {
            Age::Stale
        } else {
            Age::Expired
        }
    }

    /// Milliseconds past its freshness lifetime (0 while fresh).
    pub fn staleness_ms(&self, now_ms: u64) -> u64 {
        self.age_ms(now_ms).saturating_sub(self.ttl_ms)
    }

    /// Whether it may answer when the origin failed (RFC 5861 §4 stale-if-error): within its
    /// own window, or within the one the request gives (`request_sie`, seconds); never when it
    /// must be revalidated (RFC 9111 §5.2.2.2).
    pub fn usable_on_error(&self, now_ms: u64, request_sie: Option<u64>) -> bool {
        let window = request_sie.map_or(0, |s| s.saturating_mul(1000));
        !self.must_revalidate
            && !self.no_cache
            && self.staleness_ms(now_ms) <= self.sie_ms.max(window)
    }

    /// Remaining freshness in whole seconds (negative once stale), for `Cache-Status: ttl=`.
    pub fn remaining_secs(&self, now_ms: u64) -> i64 {
        let ttl = i128::from(self.ttl_ms);
        let age = i128::from(self.age_ms(now_ms));
        i64::try_from((ttl - age).div_euclid(1000)).unwrap_or(0)
    }

    /// How long the store keeps it: what is left of its lifetime plus the longest of its
    /// stale windows, at most `cap`.
    pub fn store_ttl(&self, cap: Duration) -> Duration {
        let fresh_left = self.ttl_ms.saturating_sub(self.initial_age_ms);
        let after = self.swr_ms.max(self.sie_ms).max(self.keep_ms);
        Duration::from_millis(fresh_left.saturating_add(after)).min(cap)
    }

    /// The validators the origin can answer a conditional request on: its own `ETag` and
    /// `Last-Modified` (RFC 9111 §4.3.1).
    pub fn origin_validators(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        let etag = (!self.generated_etag).then_some(&self.etag);
        (etag, self.headers.get(header::LAST_MODIFIED))
    }

    /// Whether a `200` to a `HEAD` describes this stored response (RFC 9111 §4.3.5): its
    /// `ETag`, `Last-Modified` and `Content-Length`, where it sends them, are the stored ones.
    pub fn same_representation(&self, head: &HeaderMap) -> bool {
        let etag_same = head
            .get(header::ETAG)
            .is_none_or(|tag| !self.generated_etag && *tag == self.etag);
        let modified_same = head
            .get(header::LAST_MODIFIED)
            .is_none_or(|m| self.headers.get(header::LAST_MODIFIED) == Some(m));
        let length_same = head.get(header::CONTENT_LENGTH).is_none_or(|len| {
            len.to_str()
                .ok()
                .and_then(|l| l.trim().parse::<usize>().ok())
                == Some(self.body.len())
        });
        etag_same && modified_same && length_same
    }

    /// Whether an `If-None-Match` field matches this entry (weak comparison, RFC 9110 §13.1.2).
    pub fn matches_if_none_match(&self, if_none_match: &HeaderValue) -> bool {
        let Ok(list) = if_none_match.to_str() else {
            return false;
        };
        let mine = opaque_tag(self.etag.as_bytes());
        list.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || (!candidate.is_empty() && opaque_tag(candidate.as_bytes()) == mine)
        })
    }

    /// Encodes it.
    pub fn encode(&self) -> Result<Bytes, EntryError> {
        let mut out = BytesMut::with_capacity(64 + self.body.len() + 32 * self.headers.len());
        out.put_slice(MAGIC);
        out.put_u8(VERSION);
        out.put_u8(KIND_RESPONSE);
        out.put_u16(self.status.as_u16());
        out.put_u64(self.stored_at_ms);
        out.put_u64(self.initial_age_ms);
        out.put_u64(self.ttl_ms);
        out.put_u64(self.swr_ms);
        out.put_u64(self.sie_ms);
        out.put_u64(self.keep_ms);
        let mut flags = 0;
        if self.must_revalidate {
            flags |= MUST_REVALIDATE;
        }
        if self.no_cache {
            flags |= NO_CACHE;
        }
        if self.generated_etag {
            flags |= GENERATED_ETAG;
        }
        out.put_u8(flags);
        put_short(&mut out, self.etag.as_bytes(), "etag")?;
        put_names(&mut out, &self.vary)?;
        let count =
            u16::try_from(self.headers.len()).map_err(|_| EntryError::TooLarge("header count"))?;
        out.put_u16(count);
        for (name, value) in &self.headers {
            put_short(&mut out, name.as_str().as_bytes(), "header name")?;
            put_long(&mut out, value.as_bytes(), "header value")?;
        }
        put_long(&mut out, &self.body, "body")?;
        Ok(out.freeze())
    }
}

/// Encodes a vary marker.
pub(crate) fn encode_vary(names: &[String]) -> Result<Bytes, EntryError> {
    let mut out = BytesMut::with_capacity(8 + 24 * names.len());
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(KIND_VARY);
    put_names(&mut out, names)?;
    Ok(out.freeze())
}

/// Decodes what [`StoredResponse::encode`] or [`encode_vary`] wrote.
pub(crate) fn decode(raw: Bytes) -> Result<Stored, EntryError> {
    let mut r = Reader { buf: raw };
    if r.take(2)?.as_ref() != MAGIC || r.u8()? != VERSION {
        return Err(EntryError::Format);
    }
    match r.u8()? {
        KIND_VARY => Ok(Stored::Vary(r.names()?)),
        KIND_RESPONSE => {
            let status =
                StatusCode::from_u16(r.u16()?).map_err(|_| EntryError::Invalid("status"))?;
            let stored_at_ms = r.u64()?;
            let initial_age_ms = r.u64()?;
            let ttl_ms = r.u64()?;
            let swr_ms = r.u64()?;
            let sie_ms = r.u64()?;
            let keep_ms = r.u64()?;
            let flags = r.u8()?;
            let etag_len = usize::from(r.u16()?);
            let etag = HeaderValue::from_maybe_shared(r.take(etag_len)?)
                .map_err(|_| EntryError::Invalid("etag"))?;
            let vary = r.names()?;
            let count = usize::from(r.u16()?);
            // Served responses get a map of their own with room to add to (`render`).
            let mut headers = HeaderMap::with_capacity(count);
            for _ in 0..count {
                let name_len = usize::from(r.u16()?);
                let name = HeaderName::from_bytes(&r.take(name_len)?)
                    .map_err(|_| EntryError::Invalid("header name"))?;
                let value_len = r.len32()?;
                let value = HeaderValue::from_maybe_shared(r.take(value_len)?)
                    .map_err(|_| EntryError::Invalid("header value"))?;
                headers.append(name, value);
            }
            let body_len = r.len32()?;
            let body = r.take(body_len)?;
            Ok(Stored::Response(Arc::new(StoredResponse {
                status,
                stored_at_ms,
                initial_age_ms,
                ttl_ms,
                swr_ms,
                sie_ms,
                keep_ms,
                must_revalidate: flags & MUST_REVALIDATE != 0,
                no_cache: flags & NO_CACHE != 0,
                generated_etag: flags & GENERATED_ETAG != 0,
                etag,
                vary,
                headers,
                body,
            })))
        }
        _ => Err(EntryError::Format),
    }
}

/// The opaque part of an entity tag, without a weak prefix (for weak comparison).
fn opaque_tag(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

trait RetainStored {
    fn retain_stored(&mut self);
}

impl RetainStored for HeaderMap {
    fn retain_stored(&mut self) {
        let drop: Vec<HeaderName> = self
            .keys()
            .filter(|name| !is_stored_header(name))
            .cloned()
            .collect();
        for name in drop {
            self.remove(name);
        }
    }
}

fn put_short(out: &mut BytesMut, bytes: &[u8], what: &'static str) -> Result<(), EntryError> {
    let len = u16::try_from(bytes.len()).map_err(|_| EntryError::TooLarge(what))?;
    out.put_u16(len);
    out.put_slice(bytes);
    Ok(())
}

fn put_long(out: &mut BytesMut, bytes: &[u8], what: &'static str) -> Result<(), EntryError> {
    let len = u32::try_from(bytes.len()).map_err(|_| EntryError::TooLarge(what))?;
    out.put_u32(len);
    out.put_slice(bytes);
    Ok(())
}

fn put_names(out: &mut BytesMut, names: &[String]) -> Result<(), EntryError> {
    let count = u16::try_from(names.len()).map_err(|_| EntryError::TooLarge("vary"))?;
    out.put_u16(count);
    for name in names {
        put_short(out, name.as_bytes(), "vary name")?;
    }
    Ok(())
}

struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), EntryError> {
        if self.buf.remaining() < n {
            Err(EntryError::Truncated)
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8, EntryError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    fn u16(&mut self) -> Result<u16, EntryError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }
    fn len32(&mut self) -> Result<usize, EntryError> {
        self.need(4)?;
        usize::try_from(self.buf.get_u32()).map_err(|_| EntryError::Truncated)
    }
    fn u64(&mut self) -> Result<u64, EntryError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }
    fn take(&mut self, n: usize) -> Result<Bytes, EntryError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }
    fn names(&mut self) -> Result<Vec<String>, EntryError> {
        let count = usize::from(self.u16()?);
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(self.u16()?);
            let raw = self.take(len)?;
            let name = std::str::from_utf8(&raw).map_err(|_| EntryError::Invalid("vary name"))?;
            names.push(name.to_owned());
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("x-cache", HeaderValue::from_static("HIT"));
        StoredResponse::new(
            StatusCode::NOT_FOUND,
            headers,
            Bytes::from_static(b"{\"error\":\"not found\"}"),
            &Freshness {
                ttl: Duration::from_secs(60),
                stale_while_revalidate: Duration::from_secs(5),
                stale_if_error: Duration::from_secs(7),
                keep: Duration::ZERO,
                must_revalidate: false,
                no_cache: false,
            },
            (now_ms(), 0),
            vec!["accept".into()],
        )
    }

    #[test]
    fn a_response_round_trips_without_hop_by_hop_or_status_headers() {
        let entry = sample();
        let raw = entry.encode().unwrap_or_default();
        let Ok(Stored::Response(back)) = decode(raw) else {
            panic!("did not decode as a response");
        };
        assert_eq!(back.status, StatusCode::NOT_FOUND);
        assert_eq!(back.body, entry.body);
        assert_eq!(back.ttl_ms, 60_000);
        assert_eq!(back.swr_ms, 5_000);
        assert_eq!(back.sie_ms, 7_000);
        assert!(back.generated_etag);
        assert_eq!(back.vary, vec!["accept".to_string()]);
        assert_eq!(back.etag, entry.etag);
        let multi: Vec<_> = back.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, vec!["a", "b"]);
        assert!(back.headers.get("connection").is_none());
        assert!(back.headers.get("x-cache").is_none());
        assert_eq!(back.headers.get("etag"), Some(&entry.etag));
    }

    #[test]
    fn a_vary_marker_round_trips() {
        let raw = encode_vary(&["accept-language".into()]).unwrap_or_default();
        assert!(matches!(decode(raw), Ok(Stored::Vary(names)) if names == ["accept-language"]));
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let raw = sample().encode().unwrap_or_default();
        for cut in 0..raw.len() {
            assert!(decode(raw.slice(..cut)).is_err(), "cut at {cut}");
        }
        assert!(matches!(
            decode(Bytes::from_static(b"XX\x01\x00")),
            Err(EntryError::Format)
        ));
    }

    #[test]
    fn the_generated_etag_is_strong_and_answers_if_none_match() {
        let entry = sample();
        assert!(entry.etag.as_bytes().starts_with(b"\""));
        assert!(entry.matches_if_none_match(&entry.etag));
        let weak = HeaderValue::from_str(&format!(
            "\"other\", W/{}",
            entry.etag.to_str().unwrap_or_default()
        ))
        .unwrap_or(HeaderValue::from_static("x"));
        assert!(entry.matches_if_none_match(&weak));
        assert!(!entry.matches_if_none_match(&HeaderValue::from_static("\"other\"")));
        assert!(entry.matches_if_none_match(&HeaderValue::from_static("*")));
    }

    #[test]
    fn freshness_moves_from_fresh_to_stale_to_expired() {
        let entry = sample();
        let t0 = entry.stored_at_ms;
        assert_eq!(entry.age(t0 + 59_999), Age::Fresh);
        assert_eq!(entry.age(t0 + 60_000), Age::Stale);
        assert_eq!(entry.age(t0 + 65_000), Age::Expired);
        assert_eq!(entry.remaining_secs(t0 + 1_500), 58);
        assert_eq!(entry.remaining_secs(t0 + 61_000), -1);
    }
}
