//! `Cache-Control` (and targeted fields) parsed: RFC 9111 §5.2, RFC 9213 §2.1.

use http::header::{HeaderName, CACHE_CONTROL};
use http::HeaderMap;

/// The parsed `Cache-Control` directives this layer acts on.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cache-control", "max-age=60, stale-while-revalidate=30".parse().unwrap());
/// let cc = podium_cache_tower::policy::CacheControl::parse(&headers);
/// assert_eq!((cc.max_age, cc.stale_while_revalidate), (Some(60), Some(30)));
/// assert!(!cc.no_store);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (also set by a request's `Pragma: no-cache` when it has no `Cache-Control`).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`.
    pub must_revalidate: bool,
    /// `max-age=N` (seconds).
    pub max_age: Option<u64>,
    /// `s-maxage=N` (seconds).
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate=N` (seconds).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (seconds, RFC 5861 §4).
    pub stale_if_error: Option<u64>,
    /// A request's `max-stale[=N]` (seconds; `u64::MAX` when it names no limit).
    pub max_stale: Option<u64>,
    /// A request's `min-fresh=N` (seconds).
    pub min_fresh: Option<u64>,
    /// A request's `only-if-cached`.
    pub only_if_cached: bool,
    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub must_understand: bool,
    /// The fields a qualified `no-cache="…"` names (lower-cased): never sent from the
    /// cache without validation (RFC 9111 §5.2.2.4), so the layer stores the response
    /// without them.
    pub no_cache_fields: Vec<String>,
    /// The fields a qualified `private="…"` names (lower-cased): a shared cache must not
    /// store them (RFC 9111 §5.2.2.7), and may store the rest.
    pub private_fields: Vec<String>,
}

impl CacheControl {
    /// Parses every `Cache-Control` field of `headers` (directive names are case-insensitive;
    /// unknown directives are ignored; a malformed number is treated as 0, the safe reading).
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &CACHE_CONTROL)
    }

    /// Parses every `name` field of `headers` with the syntax of `Cache-Control` (as targeted
    /// fields such as `CDN-Cache-Control` have, RFC 9213 §2.1).
    ///
    /// Directives are split on commas outside quoted strings (RFC 9110 §5.6.4), so a quoted
    /// argument never yields a directive of its own. A directive given twice keeps its first
    /// value (RFC 9111 §4.2.1). An argument with whitespace around its `=` is not the
    /// directive's syntax and is ignored (RFC 9111 §5.2). The qualified forms of `no-cache`
    /// and `private` name fields the layer stores without (§5.2.2.4, §5.2.2.7).
    ///
    /// ```
    /// let mut headers = http::HeaderMap::new();
    /// headers.append("cache-control", r#"no-cache="a, b", max-age=60"#.parse().unwrap());
    /// headers.append("cache-control", "max-age=1".parse().unwrap());
    /// let cc = podium_cache_tower::policy::CacheControl::parse(&headers);
    /// assert_eq!(cc.max_age, Some(60), "the first occurrence wins");
    /// assert!(!cc.no_cache, "the qualified form does not mean no-cache for the whole response");
    /// assert_eq!(cc.no_cache_fields, ["a", "b"]);
    /// ```
    pub fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Self {
        let mut cc = Self::default();
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                // Unreadable directives: be conservative.
                cc.no_store = true;
                continue;
            };
            for directive in split_list(text) {
                cc.apply(directive);
            }
        }
        cc
    }

    /// Applies one directive (`name` or `name=argument`).
    fn apply(&mut self, directive: &str) {
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => {
                if n.ends_with(char::is_whitespace) || a.starts_with(char::is_whitespace) {
                    // `max-age =60`, `max-age= 60`: not the directive's syntax.
                    return;
                }
                (n, Some(unquote(a)))
            }
            None => (directive, None),
        };
        // A targeted field's Booleans (RFC 9213 §2.1, RFC 8941 §3.3.6): `?0` is the directive
        // absent, `?1` the directive itself.
        let arg = match arg {
            Some("?0") => return,
            Some("?1") => None,
            arg => arg,
        };
        // RFC 9111 §1.2.2: a delta-seconds too large to hold is the largest value; anything
        // else that is not digits is 0, the safe reading.
        let seconds = |a: Option<&str>| {
            a.map_or(0, |a| match a.parse::<u64>() {
                Ok(n) => n,
                Err(_) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => u64::MAX / 1000,
                Err(_) => 0,
            })
        };
        // The first occurrence of a directive with a value is the one used (RFC 9111 §4.2.1).
        let first = |slot: &mut Option<u64>, value: u64| {
            if slot.is_none() {
                *slot = Some(value);
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "no-store" => self.no_store = true,
            "no-cache" => match arg {
                Some(fields) if !fields.trim().is_empty() => {
                    self.no_cache_fields.extend(field_names(fields));
                }
                _ => self.no_cache = true,
            },
            "private" => match arg {
                Some(fields) if !fields.trim().is_empty() => {
                    self.private_fields.extend(field_names(fields));
                }
                _ => self.private = true,
            },
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "max-age" => first(&mut self.max_age, seconds(arg)),
            "s-maxage" => first(&mut self.s_maxage, seconds(arg)),
            "stale-while-revalidate" => first(&mut self.stale_while_revalidate, seconds(arg)),
            "stale-if-error" => first(&mut self.stale_if_error, seconds(arg)),
            "max-stale" => first(
                &mut self.max_stale,
                arg.map_or(u64::MAX, |a| a.parse().unwrap_or(0)),
            ),
            "min-fresh" => first(&mut self.min_fresh, seconds(arg)),
            "only-if-cached" => self.only_if_cached = true,
            "must-understand" => self.must_understand = true,
            _ => {}
        }
    }

    /// The freshness lifetime a shared cache uses: `s-maxage`, else `max-age`.
    pub fn shared_max_age(&self) -> Option<u64> {
        self.s_maxage.or(self.max_age)
    }
}

/// The members of a comma-separated list, split on commas outside quoted strings (RFC 9110
/// §5.6.1, §5.6.4), trimmed, empty ones dropped.
pub(crate) fn split_list(text: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// A directive argument without its quotes (a quoted-string, RFC 9110 §5.6.4; both forms are
/// accepted, RFC 9111 §5.2).
fn unquote(arg: &str) -> &str {
    arg.strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(arg)
}

/// The lower-cased field names of a qualified directive's argument.
fn field_names(arg: &str) -> impl Iterator<Item = String> + '_ {
    split_list(arg).map(str::to_ascii_lowercase)
}
