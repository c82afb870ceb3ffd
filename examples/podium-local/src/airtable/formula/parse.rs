//! The syntax tree and the recursive-descent parser.

use super::error::FormulaError;
use super::lex::Tok;
use super::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
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
pub(super) enum Func {
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
    pub(super) fn lookup(name: &str) -> Option<Func> {
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
    pub(super) fn arity(self) -> (usize, usize) {
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
pub(super) enum Expr {
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

pub(super) struct Parser {
    pub(super) tokens: Vec<Tok>,
    pub(super) pos: usize,
    /// Nesting of the expression being parsed (see [`MAX_DEPTH`]).
    pub(super) depth: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    pub(super) fn next(&mut self) -> Option<Tok> {
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    pub(super) fn expect(&mut self, want: &Tok) -> Result<(), FormulaError> {
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
    pub(super) fn nest(&mut self) -> Result<(), FormulaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FormulaError::new(format!(
                "Invalid formula. It nests more than {MAX_DEPTH} levels deep."
            )));
        }
        Ok(())
    }

    /// A whole (sub-)expression: one level deeper than where it stands.
    pub(super) fn comparison(&mut self) -> Result<Expr, FormulaError> {
        let base = self.depth;
        self.nest()?;
        let expr = self.comparison_chain();
        self.depth = base;
        expr
    }

    pub(super) fn comparison_chain(&mut self) -> Result<Expr, FormulaError> {
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

    pub(super) fn concat(&mut self) -> Result<Expr, FormulaError> {
        let mut left = self.additive()?;
        while self.peek() == Some(&Tok::Amp) {
            self.pos += 1;
            self.nest()?;
            let right = self.additive()?;
            left = Expr::Binary(BinOp::Concat, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    pub(super) fn additive(&mut self) -> Result<Expr, FormulaError> {
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

    pub(super) fn term(&mut self) -> Result<Expr, FormulaError> {
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

    pub(super) fn unary(&mut self) -> Result<Expr, FormulaError> {
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

    pub(super) fn primary(&mut self) -> Result<Expr, FormulaError> {
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

    pub(super) fn call(&mut self, name: &str) -> Result<Expr, FormulaError> {
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

pub(super) fn describe_arity(min: usize, max: usize) -> String {
    if min == max {
        format!("{min} argument(s)")
    } else if max == usize::MAX {
        format!("at least {min} argument(s)")
    } else {
        format!("{min} to {max} arguments")
    }
}
