//! What one coalesced fill hands every waiter, and the table of fills in flight (the
//! engine's `coalesce`, in `fill.rs`, runs each once).

use std::sync::Arc;

use bytes::Bytes;

use super::error::CacheError;
use crate::coalesce::SingleFlight;
use crate::source::SourceError;

/// What every waiter of one fill receives: the record's stored bytes (`None`: not found), and
/// whether a source call was made for it.
#[derive(Clone, Debug)]
pub(crate) struct Fetched {
    pub(crate) bytes: Option<Bytes>,
    pub(crate) charged: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum FillError {
    Source(Arc<SourceError>),
    Decode { id: String, message: String },
}

pub(crate) type FillOutput = Result<Fetched, FillError>;
pub(crate) type InFlight = SingleFlight<(String, Option<u64>), FillOutput>;

impl FillError {
    pub(crate) fn into_cache_error(self, entity: &'static str) -> CacheError {
        match self {
            FillError::Source(err) => CacheError::Source(err),
            FillError::Decode { id, message } => CacheError::Decode {
                entity,
                id,
                message,
            },
        }
    }
}
