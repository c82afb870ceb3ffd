//! Byte ranges answered from a stored response (RFC 9110 §14).

use http::header::{self};
use http::{HeaderMap, StatusCode};

use crate::entry::StoredResponse;

/// The single byte range a request asks of a stored `200` (`None`: answer in full: no
/// `Range`, several ranges, another unit, a syntax error, or an `If-Range` that does not
/// match); `Err` when it cannot be satisfied (RFC 9110 §14.2, §13.1.5).
pub(crate) fn requested_range(
    entry: &StoredResponse,
    request: &HeaderMap,
) -> Option<Result<(usize, usize), ()>> {
    if entry.status != StatusCode::OK {
        return None;
    }
    let spec = request.get(header::RANGE)?.to_str().ok()?.trim();
    if let Some(if_range) = request.get(header::IF_RANGE) {
        let if_range = if_range.to_str().ok()?.trim();
        let matches = if if_range.starts_with('"') {
            // A strong comparison: a weak tag never matches.
            !entry.etag.as_bytes().starts_with(b"W/")
                && entry.etag.as_bytes() == if_range.as_bytes()
        } else {
            entry
                .headers
                .get(header::LAST_MODIFIED)
                .is_some_and(|m| m.as_bytes() == if_range.as_bytes())
        };
        if !matches {
            return None;
        }
    }
    let (unit, set) = spec.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let len = entry.body.len();
    let (first, last) = set.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let first: usize = first.parse().ok()?;
        let last = if last.is_empty() {
            usize::MAX
        } else {
            last.parse().ok()?
        };
        if last < first {
            return None;
        }
        if first >= len {
            return Some(Err(()));
        }
        (first, last.min(len - 1))
    };
    Some(Ok(range))
}
