//! Runtime behaviour of `#[derive(Cacheable)]`: the metadata, names, index values, references
//! and schema hash it generates.

use podium_cache_core::entity::{Cacheable, EntityMeta, FieldKind, FieldMeta, Reference};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Events")]
struct Event {
    id: String,
    name: String,
    #[cacheable(index)]
    slug: String,
    max_votes: Option<f64>,
    #[serde(default)]
    #[cacheable(references = "users")]
    owner: Vec<String>,
    #[cacheable(references = "venues")]
    venue: Option<String>,
    #[serde(skip)]
    local_note: String,
}

fn event() -> Event {
    Event {
        id: "recEvent1".into(),
        name: "Demo day".into(),
        slug: "demo-day".into(),
        max_votes: Some(3.0),
        owner: vec!["recU1".into(), "recU2".into()],
        venue: Some("recV1".into()),
        local_note: String::new(),
    }
}

#[test]
fn meta_lists_table_entity_id_key_and_every_non_id_field_in_order() {
    let expected = EntityMeta {
        table: "Events",
        entity: "events",
        id_key: "id",
        fields: &[
            FieldMeta {
                name: "name",
                kind: FieldKind::Scalar,
                index: false,
            },
            FieldMeta {
                name: "slug",
                kind: FieldKind::Scalar,
                index: true,
            },
            FieldMeta {
                name: "max_votes",
                kind: FieldKind::Scalar,
                index: false,
            },
            FieldMeta {
                name: "owner",
                kind: FieldKind::Link {
                    entity: "users",
                    many: true,
                },
                index: false,
            },
            FieldMeta {
                name: "venue",
                kind: FieldKind::Link {
                    entity: "venues",
                    many: false,
                },
                index: false,
            },
        ],
    };
    assert_eq!(*Event::meta(), expected);
    assert!(std::ptr::eq(Event::meta(), Event::meta()));
}

#[test]
fn id_returns_the_id_field() {
    assert_eq!(event().id(), "recEvent1");
}

#[test]
fn references_give_one_entry_per_link_field_with_its_ids() {
    let e = event();
    assert_eq!(
        e.references(),
        vec![
            Reference {
                field: "owner",
                entity: "users",
                ids: vec!["recU1", "recU2"],
            },
            Reference {
                field: "venue",
                entity: "venues",
                ids: vec!["recV1"],
            },
        ]
    );
    let empty = Event {
        owner: vec![],
        venue: None,
        ..event()
    };
    let ids: Vec<usize> = empty.references().iter().map(|r| r.ids.len()).collect();
    assert_eq!(ids, vec![0, 0]);
}

#[test]
fn index_values_are_raw_and_skip_an_empty_string() {
    assert_eq!(
        event().index_values(),
        vec![("slug", "demo-day".to_string())]
    );
    let raw = Event {
        slug: " Demo-Day ".into(),
        ..event()
    };
    assert_eq!(raw.index_values(), vec![("slug", " Demo-Day ".to_string())]);
    let empty = Event {
        slug: String::new(),
        ..event()
    };
    assert_eq!(empty.index_values(), vec![]);
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
#[cacheable(table = "Scores")]
struct Score {
    id: String,
    #[cacheable(index)]
    rank: u32,
    #[cacheable(index)]
    ratio: f64,
    #[cacheable(index)]
    active: bool,
    #[cacheable(index)]
    nickname: Option<String>,
    #[cacheable(index)]
    level: Option<i64>,
}

#[test]
fn index_values_render_numbers_and_bools_and_omit_none() {
    let score = Score {
        id: "rec1".into(),
        rank: 7,
        ratio: 0.5,
        active: true,
        nickname: None,
        level: Some(-2),
    };
    assert_eq!(
        score.index_values(),
        vec![
            ("rank", "7".to_string()),
            ("ratio", "0.5".to_string()),
            ("active", "true".to_string()),
            ("level", "-2".to_string()),
        ]
    );
    let named = Score {
        nickname: Some("ace".into()),
        level: None,
        ..score
    };
    assert!(named
        .index_values()
        .contains(&("nickname", "ace".to_string())));
    assert!(!named.index_values().iter().any(|(f, _)| *f == "level"));
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
#[cacheable(table = "Invalidate Config", entity = "config")]
struct ConfigRow {
    id: String,
    key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
#[cacheable(table = "Invalidate Config")]
struct DerivedEntity {
    id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
#[cacheable(table = "Team-Members (2024)")]
struct Punctuated {
    id: String,
}

#[test]
fn entity_defaults_to_table_lowercased_with_non_alphanumerics_as_underscores() {
    assert_eq!(DerivedEntity::meta().entity, "invalidate_config");
    assert_eq!(Punctuated::meta().entity, "team_members__2024_");
    assert_eq!(Punctuated::meta().table, "Team-Members (2024)");
}

#[test]
fn entity_attribute_overrides_the_derived_name() {
    assert_eq!(ConfigRow::meta().entity, "config");
    assert_eq!(ConfigRow::meta().table, "Invalidate Config");
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
#[cacheable(table = "People")]
#[serde(rename_all = "PascalCase")]
struct Person {
    #[cacheable(id)]
    #[serde(rename = "Record ID")]
    record: String,
    first_name: String,
    #[serde(rename = "E-mail")]
    #[cacheable(index)]
    email: String,
    #[serde(default)]
    #[cacheable(references = "teams")]
    team_links: Vec<String>,
    #[serde(skip_serializing, default)]
    cached_at: u64,
}

#[test]
fn rename_and_rename_all_give_the_airtable_names_and_the_id_key() {
    let meta = Person::meta();
    assert_eq!(meta.id_key, "Record ID");
    let names: Vec<&str> = meta.field_names().collect();
    assert_eq!(names, vec!["FirstName", "E-mail", "TeamLinks"]);
    let person = Person {
        record: "recP".into(),
        first_name: "Ada".into(),
        email: "ada@example.com".into(),
        team_links: vec!["recT".into()],
        cached_at: 0,
    };
    assert_eq!(person.id(), "recP");
    assert_eq!(
        person.index_values(),
        vec![("E-mail", "ada@example.com".to_string())]
    );
    assert_eq!(person.references()[0].field, "TeamLinks");
    // The names agree with what serde actually writes.
    let json = serde_json::to_value(&person).expect("serialize");
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = vec!["Record ID", "FirstName", "E-mail", "TeamLinks"];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let back: Person = serde_json::from_value(json).expect("deserialize");
    assert_eq!((back.record.as_str(), back.cached_at), ("recP", 0));
}

macro_rules! renamed {
    ($name:ident, $rule:literal) => {
        #[derive(
            Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
        )]
        #[cacheable(table = "T")]
        #[serde(rename_all = $rule)]
        struct $name {
            id: String,
            display_name: String,
            r#type: String,
        }

        impl $name {
            fn serde_names() -> Vec<String> {
                let value = serde_json::to_value(Self {
                    id: String::new(),
                    display_name: String::new(),
                    r#type: String::new(),
                })
                .expect("serialize");
                value.as_object().expect("object").keys().cloned().collect()
            }
        }
    };
}

renamed!(Lower, "lowercase");
renamed!(Upper, "UPPERCASE");
renamed!(Camel, "camelCase");
renamed!(Snake, "snake_case");
renamed!(Pascal, "PascalCase");
renamed!(Screaming, "SCREAMING_SNAKE_CASE");
renamed!(Kebab, "kebab-case");
renamed!(ScreamingKebab, "SCREAMING-KEBAB-CASE");

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn derive_names(meta: &EntityMeta) -> Vec<String> {
    let mut names: Vec<String> = meta.field_names().map(str::to_owned).collect();
    names.push(meta.id_key.to_owned());
    sorted(names)
}

/// (rule, names from the derive, names serde writes, the expected non-id names).
type RenameCase = (&'static str, Vec<String>, Vec<String>, Vec<&'static str>);

#[test]
fn every_rename_all_rule_matches_serde() {
    let cases: Vec<RenameCase> = vec![
        (
            "lowercase",
            derive_names(Lower::meta()),
            sorted(Lower::serde_names()),
            vec!["display_name", "type"],
        ),
        (
            "UPPERCASE",
            derive_names(Upper::meta()),
            sorted(Upper::serde_names()),
            vec!["DISPLAY_NAME", "TYPE"],
        ),
        (
            "camelCase",
            derive_names(Camel::meta()),
            sorted(Camel::serde_names()),
            vec!["displayName", "type"],
        ),
        (
            "snake_case",
            derive_names(Snake::meta()),
            sorted(Snake::serde_names()),
            vec!["display_name", "type"],
        ),
        (
            "PascalCase",
            derive_names(Pascal::meta()),
            sorted(Pascal::serde_names()),
            vec!["DisplayName", "Type"],
        ),
        (
            "SCREAMING_SNAKE_CASE",
            derive_names(Screaming::meta()),
            sorted(Screaming::serde_names()),
            vec!["DISPLAY_NAME", "TYPE"],
        ),
        (
            "kebab-case",
            derive_names(Kebab::meta()),
            sorted(Kebab::serde_names()),
            vec!["display-name", "type"],
        ),
        (
            "SCREAMING-KEBAB-CASE",
            derive_names(ScreamingKebab::meta()),
            sorted(ScreamingKebab::serde_names()),
            vec!["DISPLAY-NAME", "TYPE"],
        ),
    ];
    for (rule, derived, serde_names, fields) in cases {
        assert_eq!(derived, serde_names, "rule {rule}");
        let derived_fields: Vec<&str> = derived
            .iter()
            .map(String::as_str)
            .filter(|n| !n.eq_ignore_ascii_case("id"))
            .collect();
        assert_eq!(derived_fields, fields, "rule {rule}");
    }
}

#[test]
fn schema_hash_is_twelve_hex_digits_and_stable_across_calls() {
    let first = Event::schema_hash();
    assert_eq!(first.len(), 12);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(first, Event::schema_hash());
    assert!(std::ptr::eq(first, Event::schema_hash()));
    assert_eq!(
        first,
        podium_cache_core::entity::schema_hash_of::<Event>().as_str()
    );
}

mod v1 {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
    #[cacheable(table = "Projects")]
    pub struct Project {
        pub id: String,
        pub name: String,
        pub points: f64,
    }
}

mod same_shape {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
    #[cacheable(table = "Projects")]
    pub struct Project {
        pub id: String,
        pub name: String,
        pub points: f64,
    }
}

mod changed_type {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
    #[cacheable(table = "Projects")]
    pub struct Project {
        pub id: String,
        pub name: String,
        pub points: String,
    }
}

mod changed_name {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable)]
    #[cacheable(table = "Projects")]
    pub struct Project {
        pub id: String,
        pub title: String,
        pub points: f64,
    }
}

#[test]
fn schema_hash_depends_on_shape_only() {
    use podium_cache_core::entity::Cacheable as _;
    let base = v1::Project::schema_hash();
    assert_eq!(base, same_shape::Project::schema_hash());
    assert_ne!(base, changed_type::Project::schema_hash());
    assert_ne!(base, changed_name::Project::schema_hash());
    assert_ne!(
        changed_type::Project::schema_hash(),
        changed_name::Project::schema_hash()
    );
}

#[test]
fn each_model_caches_its_own_schema_hash() {
    assert_ne!(Event::schema_hash(), Person::schema_hash());
    assert_ne!(Lower::schema_hash(), Upper::schema_hash());
}
