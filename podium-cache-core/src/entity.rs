//! What a cached model is: the [`Cacheable`] trait and its static [`EntityMeta`].
//!
//! `#[derive(Cacheable)]` (from `podium-cache-macros`, re-exported as
//! [`crate::Cacheable`]) implements the trait; it can also be written by hand:
//!
//! ```
//! use podium_cache_core::entity::{Cacheable, EntityMeta, FieldKind, FieldMeta, Reference};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
//! struct Event {
//!     id: String,
//!     name: String,
//!     slug: String,
//!     #[serde(default)]
//!     owner: Vec<String>,
//! }
//!
//! static EVENT_META: EntityMeta = EntityMeta {
//!     table: "Events",
//!     entity: "events",
//!     id_key: "id",
//!     fields: &[
//!         FieldMeta { name: "name", kind: FieldKind::Scalar, index: false },
//!         FieldMeta { name: "slug", kind: FieldKind::Scalar, index: true },
//!         FieldMeta { name: "owner", kind: FieldKind::Link { entity: "users", many: true }, index: false },
//!     ],
//! };
//!
//! impl Cacheable for Event {
//!     fn meta() -> &'static EntityMeta { &EVENT_META }
//!     fn schema_hash() -> &'static str {
//!         static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
//!         HASH.get_or_init(podium_cache_core::entity::schema_hash_of::<Self>)
//!     }
//!     fn id(&self) -> &str { &self.id }
//!     fn index_values(&self) -> Vec<(&'static str, String)> { vec![("slug", self.slug.clone())] }
//!     fn references(&self) -> Vec<Reference<'_>> {
//!         vec![Reference { field: "owner", entity: "users", ids: self.owner.iter().map(String::as_str).collect() }]
//!     }
//! }
//!
//! assert_eq!(Event::meta().entity, "events");
//! assert_eq!(Event::schema_hash().len(), 12);
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How one model field maps to an Airtable field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Text, number, checkbox, date: anything that is not a linked record.
    Scalar,
    /// A linked-record field; `entity` is the entity it points to, `many` whether it holds a list.
    Link {
        /// Entity name of the linked table (e.g. `"users"`).
        entity: &'static str,
        /// `Vec<String>` (true) or `Option<String>` (false).
        many: bool,
    },
}

/// One field of a model, by its Airtable (serde) name. The id field is not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldMeta {
    /// The Airtable field name (the serde name of the Rust field).
    pub name: &'static str,
    /// Scalar or linked record.
    pub kind: FieldKind,
    /// Whether a secondary index `value -> id` is kept for this field.
    pub index: bool,
}

/// The static description of a model: its table, entity name and fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityMeta {
    /// Airtable table name, e.g. `"Events"`.
    pub table: &'static str,
    /// Entity name used in keys, e.g. `"events"`.
    pub entity: &'static str,
    /// The serde name of the id field in the flat JSON object (normally `"id"`).
    pub id_key: &'static str,
    /// Every non-id field, in declaration order.
    pub fields: &'static [FieldMeta],
}

impl EntityMeta {
    /// The field names that carry a secondary index.
    pub fn indexed_fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().filter(|f| f.index).map(|f| f.name)
    }

    /// Whether `field` is an indexed field of this entity.
    pub fn has_index(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f.index && f.name == field)
    }

    /// The Airtable names of the fields a source read needs.
    pub fn field_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().map(|f| f.name)
    }
}

/// The ids one linked-record field of a record points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    /// Airtable field name.
    pub field: &'static str,
    /// Entity the ids belong to.
    pub entity: &'static str,
    /// Linked record ids.
    pub ids: Vec<&'a str>,
}

/// A model the cache can store: implemented by `#[derive(Cacheable)]`.
///
/// The flat JSON shape of a model is `{"id": "rec…", <field>: <value>, …}` with Airtable field
/// names; it is what the cache stores and what webhook deliveries carry.
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Table, entity and field description.
    fn meta() -> &'static EntityMeta;
    /// A short hash of the model's shape; part of every data and index key, so a changed struct
    /// never reads entries written by the old one.
    fn schema_hash() -> &'static str;
    /// The Airtable record id.
    fn id(&self) -> &str;
    /// `(field, raw value)` for every indexed field that has a value.
    fn index_values(&self) -> Vec<(&'static str, String)>;
    /// The linked records this record points to.
    fn references(&self) -> Vec<Reference<'_>>;
}

/// Normalises an index value the way every lookup and every index write does: trimmed and
/// lower-cased, so `" Ada@Example.COM "` and `"ada@example.com"` find the same record.
///
/// ```
/// assert_eq!(podium_cache_core::entity::normalize_index_value(" Ada@Example.COM "), "ada@example.com");
/// ```
pub fn normalize_index_value(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Computes a 12-hex-digit hash of a model's JSON schema (schemars), used as
/// [`Cacheable::schema_hash`]. Any change of field names, types or serde attributes changes it.
///
/// ```
/// #[derive(schemars::JsonSchema)]
/// struct A { x: u32 }
/// #[derive(schemars::JsonSchema)]
/// #[allow(dead_code)]
/// struct B { x: String }
/// let (a, b) = (podium_cache_core::entity::schema_hash_of::<A>(), podium_cache_core::entity::schema_hash_of::<B>());
/// assert_ne!(a, b);
/// ```
pub fn schema_hash_of<T: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    // serde_json's Map keeps keys sorted (no `preserve_order`), so the text is canonical.
    let text = serde_json::to_string(&schema).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..6])
}
