//! The tokenizer.

use std::fmt;

use super::error::FormulaError;
use super::value::format_number;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Field(String),
    Str(String),
    Num(f64),
    Ident(String),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Amp,
    Plus,
    Minus,
    Star,
    Slash,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Field(name) => write!(f, "{{{name}}}"),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Num(n) => write!(f, "{}", format_number(*n)),
            Tok::Ident(name) => write!(f, "{name}"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::Comma => f.write_str(","),
            Tok::Eq => f.write_str("="),
            Tok::Ne => f.write_str("!="),
            Tok::Lt => f.write_str("<"),
            Tok::Gt => f.write_str(">"),
            Tok::Le => f.write_str("<="),
            Tok::Ge => f.write_str(">="),
            Tok::Amp => f.write_str("&"),
            Tok::Plus => f.write_str("+"),
            Tok::Minus => f.write_str("-"),
            Tok::Star => f.write_str("*"),
            Tok::Slash => f.write_str("/"),
        }
    }
}

pub(super) fn tokenize(src: &str) -> Result<Vec<Tok>, FormulaError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '{' => {
                let (name, next) = read_delimited(&chars, i + 1, '}').ok_or_else(|| {
                    FormulaError::new("Invalid formula. Unclosed field reference `{`.")
                })?;
                if name.trim().is_empty() {
                    return Err(FormulaError::new(
                        "Invalid formula. Empty field reference `{}`.",
                    ));
                }
                tokens.push(Tok::Field(name));
                i = next;
            }
            '\'' | '"' => {
                let (text, next) = read_delimited(&chars, i + 1, c).ok_or_else(|| {
                    FormulaError::new("Invalid formula. Unterminated string literal.")
                })?;
                tokens.push(Tok::Str(text));
                i = next;
            }
            '0'..='9' | '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<f64>().map_err(|_| {
                    FormulaError::new(format!("Invalid formula. Bad number `{text}`."))
                })?;
                tokens.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            '(' => {
                tokens.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                tokens.push(Tok::Eq);
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Tok::Ne);
                i += 2;
            }
            '<' => {
                if chars.get(i + 1) == Some(&'=') {
                    tokens.push(Tok::Le);
                    i += 2;
                } else if chars.get(i + 1) == Some(&'>') {
                    tokens.push(Tok::Ne);
                    i += 2;
                } else {
                    tokens.push(Tok::Lt);
                    i += 1;
                }
            }
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    tokens.push(Tok::Ge);
                    i += 2;
                } else {
                    tokens.push(Tok::Gt);
                    i += 1;
                }
            }
            '&' => {
                tokens.push(Tok::Amp);
                i += 1;
            }
            '+' => {
                tokens.push(Tok::Plus);
                i += 1;
            }
            '-' => {
                tokens.push(Tok::Minus);
                i += 1;
            }
            '*' => {
                tokens.push(Tok::Star);
                i += 1;
            }
            '/' => {
                tokens.push(Tok::Slash);
                i += 1;
            }
            other => {
                return Err(FormulaError::new(format!(
                    "Invalid formula. Unexpected character `{other}` at position {i}."
                )))
            }
        }
    }
    Ok(tokens)
}

/// Reads up to the closing `end` starting at `start`, resolving backslash escapes. Returns the
/// text and the index after the closing delimiter, or `None` when it is never closed.
pub(super) fn read_delimited(chars: &[char], start: usize, end: char) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let escaped = *chars.get(i + 1)?;
                out.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
                i += 2;
            }
            c if c == end => return Some((out, i + 1)),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    None
}
