//! The `filterByFormula` subset: a tokenizer, a recursive-descent parser and an evaluator over
//! one record.
//!
//! Supported: field references `{Field Name}` (`\}` and `\\` escape inside the braces), string
//! literals in single or double quotes with backslash escapes, numbers, `TRUE`/`FALSE` (with or
//! without `()`), the operators `= != < > <= >= & + - * /`, parentheses and the functions
//! `AND OR NOT IF RECORD_ID LOWER UPPER TRIM LEN FIND SEARCH ARRAYJOIN BLANK TRUE FALSE
//! CONCATENATE LEFT RIGHT VALUE` (names are case-insensitive). Bare identifiers name functions
//! only.
//!
//! Semantics follow Airtable: an empty field is BLANK, which equals `""`, `0` and `FALSE()`;
//! text comparison with `=` is case-sensitive; an array (linked records, multiple select)
//! compares as its `", "`-joined text; numbers compare numerically; a value is true when it is a
//! non-empty text, a non-zero number, `TRUE()` or a non-empty array. A formula that fails on a
//! record (say `1/0`) does not match it; a formula that does not parse is an error.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value as Json};

/// Why a formula does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormulaError {
    /// A human-readable explanation, as put in the 422 answer.
    pub message: String,
}

impl FormulaError {
    fn new(message: impl Into<String>) -> Self {
        FormulaError {
            message: message.into(),
        }
    }
}

/// Why a parsed formula could not be evaluated on one record (Airtable's `#ERROR!`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("#ERROR: {0}")]
pub struct EvalError(String);

/// A formula value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An empty cell or `BLANK()`.
    Blank,
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A checkbox or `TRUE()`/`FALSE()`.
    Bool(bool),
    /// Linked records, multiple selects, attachments, lookups.
    Array(Vec<Value>),
}

impl Value {
    /// Converts a cell value as stored in a record's `fields`.
    pub fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Blank,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => n.as_f64().map_or(Value::Blank, Value::Number),
            Json::String(s) => Value::Text(s.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            Json::Object(obj) => {
                // Collaborators, attachments, buttons: Airtable shows their name in formulas.
                let label = ["name", "filename", "email", "label", "id", "url"]
                    .iter()
                    .find_map(|k| obj.get(*k).and_then(Json::as_str));
                match label {
                    Some(s) => Value::Text(s.to_owned()),
                    None => Value::Text(json.to_string()),
                }
            }
        }
    }

    /// The value as text, the way `&` and `ARRAYJOIN` show it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Blank => String::new(),
            Value::Text(s) => s.clone(),
            Value::Number(n) => format_number(*n),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            Value::Array(items) => join(items, ", "),
        }
    }

    /// Airtable truthiness.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Blank => false,
            Value::Text(s) => !s.is_empty(),
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::Bool(b) => *b,
            Value::Array(items) => !items.is_empty(),
        }
    }

    fn to_number(&self) -> Result<f64, EvalError> {
        match self {
            Value::Blank => Ok(0.0),
            Value::Number(n) => Ok(*n),
            Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
            Value::Text(s) if s.trim().is_empty() => Ok(0.0),
            Value::Text(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| EvalError(format!("{s:?} is not a number"))),
            Value::Array(_) => Value::Text(self.to_text()).to_number(),
        }
    }

    /// Arrays compare as their joined text.
    fn flatten(&self) -> Value {
        match self {
            Value::Array(_) => Value::Text(self.to_text()),
            other => other.clone(),
        }
    }
}

fn join(items: &[Value], sep: &str) -> String {
    items
        .iter()
        .map(Value::to_text)
        .collect::<Vec<_>>()
        .join(sep)
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Airtable's `=`.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.flatten(), b.flatten()) {
        (Value::Blank, Value::Blank) => true,
        (Value::Blank, other) | (other, Value::Blank) => match other {
            Value::Text(s) => s.is_empty(),
            Value::Number(n) => n == 0.0,
            Value::Bool(v) => !v,
            Value::Blank | Value::Array(_) => false,
        },
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Text(s), other) | (other, Value::Text(s)) => match s.trim().parse::<f64>() {
            Ok(n) => other.to_number().is_ok_and(|m| m == n),
            Err(_) => false,
        },
        (x, y) => match (x.to_number(), y.to_number()) {
            (Ok(m), Ok(n)) => m == n,
            _ => false,
        },
    }
}

/// Ordering for `< > <= >=`: text against text compares as text; otherwise numerically when
/// both sides are numbers (or numeric text), else as text.
fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (a.flatten(), b.flatten());
    if let (Value::Text(x), Value::Text(y)) = (&a, &b) {
        return Some(x.cmp(y));
    }
    match (a.to_number(), b.to_number()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y),
        _ => Some(a.to_text().cmp(&b.to_text())),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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

fn tokenize(src: &str) -> Result<Vec<Tok>, FormulaError> {
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
fn read_delimited(chars: &[char], start: usize, end: char) -> Option<(String, usize)> {
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

// ---------------------------------------------------------------------------------------------
// Syntax tree and parser

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    If,
    RecordId,
    Lower,
    Upper,
    Trim,
    Len,
    Find,
    Search,
    ArrayJoin,
    Blank,
    True,
    False,
    Concatenate,
    Left,
    Right,
    NumberValue,
}

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        Some(match name.to_ascii_uppercase().as_str() {
            "AND" => Func::And,
            "OR" => Func::Or,
            "NOT" => Func::Not,
            "IF" => Func::If,
            "RECORD_ID" => Func::RecordId,
            "LOWER" => Func::Lower,
            "UPPER" => Func::Upper,
            "TRIM" => Func::Trim,
            "LEN" => Func::Len,
            "FIND" => Func::Find,
            "SEARCH" => Func::Search,
            "ARRAYJOIN" => Func::ArrayJoin,
            "BLANK" => Func::Blank,
            "TRUE" => Func::True,
            "FALSE" => Func::False,
            "CONCATENATE" => Func::Concatenate,
            "LEFT" => Func::Left,
            "RIGHT" => Func::Right,
            "VALUE" => Func::NumberValue,
            _ => return None,
        })
    }

    /// Allowed argument counts, inclusive (`usize::MAX` = any).
    fn arity(self) -> (usize, usize) {
        match self {
            Func::And | Func::Or | Func::Concatenate => (1, usize::MAX),
            Func::Not | Func::Lower | Func::Upper | Func::Trim | Func::Len | Func::NumberValue => {
                (1, 1)
            }
            Func::If => (2, 3),
            Func::RecordId | Func::Blank | Func::True | Func::False => (0, 0),
            Func::Find | Func::Search => (2, 3),
            Func::ArrayJoin => (1, 2),
            Func::Left | Func::Right => (1, 2),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    Field(String),
    Negate(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// How deep a formula may nest (parentheses, function calls, signs, chained operators).
/// Parsing, evaluating and dropping a formula recurse once per level, so a deeper one is
/// refused rather than allowed to overflow the stack and abort the server.
pub const MAX_DEPTH: usize = 128;

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
    /// Nesting of the expression being parsed (see [`MAX_DEPTH`]).
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn expect(&mut self, want: &Tok) -> Result<(), FormulaError> {
        match self.next() {
            Some(ref tok) if tok == want => Ok(()),
            Some(tok) => Err(FormulaError::new(format!(
                "Invalid formula. Expected `{want}` but found `{tok}`."
            ))),
            None => Err(FormulaError::new(format!(
                "Invalid formula. Expected `{want}` but the formula ended."
            ))),
        }
    }

    /// One level deeper, or the error that the formula nests too deeply.
    fn nest(&mut self) -> Result<(), FormulaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FormulaError::new(format!(
                "Invalid formula. It nests more than {MAX_DEPTH} levels deep."
            )));
        }
        Ok(())
    }

    /// A whole (sub-)expression: one level deeper than where it stands.
    fn comparison(&mut self) -> Result<Expr, FormulaError> {
        let base = self.depth;
        self.nest()?;
        let expr = self.comparison_chain();
        self.depth = base;
        expr
    }

    fn comparison_chain(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.concat()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Eq) => BinOp::Eq,
                Some(Tok::Ne) => BinOp::Ne,
                Some(Tok::Lt) => BinOp::Lt,
                Some(Tok::Gt) => BinOp::Gt,
                Some(Tok::Le) => BinOp::Le,
                Some(Tok::Ge) => BinOp::Ge,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.nest()?;
            let right = self.concat()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn concat(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.additive()?;
        while self.peek() == Some(&Tok::Amp) {
            self.pos += 1;
            self.nest()?;
            let right = self.additive()?;
            left = Expr::Binary(BinOp::Concat, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => BinOp::Add,
                Some(Tok::Minus) => BinOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.nest()?;
            let right = self.term()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Star) => BinOp::Mul,
                Some(Tok::Slash) => BinOp::Div,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.nest()?;
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, FormulaError> {
        let base = self.depth;
        let expr = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                self.nest()?;
                Expr::Negate(Box::new(self.unary()?))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.nest()?;
                self.unary()?
            }
            _ => self.primary()?,
        };
        self.depth = base;
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, FormulaError> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Expr::Literal(Value::Number(n))),
            Some(Tok::Str(s)) => Ok(Expr::Literal(Value::Text(s))),
            Some(Tok::Field(name)) => Ok(Expr::Field(name)),
            Some(Tok::LParen) => {
                let inner = self.comparison()?;
                self.expect(&Tok::RParen)?;
                Ok(inner)
            }
            Some(Tok::Ident(name)) => self.call(&name),
            Some(tok) => Err(FormulaError::new(format!(
                "Invalid formula. Unexpected `{tok}`."
            ))),
            None => Err(FormulaError::new(
                "Invalid formula. The formula ended unexpectedly.",
            )),
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, FormulaError> {
        let func = Func::lookup(name).ok_or_else(|| {
            FormulaError::new(format!(
                "Unknown function `{name}`. Field names must be written in braces, like {{{name}}}."
            ))
        })?;
        if self.peek() != Some(&Tok::LParen) {
            // TRUE and FALSE may be written without parentheses.
            return match func {
                Func::True => Ok(Expr::Literal(Value::Bool(true))),
                Func::False => Ok(Expr::Literal(Value::Bool(false))),
                _ => Err(FormulaError::new(format!(
                    "Invalid formula. `{name}` must be followed by `(`."
                ))),
            };
        }
        self.pos += 1;
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.pos += 1;
        } else {
            loop {
                args.push(self.comparison()?);
                match self.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::RParen) => break,
                    Some(tok) => {
                        return Err(FormulaError::new(format!(
                            "Invalid formula. Expected `,` or `)` in {name}(...) but found `{tok}`."
                        )))
                    }
                    None => {
                        return Err(FormulaError::new(format!(
                            "Invalid formula. {name}( is never closed."
                        )))
                    }
                }
            }
        }
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(FormulaError::new(format!(
                "Invalid formula. {} takes {} but was given {} argument(s).",
                name.to_ascii_uppercase(),
                describe_arity(min, max),
                args.len()
            )));
        }
        Ok(Expr::Call(func, args))
    }
}

fn describe_arity(min: usize, max: usize) -> String {
    if min == max {
        format!("{min} argument(s)")
    } else if max == usize::MAX {
        format!("at least {min} argument(s)")
    } else {
        format!("{min} to {max} arguments")
    }
}

// ---------------------------------------------------------------------------------------------
// Public formula type and evaluation

/// A parsed formula, ready to be evaluated on many records.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// `None` for an empty formula, which matches every record.
    expr: Option<Expr>,
}

impl Formula {
    /// Parses a formula. An empty (or all-blank) formula matches every record.
    pub fn parse(src: &str) -> Result<Formula, FormulaError> {
        let tokens = tokenize(src)?;
        if tokens.is_empty() {
            return Ok(Formula { expr: None });
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let expr = parser.comparison()?;
        if let Some(tok) = parser.peek() {
            return Err(FormulaError::new(format!(
                "Invalid formula. Unexpected `{tok}` after the end of the expression."
            )));
        }
        Ok(Formula { expr: Some(expr) })
    }

    /// Whether the formula is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// Evaluates the formula on one record.
    pub fn evaluate(
        &self,
        record_id: &str,
        fields: &Map<String, Json>,
    ) -> Result<Value, EvalError> {
        match &self.expr {
            None => Ok(Value::Bool(true)),
            Some(expr) => eval(expr, &Ctx { record_id, fields }),
        }
    }

    /// Whether the record passes the filter: the value is truthy and evaluation did not fail.
    pub fn matches(&self, record_id: &str, fields: &Map<String, Json>) -> bool {
        self.evaluate(record_id, fields)
            .is_ok_and(|v| v.is_truthy())
    }

    /// The field names the formula refers to.
    pub fn field_names(&self) -> Vec<String> {
        fn walk(expr: &Expr, out: &mut Vec<String>) {
            match expr {
                Expr::Literal(_) => {}
                Expr::Field(name) => {
                    if !out.contains(name) {
                        out.push(name.clone());
                    }
                }
                Expr::Negate(inner) => walk(inner, out),
                Expr::Binary(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Call(_, args) => args.iter().for_each(|a| walk(a, out)),
            }
        }
        let mut out = Vec::new();
        if let Some(expr) = &self.expr {
            walk(expr, &mut out);
        }
        out
    }
}

struct Ctx<'a> {
    record_id: &'a str,
    fields: &'a Map<String, Json>,
}

fn eval(expr: &Expr, ctx: &Ctx<'_>) -> Result<Value, EvalError> {
    match expr {
        Expr::Literal(v) => Ok(v.clone()),
        Expr::Field(name) => Ok(ctx.fields.get(name).map_or(Value::Blank, Value::from_json)),
        Expr::Negate(inner) => Ok(Value::Number(-eval(inner, ctx)?.to_number()?)),
        Expr::Binary(op, a, b) => {
            let (a, b) = (eval(a, ctx)?, eval(b, ctx)?);
            binary(*op, &a, &b)
        }
        Expr::Call(func, args) => call(*func, args, ctx),
    }
}

fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    let ordered = |pred: fn(Ordering) -> bool| Value::Bool(compare_values(a, b).is_some_and(pred));
    Ok(match op {
        BinOp::Eq => Value::Bool(values_equal(a, b)),
        BinOp::Ne => Value::Bool(!values_equal(a, b)),
        BinOp::Lt => ordered(Ordering::is_lt),
        BinOp::Gt => ordered(Ordering::is_gt),
        BinOp::Le => ordered(Ordering::is_le),
        BinOp::Ge => ordered(Ordering::is_ge),
        BinOp::Concat => Value::Text(a.to_text() + &b.to_text()),
        BinOp::Add => Value::Number(a.to_number()? + b.to_number()?),
        BinOp::Sub => Value::Number(a.to_number()? - b.to_number()?),
        BinOp::Mul => Value::Number(a.to_number()? * b.to_number()?),
        BinOp::Div => {
            let divisor = b.to_number()?;
            if divisor == 0.0 {
                return Err(EvalError("division by zero".to_owned()));
            }
            Value::Number(a.to_number()? / divisor)
        }
    })
}

fn call(func: Func, args: &[Expr], ctx: &Ctx<'_>) -> Result<Value, EvalError> {
    let arg = |i: usize| -> Result<Value, EvalError> {
        args.get(i).map_or(Ok(Value::Blank), |expr| eval(expr, ctx))
    };
    let text = |i: usize| -> Result<String, EvalError> { Ok(arg(i)?.to_text()) };
    Ok(match func {
        Func::And => {
            let mut all = true;
            for expr in args {
                all &= eval(expr, ctx)?.is_truthy();
            }
            Value::Bool(all)
        }
        Func::Or => {
            let mut any = false;
            for expr in args {
                any |= eval(expr, ctx)?.is_truthy();
            }
            Value::Bool(any)
        }
        Func::Not => Value::Bool(!arg(0)?.is_truthy()),
        Func::If => {
            if arg(0)?.is_truthy() {
                arg(1)?
            } else {
                arg(2)?
            }
        }
        Func::RecordId => Value::Text(ctx.record_id.to_owned()),
        Func::Lower => Value::Text(text(0)?.to_lowercase()),
        Func::Upper => Value::Text(text(0)?.to_uppercase()),
        Func::Trim => Value::Text(text(0)?.trim().to_owned()),
        Func::Len => Value::Number(text(0)?.chars().count() as f64),
        Func::Find | Func::Search => {
            let (mut needle, mut haystack) = (text(0)?, text(1)?);
            if func == Func::Search {
                needle = needle.to_lowercase();
                haystack = haystack.to_lowercase();
            }
            let start = match args.get(2) {
                Some(_) => (arg(2)?.to_number()?.max(1.0) as usize) - 1,
                None => 0,
            };
            let position = find_chars(&needle, &haystack, start);
            match (position, func) {
                (Some(p), _) => Value::Number((p + 1) as f64),
                (None, Func::Search) => Value::Blank,
                (None, _) => Value::Number(0.0),
            }
        }
        Func::ArrayJoin => {
            let sep = if args.len() > 1 {
                text(1)?
            } else {
                ", ".to_owned()
            };
            match arg(0)? {
                Value::Array(items) => Value::Text(join(&items, &sep)),
                other => Value::Text(other.to_text()),
            }
        }
        Func::Blank => Value::Blank,
        Func::True => Value::Bool(true),
        Func::False => Value::Bool(false),
        Func::Concatenate => {
            let mut out = String::new();
            for expr in args {
                out.push_str(&eval(expr, ctx)?.to_text());
            }
            Value::Text(out)
        }
        Func::Left | Func::Right => {
            let s = text(0)?;
            let n = if args.len() > 1 {
                arg(1)?.to_number()?.max(0.0) as usize
            } else {
                1
            };
            let count = s.chars().count();
            let taken: String = if func == Func::Left {
                s.chars().take(n).collect()
            } else {
                s.chars().skip(count.saturating_sub(n)).collect()
            };
            Value::Text(taken)
        }
        Func::NumberValue => Value::Number(Value::Text(text(0)?).to_number()?),
    })
}

/// Character index of `needle` in `haystack` at or after character `start`.
fn find_chars(needle: &str, haystack: &str, start: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let byte_start = haystack.char_indices().nth(start).map(|(b, _)| b)?;
    let byte_pos = haystack[byte_start..].find(needle)? + byte_start;
    Some(haystack[..byte_pos].chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn eval_on(formula: &str, record: Json) -> Value {
        Formula::parse(formula)
            .and_then(|f| {
                f.evaluate("recTEST", &fields(record))
                    .map_err(|e| FormulaError::new(e.to_string()))
            })
            .unwrap_or_else(|e| panic!("{formula}: {e}"))
    }

    fn matches(formula: &str, record: Json) -> bool {
        Formula::parse(formula)
            .unwrap_or_else(|e| panic!("{formula}: {e}"))
            .matches("recTEST", &fields(record))
    }

    /// Escapes a value the way a client must before putting it in single quotes.
    fn quote(value: &str) -> String {
        format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
    }

    #[test]
    fn empty_formula_matches_everything() {
        assert!(matches("", json!({})));
        assert!(matches("   ", json!({"a": 1})));
        assert!(Formula::parse("").map(|f| f.is_empty()).unwrap_or(false));
    }

    #[test]
    fn field_equality_is_case_sensitive() {
        let rec = json!({"email": "Ada@example.com"});
        assert!(matches("{email}='Ada@example.com'", rec.clone()));
        assert!(!matches("{email}='ada@example.com'", rec.clone()));
        assert!(matches("LOWER({email})='ada@example.com'", rec));
    }

    #[test]
    fn field_names_with_spaces_and_escaped_braces_resolve() {
        let rec = json!({"Full Name": "Ada", "odd}name": 3});
        assert!(matches("{Full Name} = \"Ada\"", rec.clone()));
        assert!(matches("{odd\\}name} = 3", rec));
    }

    #[test]
    fn missing_field_is_blank_and_equals_empty_text_zero_and_false() {
        assert!(matches("{missing}=''", json!({})));
        assert!(matches("{missing}=0", json!({})));
        assert!(matches("{missing}=FALSE()", json!({})));
        assert!(matches("{missing}=BLANK()", json!({})));
        assert!(!matches("{missing}", json!({})));
        assert!(!matches("{missing}='x'", json!({})));
        assert!(matches("NOT({missing})", json!({})));
    }

    #[test]
    fn numbers_compare_numerically() {
        let rec = json!({"n": 10, "s": "10"});
        assert!(matches("{n}>9", rec.clone()));
        assert!(matches("{n}=10", rec.clone()));
        assert!(matches("{n}>=10", rec.clone()));
        assert!(!matches("{n}<10", rec.clone()));
        assert!(matches("{n}='10'", rec.clone()));
        assert!(matches("{s}=10", rec.clone()));
        assert!(matches("{n}*2+1=21", rec.clone()));
        assert!(matches("-{n}<0", rec));
    }

    #[test]
    fn arithmetic_precedence_follows_the_usual_rules() {
        assert_eq!(eval_on("1+2*3", json!({})), Value::Number(7.0));
        assert_eq!(eval_on("(1+2)*3", json!({})), Value::Number(9.0));
        assert_eq!(eval_on("10/4", json!({})), Value::Number(2.5));
        assert_eq!(eval_on("1+2&'x'", json!({})), Value::Text("3x".into()));
    }

    #[test]
    fn division_by_zero_makes_the_record_not_match() {
        assert!(!matches("1/0", json!({})));
        assert!(!matches("NOT(1/0)", json!({})));
    }

    #[test]
    fn string_concat_joins_text_forms() {
        let rec = json!({"first": "Ada", "last": "Lovelace", "n": 3});
        assert_eq!(
            eval_on("{first}&' '&{last}&{n}", rec),
            Value::Text("Ada Lovelace3".into())
        );
    }

    #[test]
    fn linked_record_field_compares_as_comma_joined_text() {
        let rec = json!({"owner": ["recA", "recB"], "one": ["recA"]});
        assert!(matches("{owner}='recA, recB'", rec.clone()));
        assert!(matches("{one}='recA'", rec.clone()));
        assert!(matches("FIND('recB', ARRAYJOIN({owner}))", rec.clone()));
        assert!(matches("ARRAYJOIN({owner}, ';')='recA;recB'", rec.clone()));
        assert!(!matches("FIND('recC', ARRAYJOIN({owner}))", rec));
    }

    #[test]
    fn quoted_value_with_apostrophe_matches_exactly_one_record() {
        let names = ["O'Brien", "OBrien", "O", "O'Brien2", "o'brien"];
        let formula = format!("{{name}}={}", quote("O'Brien"));
        assert_eq!(formula, "{name}='O\\'Brien'");
        let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
        let hits: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| parsed.matches("recX", &fields(json!({ "name": n }))))
            .collect();
        assert_eq!(hits, vec!["O'Brien"]);
    }

    #[test]
    fn injection_attempt_in_escaped_value_cannot_widen_the_match() {
        let attack = "x' OR '1'='1";
        let formula = format!("{{name}}={}", quote(attack));
        let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.matches("recA", &fields(json!({"name": "alice"}))));
        assert!(!parsed.matches("recB", &fields(json!({"name": "x"}))));
        assert!(parsed.matches("recC", &fields(json!({ "name": attack }))));

        let backslash = "a\\";
        let formula = format!("OR({{name}}={}, {{name}}='b')", quote(backslash));
        let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
        assert!(parsed.matches("recA", &fields(json!({ "name": backslash }))));
        assert!(parsed.matches("recB", &fields(json!({"name": "b"}))));
        assert!(!parsed.matches("recC", &fields(json!({"name": "a"}))));
    }

    #[test]
    fn unescaped_quote_is_a_parse_error_not_a_wider_match() {
        assert!(Formula::parse("{name}='O'Brien'").is_err());
        assert!(Formula::parse("{name}='unterminated").is_err());
    }

    /// Found by the `formula` fuzz target: 776 nested parentheses overflowed the stack (an
    /// abort, not an error), and so would a long chain of operators or signs.
    #[test]
    fn a_formula_nested_too_deeply_is_refused_not_a_stack_overflow() {
        let deep = 100_000;
        for formula in [
            format!("{}1{}", "(".repeat(deep), ")".repeat(deep)),
            format!("1{}", "+1".repeat(deep)),
            format!("'a'{}", "&'a'".repeat(deep)),
            format!("{}1", "-".repeat(deep)),
            format!("{}1{}", "NOT(".repeat(deep), ")".repeat(deep)),
        ] {
            let err = Formula::parse(&formula).expect_err("too deep");
            assert!(err.message.contains("nests more than"), "{err}");
        }
        let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(Formula::parse(&nested).is_ok());
        let chain = format!("1{}", "+1".repeat(100));
        assert_eq!(eval_on(&chain, json!({})), Value::Number(101.0));
    }

    #[test]
    fn double_quoted_strings_and_escapes_are_decoded() {
        assert_eq!(
            eval_on(r#""say \"hi\" \\ bye""#, json!({})),
            Value::Text(r#"say "hi" \ bye"#.into())
        );
        assert_eq!(eval_on(r#"'it\'s'"#, json!({})), Value::Text("it's".into()));
    }

    #[test]
    fn or_of_a_hundred_record_ids_selects_exactly_those_records() {
        let ids: Vec<String> = (0..100).map(|i| format!("rec{i:014}")).collect();
        let formula = format!(
            "OR({})",
            ids.iter()
                .map(|id| format!("RECORD_ID()='{id}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
        let empty = Map::new();
        for id in &ids {
            assert!(parsed.matches(id, &empty), "{id} should match");
        }
        assert!(!parsed.matches("rec00000000000100", &empty));
        assert!(!parsed.matches("recA", &empty));
    }

    #[test]
    fn record_id_or_with_two_ids() {
        let parsed = Formula::parse("OR(RECORD_ID()='recA',RECORD_ID()='recB')")
            .unwrap_or_else(|e| panic!("{e}"));
        let empty = Map::new();
        assert!(parsed.matches("recA", &empty));
        assert!(parsed.matches("recB", &empty));
        assert!(!parsed.matches("recC", &empty));
    }

    #[test]
    fn logical_functions_and_if() {
        let rec = json!({"a": 1, "b": "", "c": "x"});
        assert!(matches("AND({a}, {c})", rec.clone()));
        assert!(!matches("AND({a}, {b})", rec.clone()));
        assert!(matches("OR({b}, {c})", rec.clone()));
        assert!(matches("NOT({b})", rec.clone()));
        assert_eq!(
            eval_on("IF({a}, 'yes', 'no')", rec.clone()),
            Value::Text("yes".into())
        );
        assert_eq!(eval_on("IF({b}, 'yes')", rec.clone()), Value::Blank);
        assert!(matches("TRUE()", rec.clone()));
        assert!(!matches("FALSE()", rec.clone()));
        assert!(matches("true", rec.clone()));
        assert!(matches("{a} != 2", rec));
    }

    #[test]
    fn text_functions_behave_like_airtable() {
        let rec = json!({"s": "  Hello World  "});
        assert_eq!(
            eval_on("TRIM({s})", rec.clone()),
            Value::Text("Hello World".into())
        );
        assert_eq!(eval_on("LEN(TRIM({s}))", rec.clone()), Value::Number(11.0));
        assert_eq!(
            eval_on("UPPER('abc')", rec.clone()),
            Value::Text("ABC".into())
        );
        assert_eq!(
            eval_on("FIND('World', {s})", rec.clone()),
            Value::Number(9.0)
        );
        assert_eq!(
            eval_on("FIND('world', {s})", rec.clone()),
            Value::Number(0.0)
        );
        assert_eq!(
            eval_on("SEARCH('world', {s})", rec.clone()),
            Value::Number(9.0)
        );
        assert_eq!(eval_on("SEARCH('nope', {s})", rec.clone()), Value::Blank);
        assert_eq!(
            eval_on("FIND('l', 'hello', 4)", rec.clone()),
            Value::Number(4.0)
        );
        assert_eq!(
            eval_on("LEFT('hello', 2)&RIGHT('hello', 2)", rec.clone()),
            Value::Text("helo".into())
        );
        assert_eq!(
            eval_on("CONCATENATE('a', 1, 'b')", rec.clone()),
            Value::Text("a1b".into())
        );
        assert_eq!(eval_on("VALUE('42')+1", rec), Value::Number(43.0));
    }

    #[test]
    fn checkbox_fields_compare_with_true_and_false() {
        assert!(matches("{done}=TRUE()", json!({"done": true})));
        assert!(matches("{done}", json!({"done": true})));
        assert!(matches("{done}=FALSE()", json!({})));
        assert!(!matches("{done}=TRUE()", json!({})));
    }

    #[test]
    fn function_names_are_case_insensitive() {
        assert!(matches("or(record_id()='recTEST', false())", json!({})));
    }

    #[test]
    fn parse_errors_are_reported() {
        for bad in [
            "{email",
            "{}",
            "email='x'",
            "NOPE(1)",
            "OR(",
            "NOT(1, 2)",
            "RECORD_ID(1)",
            "1 +",
            "(1",
            "1 2",
            "{a} == 'x'",
            "#",
            "IF(1)",
        ] {
            assert!(Formula::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn field_names_lists_referenced_fields_once() {
        let parsed = Formula::parse("AND({a}='1', OR({b}, {a}))").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.field_names(), vec!["a".to_owned(), "b".to_owned()]);
    }
}
