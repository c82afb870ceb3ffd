//! Three models of a small conference app of their own (speakers, their talks, the talks'
//! ratings), for the tests that run the generated automation scripts: between them they have
//! text, number and checkbox fields, links to one record and links to many, and an empty cell
//! in last place (`tests/automation_scripts.rs` leaves each model's last field empty).
//!
//! Included with `#[path]` by the tests that need them, so that the other users of
//! `tests/common/` do not compile them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A speaker: text, a number, a checkbox, and links to many talks.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Speakers")]
pub struct Speaker {
    pub id: String,
    pub name: String,
    #[cacheable(index)]
    pub email: String,
    pub years_speaking: f64,
    #[serde(default)]
    pub keynote: bool,
    #[serde(default)]
    #[cacheable(references = "talks")]
    pub talks: Vec<String>,
}

/// A talk: links to one speaker and to many ratings, and optional notes.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Talks")]
pub struct Talk {
    pub id: String,
    pub title: String,
    pub minutes: u32,
    #[cacheable(references = "speakers")]
    pub speaker: Option<String>,
    #[serde(default)]
    #[cacheable(references = "ratings")]
    pub ratings: Vec<String>,
    pub notes: Option<String>,
}

/// A rating of a talk by some speakers.
#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Ratings")]
pub struct Rating {
    pub id: String,
    #[cacheable(references = "talks")]
    pub talk: Option<String>,
    pub stars: f64,
    #[serde(default)]
    #[cacheable(references = "speakers")]
    pub raters: Vec<String>,
}
