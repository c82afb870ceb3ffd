//! Formula values: a cell read as a value, and Airtable's rules for comparing and joining
//! values.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::error::EvalError;

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

    pub(super) fn to_number(&self) -> Result<f64, EvalError> {
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
    pub(super) fn flatten(&self) -> Value {
        match self {
            Value::Array(_) => Value::Text(self.to_text()),
            other => other.clone(),
        }
    }
}

pub(super) fn join(items: &[Value], sep: &str) -> String {
    items
        .iter()
        .map(Value::to_text)
        .collect::<Vec<_>>()
        .join(sep)
}

pub(super) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Airtable's `=`.
pub(super) fn values_equal(a: &Value, b: &Value) -> bool {
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
pub(super) fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (a.flatten(), b.flatten());
    if let (Value::Text(x), Value::Text(y)) = (&a, &b) {
        return Some(x.cmp(y));
    }
    match (a.to_number(), b.to_number()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y),
        _ => Some(a.to_text().cmp(&b.to_text())),
    }
}
