//! `Vary` (RFC 9111 §4.1): the response's names and the request's normalised values.

use http::header::VARY;
use http::HeaderMap;

/// The `Vary` of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Vary {
    /// No `Vary` (or an empty one).
    None,
    /// `Vary: *`: never served from a cache.
    All,
    /// The (lower-cased, sorted, deduplicated) request header names.
    Names(Vec<String>),
}

/// Reads the `Vary` fields of a response.
pub(crate) fn vary(headers: &HeaderMap) -> Vary {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(text) = value.to_str() else {
            return Vary::All;
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Vary::All;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        Vary::None
    } else {
        Vary::Names(names)
    }
}

/// The key of the variant of `key` that `request` selects among responses varying on `names`.
pub(crate) fn variant_key(key: &str, names: &[String], request: &HeaderMap) -> String {
    let mut out = String::with_capacity(key.len() + 32 * names.len());
    out.push_str(key);
    for name in names {
        out.push_str("\nvary:");
        out.push_str(name);
        out.push('=');
        out.push_str(&vary_value(request, name));
    }
    out
}

/// The value a request has for a header a response varies on, normalised as RFC 9111 §4.1
/// allows: its field lines combined, list members trimmed and separated by `", "`, inner runs
/// of whitespace collapsed, and lower-cased for the fields whose values are case-insensitive
/// (`Accept*`). An absent header is `\0`, apart from an empty one.
pub(crate) fn vary_value(request: &HeaderMap, name: &str) -> String {
    let mut values = request.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return "\0".to_owned();
    }
    let fold = name.starts_with("accept");
    let mut members: Vec<String> = Vec::new();
    for value in values {
        // Non-UTF-8 values are written in hex so distinct values never share a key.
        let text = match value.to_str() {
            Ok(text) => text.to_owned(),
            Err(_) => {
                members.push(hex::encode(value.as_bytes()));
                continue;
            }
        };
        for member in text.split(',') {
            let member = member.split_whitespace().collect::<Vec<_>>().join(" ");
            let member = member.replace(" ;", ";").replace("; ", ";");
            if member.is_empty() {
                continue;
            }
            members.push(if fold {
                member.to_ascii_lowercase()
            } else {
                member
            });
        }
    }
    members.join(", ")
}
