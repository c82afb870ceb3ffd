//! A stored entry rendered for one request: `304`, `206`/`416`, `HEAD`, `Age`.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::body::CacheBody;
use crate::entry::StoredResponse;
use crate::policy::{self};
use crate::range::requested_range;

/// Headers serving adds to the stored ones: `Age`, `Cache-Status`, `X-Cache`, and the
/// `Content-Length` the framework sets (or `Content-Range`). The detailed status headers are
/// for a few clients and may grow the map.
const SERVED_HEADERS: usize = 4;

/// Headers a `304 Not Modified` carries over from the stored response (RFC 9110 §15.4.5).
pub(crate) const NOT_MODIFIED_HEADERS: [header::HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// A response from a stored entry for a request with `request` headers: `304` when its
/// conditionals say the client's copy is current (RFC 9111 §4.3.2), `206`/`416` for a single
/// byte range of a `200` (RFC 9110 §14), no body for `HEAD`, and `Age` from the entry's current
/// age (RFC 9111 §4.2.3). `Age` is sent to every client: RFC 9111 §5.1 requires it on a
/// response a cache serves (unlike the status details, it is not opt-in).
/// `now_ms` is the caller's clock reading (one per request).
pub(crate) fn render<B>(
    entry: &StoredResponse,
    head: bool,
    request: &HeaderMap,
    now_ms: u64,
) -> Response<CacheBody<B>> {
    let age = age_value(entry.age_ms(now_ms) / 1000);
    if entry.status.is_success() && not_modified(entry, request) {
        let mut headers = HeaderMap::with_capacity(NOT_MODIFIED_HEADERS.len() + 1);
        for name in NOT_MODIFIED_HEADERS {
            for value in entry.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(header::AGE, age);
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return response;
    }
    // Made with room for what serving adds: a clone of the stored map has none, and grew
    // (a reallocation and a copy) once or twice on every hit.
    let mut headers = HeaderMap::with_capacity(entry.headers.len() + SERVED_HEADERS);
    headers.extend(
        entry
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    headers.insert(header::AGE, age);
    let mut status = entry.status;
    let body = if head {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        CacheBody::empty()
    } else {
        match requested_range(entry, request) {
            None => CacheBody::full(entry.body.clone()),
            Some(Ok((first, last))) => {
                status = StatusCode::PARTIAL_CONTENT;
                let range = format!("bytes {first}-{last}/{}", entry.body.len());
                if let Ok(value) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                CacheBody::full(entry.body.slice(first..=last))
            }
            Some(Err(())) => {
                status = StatusCode::RANGE_NOT_SATISFIABLE;
                let range = format!("bytes */{}", entry.body.len());
                if let Ok(value) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                CacheBody::empty()
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Ages below this are sent from [`AGE_DIGITS`].
const AGE_TABLE: u64 = 10_000;

/// The decimal digits of every number below [`AGE_TABLE`], back to back (`0123…9101112…`).
static AGE_DIGITS: [u8; 38_890] = age_digits();

const fn age_digits() -> [u8; 38_890] {
    let mut out = [0u8; 38_890];
    let mut n = 0;
    while n < AGE_TABLE {
        let (start, width) = age_span(n);
        let mut value = n;
        let mut i = width;
        while i > 0 {
            i -= 1;
            out[start + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        n += 1;
    }
    out
}

/// Where `n`'s digits sit in [`AGE_DIGITS`], and how many there are (`n` < [`AGE_TABLE`]).
const fn age_span(n: u64) -> (usize, usize) {
    let n = n as usize;
    match n {
        0..10 => (n, 1),
        10..100 => (10 + (n - 10) * 2, 2),
        100..1000 => (190 + (n - 100) * 3, 3),
        _ => (2890 + (n - 1000) * 4, 4),
    }
}

/// The `Age` value for `secs`: below [`AGE_TABLE`] a view of static digits (no allocation to
/// make it, no reference count to send and drop it: this runs on every hit), else formatted.
pub(crate) fn age_value(secs: u64) -> HeaderValue {
    if secs < AGE_TABLE {
        let (start, width) = age_span(secs);
        if let Some(digits) = AGE_DIGITS.get(start..start + width) {
            if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from_static(digits)) {
                return value;
            }
        }
    }
    HeaderValue::from(secs)
}

/// Whether the client's conditionals match the entry: `If-None-Match` (weak comparison), or
/// without it `If-Modified-Since` against the entry's `Last-Modified` (else its `Date`, else
/// when it arrived), RFC 9111 §4.3.2.
pub(crate) fn not_modified(entry: &StoredResponse, request: &HeaderMap) -> bool {
    if let Some(if_none_match) = request.get(header::IF_NONE_MATCH) {
        return entry.matches_if_none_match(if_none_match);
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(policy::parse_http_date)
    else {
        return false;
    };
    let modified = entry
        .headers
        .get(header::LAST_MODIFIED)
        .or_else(|| entry.headers.get(header::DATE))
        .and_then(|v| v.to_str().ok())
        .and_then(policy::parse_http_date)
        .unwrap_or_else(|| {
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(entry.stored_at_ms)
        });
    modified <= since
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_values_are_the_decimal_seconds_from_the_table_and_beyond_it() {
        for secs in [
            0, 7, 9, 10, 42, 99, 100, 321, 999, 1000, 4321, 9999, 10_000, 86_400,
        ] {
            assert_eq!(
                age_value(secs).to_str().ok(),
                Some(secs.to_string().as_str())
            );
        }
        for secs in 0..AGE_TABLE {
            assert_eq!(age_value(secs), HeaderValue::from(secs), "{secs}");
        }
    }
}
