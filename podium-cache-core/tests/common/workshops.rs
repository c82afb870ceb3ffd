//! Two models of a small app of its own (members and the workshops they attend), for the
//! tests that run the library as a user's app would: maintenance, the task runner.

use podium_cache_core::entity::Cacheable;
use podium_local::airtable::RunningAirtable;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A member of the app, linked to the workshops they attend.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Members")]
pub struct Member {
    pub id: String,
    pub name: String,
    #[serde(default)]
    #[cacheable(references = "workshops")]
    pub workshops: Vec<String>,
}

/// A workshop.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Workshops")]
pub struct Workshop {
    pub id: String,
    pub title: String,
}

/// Declares both tables in `base` with the models' fields, so `fields[]` may name any of
/// them before a record fills it.
pub fn declare_tables(airtable: &RunningAirtable, base: &str) {
    for meta in [Member::meta(), Workshop::meta()] {
        let fields: Vec<&str> = meta.fields.iter().map(|f| f.name).collect();
        airtable.declare_fields(base, meta.table, &fields);
    }
}
