//! `formula`: the `filterByFormula` builders of [`podium_cache_core::source::formula`], checked
//! against a real formula parser and evaluator (the local Airtable server's,
//! [`podium_local::airtable::formula`]) as the oracle.
//!
//! Modes (the input's first byte, modulo 6):
//! - 0 `string_literal`: any text is one literal that reads back as the text (less the control
//!   characters other than `\n`, `\r`, `\t`, which the builder drops as documented).
//! - 1 `field_equals`: matches exactly the records whose field holds the value.
//! - 2 `record_id_in`: matches exactly the listed ids.
//! - 3 `normalized_field_equals`: a record whose field holds the looked-up value (in any case,
//!   with any surrounding whitespace) matches; one holding another normalised value does not.
//! - 4 `and`: matches exactly when every term does.
//! - 5 any text: the oracle parses or refuses it, and evaluates what it parses, without panicking
//!   (the local server parses formulas from HTTP requests).

use podium_cache_core::entity::normalize_index_value;
use podium_cache_core::source::formula;
use podium_local::airtable::formula::{Formula, Value};
use serde_json::{Map, Value as Json};

use crate::input::{encode_text, Input};

/// What the builders keep of a text: everything but control characters other than `\n\r\t`.
pub fn kept(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .collect()
}

/// What `field_ref` keeps of a field name: no control characters at all.
fn kept_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).collect()
}

fn parse(text: &str) -> Formula {
    Formula::parse(text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
}

fn record(pairs: &[(&str, &str)]) -> Map<String, Json> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Json::String((*v).to_owned())))
        .collect()
}

/// Runs one input.
pub fn check(data: &[u8]) {
    let Some(mut input) = Input::new(data) else {
        return;
    };
    match input.mode() % 6 {
        0 => literal(&input.text()),
        1 => field_equals(&input.text(), &input.text(), &input.text()),
        2 => record_id_in(&input.texts(12)),
        3 => normalized(&input.text(), &input.text(), &input.text()),
        4 => and(&input.texts(12)),
        _ => any_text(&input.text()),
    }
}

fn literal(text: &str) {
    let source = formula::string_literal(text);
    let value = parse(&source).evaluate("recX", &Map::new());
    assert_eq!(value, Ok(Value::Text(kept(text))), "literal {source:?}");
}

/// A field name the oracle can refer to (it refuses a blank reference).
fn usable_name(name: &str) -> Option<String> {
    let kept = kept_name(name);
    (!kept.trim().is_empty()).then_some(kept)
}

fn field_equals(name: &str, value: &str, other: &str) {
    let source = formula::field_equals(name, value);
    let Some(field) = usable_name(name) else {
        assert!(Formula::parse(&source).is_err(), "{source:?}");
        return;
    };
    let parsed = parse(&source);
    assert_eq!(parsed.field_names(), vec![field.clone()], "{source:?}");
    let value = kept(value);
    assert!(
        parsed.matches("recX", &record(&[(&field, &value)])),
        "{source:?} misses {value:?}"
    );
    let other = kept(other);
    assert_eq!(
        parsed.matches("recX", &record(&[(&field, &other)])),
        other == value,
        "{source:?} on {other:?}"
    );
}

fn record_id_in(ids: &[String]) {
    let source = formula::record_id_in(ids);
    let parsed = parse(&source);
    let kept_ids: Vec<String> = ids.iter().map(|id| kept(id)).collect();
    for id in &kept_ids {
        assert!(parsed.matches(id, &Map::new()), "{source:?} misses {id:?}");
    }
    let outsider = format!("{}~", kept_ids.concat());
    assert!(
        !parsed.matches(&outsider, &Map::new()),
        "{source:?} matches {outsider:?}"
    );
}

fn normalized(name: &str, looked_up: &str, other: &str) {
    let Some(field) = usable_name(name) else {
        return;
    };
    // The builders drop control characters (documented), so a value with one is not this
    // property's business.
    if looked_up.chars().any(char::is_control) || other.chars().any(char::is_control) {
        return;
    }
    let source = formula::normalized_field_equals(name, looked_up);
    let parsed = parse(&source);
    for stored in [
        looked_up.to_owned(),
        looked_up.to_uppercase(),
        format!("  {looked_up}\t"),
    ] {
        if normalize_index_value(&stored) == normalize_index_value(looked_up) {
            assert!(
                parsed.matches("recX", &record(&[(&field, &stored)])),
                "{source:?} misses the stored {stored:?}"
            );
        }
    }
    assert_eq!(
        parsed.matches("recX", &record(&[(&field, other)])),
        normalize_index_value(other) == normalize_index_value(looked_up),
        "{source:?} on {other:?}"
    );
}

fn and(texts: &[String]) {
    // Pairs (field, value); fields made distinct so a record can hold them all.
    let pairs: Vec<(String, String)> = texts
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let name = format!("f{i} {}", kept_name(&pair[0]));
            (name, kept(pair.get(1).map(String::as_str).unwrap_or("")))
        })
        .collect();
    let terms: Vec<String> = pairs
        .iter()
        .map(|(f, v)| formula::field_equals(f, v))
        .collect();
    let source = formula::and(&terms);
    let parsed = parse(&source);
    let all: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(f, v)| (f.as_str(), v.as_str()))
        .collect();
    assert!(parsed.matches("recX", &record(&all)), "{source:?}");
    for i in 0..all.len() {
        let changed = format!("{}~", all[i].1);
        let mut some = all.clone();
        some[i].1 = &changed;
        assert!(
            !parsed.matches("recX", &record(&some)),
            "{source:?} with term {i} off"
        );
    }
}

fn any_text(text: &str) {
    if let Ok(parsed) = Formula::parse(text) {
        let fields = record(&[("name", "Ada"), ("email", "ada@example.com"), ("n", "3")]);
        let _ = parsed.evaluate("recX", &fields);
        let _ = parsed.field_names();
    }
}

/// Inputs to start from.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        encode_text(0, &[r"x' OR TRUE() OR 'y\"]),
        encode_text(0, &["line\nbreak\ttab\r\u{1}bell\u{7}"]),
        encode_text(1, &["email", "ada@example.com", "grace@example.com"]),
        encode_text(1, &["we}ird\\ name", "O'Brien\\", "O'Brien"]),
        encode_text(2, &["recA", "recB", "rec'C", "rec\\D"]),
        encode_text(2, &[]),
        encode_text(3, &["email", " Ada@Example.COM ", "ada@example.org"]),
        encode_text(3, &["slug", "ÉCOLE", "école"]),
        encode_text(4, &["event", "recE", "owner", "recU"]),
        encode_text(5, &["AND(LOWER(TRIM({email}))='ada@example.com', {n} > 2)"]),
        encode_text(
            5,
            &["IF(LEN({name}) >= 3, CONCATENATE({name}, \"!\"), BLANK())"],
        ),
    ]
}
