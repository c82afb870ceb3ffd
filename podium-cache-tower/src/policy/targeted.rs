//! Whether a targeted cache-control field (RFC 9213) has a value this cache may use.
//!
//! RFC 9213 §2.1: targeted fields are Dictionary Structured Fields (RFC 8941 §3.2); "if a
//! targeted field in a given response is empty, or a parsing error is encountered, that field
//! SHOULD be ignored by the cache", and directives take the types their values imply (an
//! Integer for `max-age`, a Boolean for a directive without a value), which implementations
//! "SHOULD NOT consume" when violated. Either way the field is ignored as if absent, and
//! `Cache-Control` and `Expires` apply (§2.2).
//!
//! Hand-written rather than a structured-fields crate: the layer needs only "does this parse,
//! with these types", not the parsed values (the directives are then read by the
//! `Cache-Control` parser, as §2.1 allows), and no dependency of the tree parses RFC 8941.

use http::header::HeaderName;
use http::HeaderMap;

/// The type a Dictionary member's value has (RFC 8941 §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Integer { negative: bool },
    Decimal,
    String,
    Token,
    Bytes,
    Boolean,
    InnerList,
}

/// Whether every `name` field of `headers`, combined (RFC 8941 §4.2), is a non-empty
/// Dictionary whose known directives have the types RFC 9213 §2.1 infers.
pub(crate) fn is_valid(headers: &HeaderMap, name: &HeaderName) -> bool {
    let mut combined = Vec::new();
    for value in headers.get_all(name) {
        if !combined.is_empty() {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(value.as_bytes());
    }
    let mut parser = Parser {
        input: &combined,
        at: 0,
    };
    parser.dictionary().is_some_and(|members| members > 0)
}

/// Whether a directive's value has the type RFC 9213 §2.1 infers for it: delta-seconds as a
/// non-negative Integer, the flags as Booleans, and the qualified `private` / `no-cache` as a
/// Boolean or the field names (a String or an Inner List). Unknown directives take any type.
fn fits(directive: &[u8], kind: Kind) -> bool {
    match directive {
        b"max-age" | b"s-maxage" | b"stale-while-revalidate" | b"stale-if-error" => {
            kind == Kind::Integer { negative: false }
        }
        b"no-store" | b"public" | b"must-revalidate" | b"proxy-revalidate" | b"no-transform"
        | b"immutable" | b"must-understand" => kind == Kind::Boolean,
        b"private" | b"no-cache" => {
            matches!(kind, Kind::Boolean | Kind::String | Kind::InnerList)
        }
        _ => true,
    }
}

/// An RFC 8941 §4.2 parser over one field value that only checks.
struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// §4.2.2: the number of members, or `None` on a parse or type error.
    fn dictionary(&mut self) -> Option<usize> {
        self.skip_sp();
        let mut members = 0;
        while self.at < self.input.len() {
            let start = self.at;
            self.key()?;
            let key = &self.input[start..self.at];
            let kind = if self.eat(b'=') {
                self.item_or_inner_list()?
            } else {
                self.parameters()?;
                Kind::Boolean
            };
            if !fits(key, kind) {
                return None;
            }
            members += 1;
            self.skip_ows();
            if self.at == self.input.len() {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip_ows();
            if self.at == self.input.len() {
                return None; // a trailing comma
            }
        }
        self.skip_sp();
        Some(members)
    }

    /// §4.2.3.3: `( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
    fn key(&mut self) -> Option<()> {
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.at += 1,
            _ => return None,
        }
        while let Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*') = self.peek() {
            self.at += 1;
        }
        Some(())
    }

    fn item_or_inner_list(&mut self) -> Option<Kind> {
        if self.eat(b'(') {
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    break;
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return None;
                }
            }
            self.parameters()?;
            return Some(Kind::InnerList);
        }
        let kind = self.bare_item()?;
        self.parameters()?;
        Some(kind)
    }

    /// §4.2.3.2: `*( ";" *SP key [ "=" bare-item ] )`.
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    /// §4.2.3.1.
    fn bare_item(&mut self) -> Option<Kind> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b':' => self.bytes(),
            b'?' => {
                self.at += 1;
                match self.peek() {
                    Some(b'0' | b'1') => {
                        self.at += 1;
                        Some(Kind::Boolean)
                    }
                    _ => None,
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'*' => {
                self.at += 1;
                while let Some(b) = self.peek() {
                    if b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b) {
                        self.at += 1;
                    } else {
                        break;
                    }
                }
                Some(Kind::Token)
            }
            _ => None,
        }
    }

    /// §4.2.4: an Integer of at most 15 digits, or a Decimal of at most 12 and 3.
    fn number(&mut self) -> Option<Kind> {
        let negative = self.eat(b'-');
        let (mut whole, mut fraction, mut dot) = (0, 0, false);
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' if dot => fraction += 1,
                b'0'..=b'9' => whole += 1,
                b'.' if !dot => dot = true,
                _ => break,
            }
            self.at += 1;
        }
        match (dot, whole, fraction) {
            (false, 1..=15, _) => Some(Kind::Integer { negative }),
            (true, 1..=12, 1..=3) => Some(Kind::Decimal),
            _ => None,
        }
    }

    /// §4.2.5: printable ASCII between quotes, `\` escaping only `"` and `\`.
    fn string(&mut self) -> Option<Kind> {
        self.at += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(Kind::String);
                }
                b'\\' => {
                    self.at += 1;
                    if !matches!(self.peek()?, b'"' | b'\\') {
                        return None;
                    }
                }
                0x20..=0x7e => {}
                _ => return None,
            }
            self.at += 1;
        }
    }

    /// §4.2.7: base64 between colons.
    fn bytes(&mut self) -> Option<Kind> {
        self.at += 1;
        loop {
            match self.peek()? {
                b':' => {
                    self.at += 1;
                    return Some(Kind::Bytes);
                }
                b if b.is_ascii_alphanumeric() || b"+/=".contains(&b) => self.at += 1,
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert("cdn-cache-control", value.parse().expect("value"));
        is_valid(&headers, &HeaderName::from_static("cdn-cache-control"))
    }

    #[test]
    fn a_dictionary_of_directives_with_their_types_is_valid() {
        for value in [
            "max-age=60",
            "max-age=60, s-maxage=30, stale-while-revalidate=10",
            "no-store",
            "public,must-revalidate",
            "private=\"set-cookie\"",
            "no-cache=(\"a\" \"b\")",
            "none",
            "x-thing=?1;a=1, y=:aGk=:, z=1.5, w=tok/en",
        ] {
            assert!(valid(value), "{value}");
        }
    }

    #[test]
    fn what_is_not_a_dictionary_is_invalid() {
        for value in [
            "max-age=10000, &&&&&",
            "Max-Age=60",
            "max-age=60,",
            "max-age=60 no-store",
            "max-age=60, ,; =",
            "(nonsense)",
            "a=\"unterminated",
            "a=1234567890123456",
            "a=1.2345",
            "a=?2",
            "",
            " ",
        ] {
            assert!(!valid(value), "{value:?}");
        }
    }

    #[test]
    fn a_directive_of_the_wrong_type_makes_the_field_invalid() {
        for value in [
            "max-age=\"10000\"",
            "max-age=-1",
            "max-age=1.5",
            "s-maxage=tok",
            "no-store=1",
            "private=1",
        ] {
            assert!(!valid(value), "{value}");
        }
    }

    #[test]
    fn field_lines_are_combined_before_parsing() {
        let name = HeaderName::from_static("cdn-cache-control");
        let mut headers = HeaderMap::new();
        headers.append(&name, "max-age=60".parse().expect("value"));
        headers.append(&name, "no-transform".parse().expect("value"));
        assert!(is_valid(&headers, &name));
        headers.append(&name, "&".parse().expect("value"));
        assert!(!is_valid(&headers, &name));
    }
}
