//! The records of every base and table, and the change log.
//!
//! Every change to a record, whether made through the REST API, the direct methods of
//! [`RunningAirtable`](super::RunningAirtable) or seeding, goes through [`Store::write`], which
//! appends to the change log in [`Store::record_change`]: the one place to hang change
//! notifications (native webhooks, automations) on.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use chrono::{SecondsFormat, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};

use super::api_error::ApiError;
use super::record::{Change, ChangeKind, Record};
use super::webhooks::Webhooks;

/// How many changes the log keeps (the sequence numbers keep counting).
const CHANGE_LOG_CAPACITY: usize = 10_000;

/// A change to make to one record.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    /// Create a record; a given id that already exists replaces that record.
    Create {
        id: Option<String>,
        created_time: Option<String>,
        fields: Map<String, Value>,
    },
    /// Merge `fields` into the record (or replace all fields when `replace`).
    Update {
        id: String,
        fields: Map<String, Value>,
        replace: bool,
    },
    /// Delete the record.
    Delete { id: String },
}

/// What a lookup or write did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Missing {
    Base,
    Table,
    Record,
}

/// An unknown base or table is Airtable's 403, an unknown record its 404 (see [`ApiError`]).
impl From<Missing> for ApiError {
    fn from(error: Missing) -> ApiError {
        match error {
            Missing::Base | Missing::Table => ApiError::Forbidden,
            Missing::Record => ApiError::NotFound,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) id: String,
    pub(crate) name: String,
    /// Insertion position → record id.
    order: BTreeMap<u64, String>,
    /// Record id → (insertion position, record).
    records: HashMap<String, (u64, Record)>,
    next_position: u64,
    /// Every field name ever written to this table, in first-seen order (the "schema").
    field_order: Vec<String>,
    field_set: HashSet<String>,
}

impl Table {
    fn new(name: &str) -> Table {
        Table {
            id: random_id("tbl"),
            name: name.to_owned(),
            ..Table::default()
        }
    }

    /// Records in insertion order.
    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.order
            .values()
            .filter_map(|id| self.records.get(id).map(|(_, r)| r))
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Record> {
        self.records.get(id).map(|(_, r)| r)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.records.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.order.values().cloned().collect()
    }

    /// Whether a field of that name is known to the table.
    pub(crate) fn has_field(&self, name: &str) -> bool {
        self.field_set.contains(name)
    }

    /// The known field names, in first-seen order.
    pub(crate) fn field_names(&self) -> &[String] {
        &self.field_order
    }

    fn learn_fields(&mut self, fields: &Map<String, Value>) {
        for name in fields.keys() {
            if self.field_set.insert(name.clone()) {
                self.field_order.push(name.clone());
            }
        }
    }

    pub(crate) fn declare_fields<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            if self.field_set.insert(name.to_owned()) {
                self.field_order.push(name.to_owned());
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Base {
    tables: Vec<Table>,
}

impl Base {
    /// Finds a table by name or by `tbl…` id.
    pub(crate) fn table(&self, name_or_id: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name == name_or_id || t.id == name_or_id)
    }

    fn table_mut(&mut self, name_or_id: &str) -> Option<&mut Table> {
        self.tables
            .iter_mut()
            .find(|t| t.name == name_or_id || t.id == name_or_id)
    }
}

/// All bases, their tables and records, and the change log.
#[derive(Debug, Default)]
pub(crate) struct Store {
    bases: HashMap<String, Base>,
    changes: VecDeque<Change>,
    last_seq: u64,
    /// The native webhooks, fed by [`Store::record_change`].
    pub(crate) webhooks: Webhooks,
}

impl Store {
    pub(crate) fn base_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.bases.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub(crate) fn table_names(&self, base: &str) -> Vec<String> {
        self.bases
            .get(base)
            .map(|b| b.tables.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn table(&self, base: &str, table: &str) -> Result<&Table, Missing> {
        self.bases
            .get(base)
            .ok_or(Missing::Base)?
            .table(table)
            .ok_or(Missing::Table)
    }

    fn table_mut(&mut self, base: &str, table: &str) -> Result<&mut Table, Missing> {
        self.bases
            .get_mut(base)
            .ok_or(Missing::Base)?
            .table_mut(table)
            .ok_or(Missing::Table)
    }

    /// Creates the base and table when missing (seeding and direct inserts do; the REST API
    /// does not).
    pub(crate) fn ensure_table(&mut self, base: &str, table: &str) -> &mut Table {
        let base = self.bases.entry(base.to_owned()).or_default();
        let index = match base
            .tables
            .iter()
            .position(|t| t.name == table || t.id == table)
        {
            Some(index) => index,
            None => {
                base.tables.push(Table::new(table));
                base.tables.len() - 1
            }
        };
        &mut base.tables[index]
    }

    /// Applies one change to one record. **Every** record change goes through here.
    pub(crate) fn write(
        &mut self,
        base: &str,
        table: &str,
        op: WriteOp,
    ) -> Result<Option<Record>, Missing> {
        let t = self.table_mut(base, table)?;
        let (kind, id, previous, current) = match op {
            WriteOp::Create {
                id,
                created_time,
                fields,
            } => {
                t.learn_fields(&fields);
                let id = id.unwrap_or_else(|| random_id("rec"));
                let record = Record {
                    id: id.clone(),
                    created_time: created_time.unwrap_or_else(now_timestamp),
                    fields: compact(fields),
                };
                let position = match t.records.get(&id) {
                    Some((position, _)) => *position,
                    None => {
                        let position = t.next_position;
                        t.next_position += 1;
                        t.order.insert(position, id.clone());
                        position
                    }
                };
                let previous = t
                    .records
                    .insert(id.clone(), (position, record.clone()))
                    .map(|(_, r)| r);
                let kind = if previous.is_some() {
                    ChangeKind::Changed
                } else {
                    ChangeKind::Created
                };
                (kind, id, previous, Some(record))
            }
            WriteOp::Update {
                id,
                fields,
                replace,
            } => {
                t.learn_fields(&fields);
                let (_, record) = t.records.get_mut(&id).ok_or(Missing::Record)?;
                let previous = record.clone();
                let mut merged = if replace {
                    Map::new()
                } else {
                    std::mem::take(&mut record.fields)
                };
                for (name, value) in fields {
                    merged.insert(name, value);
                }
                record.fields = compact(merged);
                let current = record.clone();
                (ChangeKind::Changed, id, Some(previous), Some(current))
            }
            WriteOp::Delete { id } => {
                let (position, record) = t.records.remove(&id).ok_or(Missing::Record)?;
                t.order.remove(&position);
                (ChangeKind::Destroyed, id, Some(record), None)
            }
        };
        let (table_name, table_id) = (t.name.clone(), t.id.clone());
        self.record_change(Change {
            seq: 0,
            base: base.to_owned(),
            table: table_name,
            table_id,
            id,
            kind,
            at: Utc::now(),
            previous,
            current: current.clone(),
        });
        Ok(current)
    }

    /// Appends to the change log (assigning the sequence number). The hook for change
    /// notifications.
    fn record_change(&mut self, mut change: Change) {
        self.last_seq += 1;
        change.seq = self.last_seq;
        tracing::trace!(
            seq = change.seq,
            base = %change.base,
            table = %change.table,
            id = %change.id,
            kind = ?change.kind,
            "airtable-local record change"
        );
        self.webhooks.on_change(&change);
        if self.changes.len() >= CHANGE_LOG_CAPACITY {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
    }

    /// Changes with a sequence number greater than `seq`, oldest first.
    pub(crate) fn changes_since(&self, seq: u64) -> Vec<Change> {
        self.changes
            .iter()
            .filter(|c| c.seq > seq)
            .cloned()
            .collect()
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// Drops empty values, as Airtable never returns them.
fn compact(fields: Map<String, Value>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter(|(_, v)| !is_empty_value(v))
        .collect()
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// `prefix` followed by 14 random letters and digits, like Airtable's ids.
pub fn random_id(prefix: &str) -> String {
    let suffix: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(14)
        .map(char::from)
        .collect();
    format!("{prefix}{suffix}")
}

/// The current time in Airtable's shape: `2026-11-25T19:04:05.000Z`.
pub fn now_timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn generated_ids_have_airtable_shape() {
        let id = random_id("rec");
        assert_eq!(id.len(), 17);
        assert!(id.starts_with("rec"));
        assert!(id[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(random_id("rec"), random_id("rec"));
    }

    #[test]
    fn timestamps_have_millisecond_utc_shape() {
        let ts = now_timestamp();
        assert_eq!(ts.len(), "2026-11-25T19:04:05.000Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn writes_keep_insertion_order_drop_empty_values_and_log_changes() {
        let mut store = Store::default();
        store.ensure_table("appX", "Users");
        for name in ["a", "b", "c"] {
            let op = WriteOp::Create {
                id: Some(format!("rec{name}")),
                created_time: None,
                fields: map(json!({"name": name, "empty": "", "none": null, "off": false})),
            };
            assert!(store.write("appX", "Users", op).is_ok());
        }
        let table = store.table("appX", "Users").map(Table::ids);
        assert_eq!(table, Ok(vec!["reca".into(), "recb".into(), "recc".into()]));
        let rec = store
            .table("appX", "Users")
            .ok()
            .and_then(|t| t.get("recb").cloned());
        assert_eq!(rec.map(|r| r.fields), Some(map(json!({"name": "b"}))));
        assert!(store
            .table("appX", "Users")
            .is_ok_and(|t| t.has_field("empty") && t.has_field("none")));

        let update = WriteOp::Update {
            id: "recb".into(),
            fields: map(json!({"age": 3})),
            replace: false,
        };
        assert!(store.write("appX", "Users", update).is_ok());
        let delete = WriteOp::Delete { id: "reca".into() };
        assert!(store.write("appX", "Users", delete).is_ok());
        let missing = WriteOp::Delete { id: "reca".into() };
        assert_eq!(store.write("appX", "Users", missing), Err(Missing::Record));

        let kinds: Vec<(u64, ChangeKind)> = store
            .changes_since(0)
            .iter()
            .map(|c| (c.seq, c.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, ChangeKind::Created),
                (2, ChangeKind::Created),
                (3, ChangeKind::Created),
                (4, ChangeKind::Changed),
                (5, ChangeKind::Destroyed),
            ]
        );
        assert_eq!(store.changes_since(4).len(), 1);
        assert_eq!(store.last_seq(), 5);
    }

    #[test]
    fn writes_to_unknown_base_or_table_fail() {
        let mut store = Store::default();
        let op = || WriteOp::Delete { id: "rec1".into() };
        assert_eq!(store.write("appX", "T", op()), Err(Missing::Base));
        store.ensure_table("appX", "T");
        assert_eq!(store.write("appX", "U", op()), Err(Missing::Table));
    }
}
