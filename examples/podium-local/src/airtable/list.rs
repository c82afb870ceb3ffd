//! Listing records: parameters (query string or `listRecords` body), filtering, sorting,
//! projection and paging with opaque offsets.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api_error::ApiError;
use super::formula::{Formula, Value as FormulaValue};
use super::record::Record;
use super::store::{random_id, Table};

/// Default and largest page size.
const MAX_PAGE_SIZE: usize = 100;
/// How many paging iterators are kept alive (oldest are dropped first).
const MAX_ITERATORS: usize = 1_000;

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct SortSpec {
    pub(crate) field: String,
    #[serde(default)]
    pub(crate) direction: Option<String>,
}

impl SortSpec {
    fn descending(&self) -> bool {
        self.direction
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("desc"))
    }
}

/// The parameters of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListParams {
    #[serde(default)]
    pub(crate) filter_by_formula: Option<String>,
    #[serde(default)]
    pub(crate) fields: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) page_size: Option<usize>,
    #[serde(default)]
    pub(crate) max_records: Option<usize>,
    #[serde(default)]
    pub(crate) offset: Option<String>,
    #[serde(default)]
    pub(crate) sort: Vec<SortSpec>,
}

impl ListParams {
    /// Parses a query string: `filterByFormula`, repeatable `fields[]` (or `fields`),
    /// `pageSize`, `maxRecords`, `offset`, `sort[N][field]` and `sort[N][direction]`.
    /// Other parameters (`view`, `cellFormat`, …) are ignored.
    pub(crate) fn from_query(query: &str) -> Result<ListParams, ApiError> {
        let mut params = ListParams::default();
        let mut sort: BTreeMap<usize, (Option<String>, Option<String>)> = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "filterByFormula" => params.filter_by_formula = Some(value.into_owned()),
                "pageSize" => params.page_size = Some(parse_count(&value)?),
                "maxRecords" => params.max_records = Some(parse_count(&value)?),
                "offset" => params.offset = Some(value.into_owned()),
                key if key == "fields" || is_indexed(key, "fields") => {
                    params
                        .fields
                        .get_or_insert_with(Vec::new)
                        .push(value.into_owned());
                }
                key if key.starts_with("sort[") => {
                    let (index, part) = parse_sort_key(key).ok_or(ApiError::InvalidRequest)?;
                    let entry = sort.entry(index).or_default();
                    match part {
                        "field" => entry.0 = Some(value.into_owned()),
                        "direction" => entry.1 = Some(value.into_owned()),
                        _ => return Err(ApiError::InvalidRequest),
                    }
                }
                _ => {}
            }
        }
        for (_, (field, direction)) in sort {
            let field = field.ok_or(ApiError::InvalidRequest)?;
            params.sort.push(SortSpec { field, direction });
        }
        Ok(params)
    }

    /// Parses a `POST …/listRecords` body.
    pub(crate) fn from_body(body: &[u8]) -> Result<ListParams, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(ListParams::default());
        }
        serde_json::from_slice(body).map_err(|_| ApiError::InvalidRequest)
    }

    fn validate(&self, table: &Table) -> Result<(usize, Option<usize>), ApiError> {
        let page_size = self.page_size.unwrap_or(MAX_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) || self.max_records == Some(0) {
            return Err(ApiError::InvalidRequest);
        }
        if let Some(direction) = self.sort.iter().find_map(|s| s.direction.as_deref()) {
            if !direction.eq_ignore_ascii_case("asc") && !direction.eq_ignore_ascii_case("desc") {
                return Err(ApiError::InvalidRequest);
            }
        }
        let named = self
            .fields
            .iter()
            .flatten()
            .chain(self.sort.iter().map(|s| &s.field));
        for name in named {
            if !table.has_field(name) {
                return Err(ApiError::UnknownField(name.clone()));
            }
        }
        Ok((page_size, self.max_records))
    }
}

fn parse_count(value: &str) -> Result<usize, ApiError> {
    value.trim().parse().map_err(|_| ApiError::InvalidRequest)
}

/// `fields[]` or `fields[3]`.
fn is_indexed(key: &str, name: &str) -> bool {
    key.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('['))
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| inner.chars().all(|c| c.is_ascii_digit()))
}

/// `sort[0][field]` → `(0, "field")`.
fn parse_sort_key(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("sort[")?;
    let (index, rest) = rest.split_once(']')?;
    let part = rest.strip_prefix('[')?.strip_suffix(']')?;
    Some((index.parse().ok()?, part))
}

/// A snapshot of the matching record ids of a list request, kept for its later pages.
#[derive(Debug)]
struct Snapshot {
    base: String,
    table_id: String,
    ids: Arc<Vec<String>>,
}

/// Live paging iterators, oldest dropped first.
#[derive(Debug, Default)]
pub(crate) struct Iterators {
    by_id: HashMap<String, Snapshot>,
    order: VecDeque<String>,
}

impl Iterators {
    fn insert(&mut self, snapshot: Snapshot) -> String {
        let id = random_id("itr");
        if self.order.len() >= MAX_ITERATORS {
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id.clone(), snapshot);
        id
    }

    /// Resolves `itr…/rec…` to the snapshot and the position of the next record.
    fn resolve(
        &self,
        offset: &str,
        base: &str,
        table_id: &str,
    ) -> Result<(String, Arc<Vec<String>>, usize), ApiError> {
        let (itr, next) = offset
            .split_once('/')
            .ok_or(ApiError::IteratorNotAvailable)?;
        let snapshot = self
            .by_id
            .get(itr)
            .filter(|s| s.base == base && s.table_id == table_id)
            .ok_or(ApiError::IteratorNotAvailable)?;
        let position = snapshot
            .ids
            .iter()
            .position(|id| id == next)
            .ok_or(ApiError::IteratorNotAvailable)?;
        Ok((itr.to_owned(), Arc::clone(&snapshot.ids), position))
    }
}

/// Runs a list request against a table and builds the `{"records", "offset"?}` answer.
pub(crate) fn list_records(
    base: &str,
    table: &Table,
    params: &ListParams,
    iterators: &parking_lot::Mutex<Iterators>,
) -> Result<Value, ApiError> {
    let (page_size, max_records) = params.validate(table)?;
    let (itr, ids, start) = match params.offset.as_deref().filter(|o| !o.is_empty()) {
        Some(offset) => {
            let (itr, ids, start) = iterators.lock().resolve(offset, base, &table.id)?;
            (Some(itr), ids, start)
        }
        None => {
            let formula = Formula::parse(params.filter_by_formula.as_deref().unwrap_or(""))
                .map_err(|e| ApiError::InvalidFormula(e.message))?;
            let mut matching: Vec<&Record> = table
                .records()
                .filter(|r| formula.matches(&r.id, &r.fields))
                .collect();
            sort_records(&mut matching, &params.sort);
            if let Some(max) = max_records {
                matching.truncate(max);
            }
            let ids = matching.into_iter().map(|r| r.id.clone()).collect();
            (None, Arc::new(ids), 0)
        }
    };

    let mut page = Vec::new();
    let mut position = start;
    while position < ids.len() && page.len() < page_size {
        // Records deleted since the snapshot are skipped, as Airtable does.
        if let Some(record) = table.get(&ids[position]) {
            page.push(project(record, params.fields.as_deref()));
        }
        position += 1;
    }

    let mut answer = json!({ "records": page });
    if position < ids.len() {
        let itr = match itr {
            Some(itr) => itr,
            None => iterators.lock().insert(Snapshot {
                base: base.to_owned(),
                table_id: table.id.clone(),
                ids: Arc::clone(&ids),
            }),
        };
        answer["offset"] = Value::String(format!("{itr}/{}", ids[position]));
    }
    Ok(answer)
}

/// The record as JSON, restricted to `fields` when given.
pub(crate) fn project(record: &Record, fields: Option<&[String]>) -> Value {
    let shown: Map<String, Value> = match fields {
        None => record.fields.clone(),
        Some(names) => record
            .fields
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    };
    json!({"id": record.id, "createdTime": record.created_time, "fields": shown})
}

fn sort_records(records: &mut [&Record], sort: &[SortSpec]) {
    if sort.is_empty() {
        return;
    }
    records.sort_by(|a, b| {
        for spec in sort {
            let ordering = compare_cells(a.fields.get(&spec.field), b.fields.get(&spec.field));
            let ordering = if spec.descending() {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
}

/// Empty cells first, then numbers numerically, then text.
fn compare_cells(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(m), Some(n)) => m.partial_cmp(&n).unwrap_or(Ordering::Equal),
            _ => FormulaValue::from_json(x)
                .to_text()
                .cmp(&FormulaValue::from_json(y).to_text()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_with_repeated_fields_and_sort_parses() {
        let query = "filterByFormula=%7Bname%7D%3D%27a%2Bb%27&fields%5B%5D=name&fields[]=age\
                     &pageSize=2&maxRecords=7&offset=itrX%2FrecY&sort%5B0%5D%5Bfield%5D=age\
                     &sort[0][direction]=desc&view=Grid";
        let params = ListParams::from_query(query);
        let expected = ListParams {
            filter_by_formula: Some("{name}='a+b'".into()),
            fields: Some(vec!["name".into(), "age".into()]),
            page_size: Some(2),
            max_records: Some(7),
            offset: Some("itrX/recY".into()),
            sort: vec![SortSpec {
                field: "age".into(),
                direction: Some("desc".into()),
            }],
        };
        assert_eq!(params, Ok(expected));
    }

    #[test]
    fn bad_numbers_in_query_are_invalid_requests() {
        assert_eq!(
            ListParams::from_query("pageSize=abc"),
            Err(ApiError::InvalidRequest)
        );
        assert_eq!(
            ListParams::from_query("sort[0][direction]=asc"),
            Err(ApiError::InvalidRequest)
        );
    }

    #[test]
    fn body_parameters_parse() {
        let body = br#"{"filterByFormula": "1", "fields": ["a"], "pageSize": 3, "returnFieldsByFieldId": false}"#;
        let params = ListParams::from_body(body);
        assert!(params.is_ok_and(|p| p.page_size == Some(3) && p.fields == Some(vec!["a".into()])));
        assert_eq!(
            ListParams::from_body(b"{nope"),
            Err(ApiError::InvalidRequest)
        );
        assert_eq!(ListParams::from_body(b""), Ok(ListParams::default()));
    }
}
