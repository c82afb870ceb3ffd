//! HTTP-dates (RFC 9110 §5.6.7).

use std::time::SystemTime;

/// Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime; RFC 9110
/// §5.6.7), in any letter case; `None` when it is not one.
///
/// ```
/// use podium_cache_tower::policy::parse_http_date;
/// let a = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
/// assert!(a.is_some());
/// assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), a);
/// assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), a);
/// assert_eq!(parse_http_date("sun, 06 NOV 1994 08:49:37 gmt"), a);
/// assert_eq!(parse_http_date("yesterday"), None);
/// ```
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(date) = httpdate::parse_http_date(text) {
        return Some(date);
    }
    // Day and month names are case-insensitive (RFC 9110 §5.6.7): recase them and "GMT".
    let mut out = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            out.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            out.push(c);
            word_start = true;
        }
    }
    let out = out.replace("Gmt", "GMT");
    httpdate::parse_http_date(&out).ok()
}

pub(crate) fn parse_date(value: &http::HeaderValue) -> Option<SystemTime> {
    value.to_str().ok().and_then(parse_http_date)
}
