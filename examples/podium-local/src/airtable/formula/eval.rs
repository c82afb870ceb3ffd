//! [`Formula`]: a parsed formula, and its evaluation over one record.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use super::error::{EvalError, FormulaError};
use super::lex::tokenize;
use super::parse::{BinOp, Expr, Func, Parser};
use super::value::{compare_values, join, values_equal, Value};

/// A parsed formula, ready to be evaluated on many records.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// `None` for an empty formula, which matches every record.
    pub(super) expr: Option<Expr>,
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

pub(super) struct Ctx<'a> {
    pub(super) record_id: &'a str,
    pub(super) fields: &'a Map<String, Json>,
}

pub(super) fn eval(expr: &Expr, ctx: &Ctx<'_>) -> Result<Value, EvalError> {
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

pub(super) fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
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

pub(super) fn call(func: Func, args: &[Expr], ctx: &Ctx<'_>) -> Result<Value, EvalError> {
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
pub(super) fn find_chars(needle: &str, haystack: &str, start: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let byte_start = haystack.char_indices().nth(start).map(|(b, _)| b)?;
    let byte_pos = haystack[byte_start..].find(needle)? + byte_start;
    Some(haystack[..byte_pos].chars().count())
}
