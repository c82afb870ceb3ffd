//! HTTP-dates (RFC 9110 §5.6.7).

use std::time::SystemTime;

/// Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime; RFC 9110
/// §5.6.7), in any letter case, and with a day name that does not match the date; `None` when
/// it is not one.
///
/// ```
/// use podium_cache_tower::policy::parse_http_date;
/// let a = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
/// assert!(a.is_some());
/// assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), a);
/// assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), a);
/// assert_eq!(parse_http_date("sun, 06 NOV 1994 08:49:37 gmt"), a);
/// assert_eq!(parse_http_date("Mon Nov  6 08:49:37 1994"), a, "a wrong day name");
/// assert_eq!(parse_http_date("yesterday"), None);
/// assert_eq!(parse_http_date("Sun, 31 Nov 1994 08:49:37 GMT"), None);
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
    if let Ok(date) = httpdate::parse_http_date(&out) {
        return Some(date);
    }
    // The day name repeats what the date says; a wrong one (`Thu Aug  8 … 2050`, a Monday)
    // does not void the date. RFC 9110 §5.6.7 asks recipients to parse all three forms and
    // gives the name no meaning of its own; the date is read with each name in turn.
    let (name, rest) = out.split_at(out.find(|c: char| !c.is_ascii_alphabetic())?);
    let days: &[&str] = if name.len() == 3 {
        &SHORT_DAYS
    } else {
        &LONG_DAYS
    };
    if !days.contains(&name) {
        return None;
    }
    days.iter()
        .find_map(|day| httpdate::parse_http_date(&format!("{day}{rest}")).ok())
}

const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

pub(crate) fn parse_date(value: &http::HeaderValue) -> Option<SystemTime> {
    value.to_str().ok().and_then(parse_http_date)
}
