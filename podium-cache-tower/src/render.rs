//! A stored entry rendered for one request: `304`, `206`/`416`, `HEAD`, `Age`.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::body::CacheBody;
use crate::entry::StoredResponse;
use crate::policy::{self};
use crate::range::requested_range;

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
    let age = HeaderValue::from(entry.age_ms(now_ms) / 1000);
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
    let mut headers = entry.headers.clone();
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
