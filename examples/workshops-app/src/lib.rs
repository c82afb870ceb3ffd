//! The app's models: one struct per Airtable table, shared by the app and its task runner.

use podium_cache_core::Cacheable;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A row of the "Members" table.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Members")]
#[serde(default)] // Airtable leaves empty cells out of a record
pub struct Member {
    pub id: String,
    pub name: String,
    #[cacheable(index)] // read by e-mail: `cache.get_by_index::<Member>("email", …)`
    pub email: String,
}

/// A row of the "Workshops" table; `host` links to Members.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Workshops")]
#[serde(default)]
pub struct Workshop {
    pub id: String,
    pub title: String,
    #[cacheable(references = "members")]
    pub host: Vec<String>,
}
