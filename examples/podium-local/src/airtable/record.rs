//! A record as Airtable returns it, and one entry of the change log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A record as Airtable returns it: `{"id", "createdTime", "fields"}`. Empty values (`null`,
/// `""`, `[]`, `false`) are never present in `fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `rec` followed by 14 letters and digits (seeded records may use any id).
    pub id: String,
    /// ISO-8601 UTC with milliseconds, e.g. `2026-11-25T19:04:05.000Z`.
    #[serde(rename = "createdTime")]
    pub created_time: String,
    /// The cell values, by field name.
    pub fields: Map<String, Value>,
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The record was created.
    Created,
    /// Some of its fields changed.
    Changed,
    /// The record was deleted.
    Destroyed,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Strictly increasing, starting at 1, never reused.
    pub seq: u64,
    /// The base id.
    pub base: String,
    /// The table name.
    pub table: String,
    /// The table id (`tbl…`).
    pub table_id: String,
    /// The record id.
    pub id: String,
    /// What happened.
    pub kind: ChangeKind,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The record before the change (`None` when created).
    pub previous: Option<Record>,
    /// The record after the change (`None` when destroyed).
    pub current: Option<Record>,
}
