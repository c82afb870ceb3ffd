//! The bodies of Airtable's records API as the client reads them (list, get, delete); see
//! <https://airtable.com/developers/web/api/list-records> and
//! <https://airtable.com/developers/web/api/delete-multiple-records>.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::SourceRecord;

/// One record (`{"id", "fields"}`).
#[derive(Deserialize)]
pub(super) struct RecordWire {
    pub(super) id: String,
    #[serde(default)]
    pub(super) fields: Map<String, Value>,
}

/// One page of a list (`{"records", "offset"}`).
#[derive(Deserialize)]
pub(super) struct ListWire {
    pub(super) records: Vec<RecordWire>,
    #[serde(default)]
    pub(super) offset: Option<String>,
}

/// One deleted record (`{"id", "deleted"}`).
#[derive(Deserialize)]
pub(super) struct DeletedWire {
    pub(super) id: String,
    #[serde(default)]
    pub(super) deleted: bool,
}

/// A batch delete's answer (`{"records": [...]}`).
#[derive(Deserialize)]
pub(super) struct DeleteManyWire {
    pub(super) records: Vec<DeletedWire>,
}

impl From<RecordWire> for SourceRecord {
    fn from(wire: RecordWire) -> Self {
        SourceRecord {
            id: wire.id,
            fields: wire.fields,
        }
    }
}
