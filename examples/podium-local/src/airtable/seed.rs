//! Seed data: the records a server starts with.
//!
//! ```json
//! {"bases": {"appXXXXXXXXXXXXXX": {
//!     "Users":  [{"id": "recXXXXXXXXXXXXXX", "createdTime": "2026-11-25T19:04:05.000Z",
//!                 "fields": {"email": "ada@example.com"}}],
//!     "Events": {"fields": ["name", "slug", "owner"], "records": [{"fields": {"name": "Demo"}}]}
//! }}}
//! ```
//!
//! A table is either a list of records or an object with the table's field names and its
//! records (the field names declare fields that no record fills yet, so `fields[]` may name
//! them). `id` and `createdTime` are optional and generated when missing; a field given as
//! `null` is declared but stays empty.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::HarnessError;

/// Records to load into a server, by base id and table name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedData {
    /// Base id → table name → table.
    #[serde(default)]
    pub bases: BTreeMap<String, BTreeMap<String, SeedTable>>,
}

/// One seeded table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SeedTable {
    /// Just the records.
    Records(Vec<SeedRecord>),
    /// Declared field names and the records.
    WithFields {
        /// Field names the table has, even if no record fills them.
        #[serde(default)]
        fields: Vec<String>,
        /// The records, in order.
        #[serde(default)]
        records: Vec<SeedRecord>,
    },
}

impl SeedTable {
    /// The records of the table.
    pub fn records(&self) -> &[SeedRecord] {
        match self {
            SeedTable::Records(records) | SeedTable::WithFields { records, .. } => records,
        }
    }

    /// The declared field names (empty for the plain list form).
    pub fn declared_fields(&self) -> &[String] {
        match self {
            SeedTable::Records(_) => &[],
            SeedTable::WithFields { fields, .. } => fields,
        }
    }
}

/// One seeded record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedRecord {
    /// The record id; generated when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The creation time; now when missing.
    #[serde(
        default,
        rename = "createdTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_time: Option<String>,
    /// The cell values.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

impl SeedData {
    /// No bases at all.
    pub fn new() -> SeedData {
        SeedData::default()
    }

    /// Reads the seed JSON format from a value.
    pub fn from_json(value: &Value) -> Result<SeedData, HarnessError> {
        SeedData::deserialize(value).map_err(|e| HarnessError::InvalidSeed(e.to_string()))
    }

    /// Reads the seed JSON format from a file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<SeedData, HarnessError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| HarnessError::io(format!("reading seed file {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| HarnessError::InvalidSeed(format!("{}: {e}", path.display())))
    }

    /// Adds a record with the given fields (a JSON object) and a generated id.
    pub fn with_record(self, base: &str, table: &str, fields: Value) -> SeedData {
        self.push(base, table, None, fields)
    }

    /// Adds a record with the given id and fields (a JSON object).
    pub fn with_record_id(self, base: &str, table: &str, id: &str, fields: Value) -> SeedData {
        self.push(base, table, Some(id.to_owned()), fields)
    }

    fn push(mut self, base: &str, table: &str, id: Option<String>, fields: Value) -> SeedData {
        let fields = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let record = SeedRecord {
            id,
            created_time: None,
            fields,
        };
        let tables = self.bases.entry(base.to_owned()).or_default();
        match tables
            .entry(table.to_owned())
            .or_insert_with(|| SeedTable::Records(Vec::new()))
        {
            SeedTable::Records(records) | SeedTable::WithFields { records, .. } => {
                records.push(record)
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_table_forms_parse() {
        let seed = SeedData::from_json(&json!({"bases": {"appA": {
            "Users": [{"id": "rec1", "fields": {"a": 1}}, {"fields": {}}],
            "Events": {"fields": ["name"], "records": [{"createdTime": "2026-01-01T00:00:00.000Z"}]}
        }}}));
        let seed = match seed {
            Ok(seed) => seed,
            Err(e) => panic!("{e}"),
        };
        let tables = &seed.bases["appA"];
        assert_eq!(tables["Users"].records().len(), 2);
        assert_eq!(tables["Users"].records()[0].id.as_deref(), Some("rec1"));
        assert_eq!(tables["Events"].declared_fields(), ["name".to_owned()]);
        assert_eq!(tables["Events"].records().len(), 1);
    }

    #[test]
    fn malformed_seed_is_an_error() {
        assert!(SeedData::from_json(&json!({"bases": {"appA": {"Users": 3}}})).is_err());
        assert!(SeedData::from_json(&json!({"bases": []})).is_err());
    }

    #[test]
    fn builder_methods_append_records() {
        let seed = SeedData::new()
            .with_record("appA", "T", json!({"x": 1}))
            .with_record_id("appA", "T", "recB", json!({"x": 2}));
        let records = seed.bases["appA"]["T"].records();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].id.as_deref(), Some("recB"));
    }
}
