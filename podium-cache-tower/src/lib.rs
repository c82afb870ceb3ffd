//! A tower `Layer` that caches HTTP responses read-through, purged record by record, and the
//! axum webhook router.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod webhook;
