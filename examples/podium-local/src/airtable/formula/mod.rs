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

mod error;
mod eval;
mod lex;
mod parse;
mod value;

pub use error::{EvalError, FormulaError};
pub use eval::Formula;
pub use parse::MAX_DEPTH;
pub use value::Value;

#[cfg(test)]
mod tests;
