//! Why a formula does not parse, and why it could not be evaluated on a record.

/// Why a formula does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormulaError {
    /// A human-readable explanation, as put in the 422 answer.
    pub message: String,
}

impl FormulaError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        FormulaError {
            message: message.into(),
        }
    }
}

/// Why a parsed formula could not be evaluated on one record (Airtable's `#ERROR!`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("#ERROR: {0}")]
pub struct EvalError(pub(super) String);
