//! The formula subset against Airtable's documented behaviour.

use super::*;
use serde_json::{json, Map, Value as Json};

fn fields(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

fn eval_on(formula: &str, record: Json) -> Value {
    Formula::parse(formula)
        .and_then(|f| {
            f.evaluate("recTEST", &fields(record))
                .map_err(|e| FormulaError::new(e.to_string()))
        })
        .unwrap_or_else(|e| panic!("{formula}: {e}"))
}

fn matches(formula: &str, record: Json) -> bool {
    Formula::parse(formula)
        .unwrap_or_else(|e| panic!("{formula}: {e}"))
        .matches("recTEST", &fields(record))
}

/// Escapes a value the way a client must before putting it in single quotes.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[test]
fn empty_formula_matches_everything() {
    assert!(matches("", json!({})));
    assert!(matches("   ", json!({"a": 1})));
    assert!(Formula::parse("").map(|f| f.is_empty()).unwrap_or(false));
}

#[test]
fn field_equality_is_case_sensitive() {
    let rec = json!({"email": "Ada@example.com"});
    assert!(matches("{email}='Ada@example.com'", rec.clone()));
    assert!(!matches("{email}='ada@example.com'", rec.clone()));
    assert!(matches("LOWER({email})='ada@example.com'", rec));
}

#[test]
fn field_names_with_spaces_and_escaped_braces_resolve() {
    let rec = json!({"Full Name": "Ada", "odd}name": 3});
    assert!(matches("{Full Name} = \"Ada\"", rec.clone()));
    assert!(matches("{odd\\}name} = 3", rec));
}

#[test]
fn missing_field_is_blank_and_equals_empty_text_zero_and_false() {
    assert!(matches("{missing}=''", json!({})));
    assert!(matches("{missing}=0", json!({})));
    assert!(matches("{missing}=FALSE()", json!({})));
    assert!(matches("{missing}=BLANK()", json!({})));
    assert!(!matches("{missing}", json!({})));
    assert!(!matches("{missing}='x'", json!({})));
    assert!(matches("NOT({missing})", json!({})));
}

#[test]
fn numbers_compare_numerically() {
    let rec = json!({"n": 10, "s": "10"});
    assert!(matches("{n}>9", rec.clone()));
    assert!(matches("{n}=10", rec.clone()));
    assert!(matches("{n}>=10", rec.clone()));
    assert!(!matches("{n}<10", rec.clone()));
    assert!(matches("{n}='10'", rec.clone()));
    assert!(matches("{s}=10", rec.clone()));
    assert!(matches("{n}*2+1=21", rec.clone()));
    assert!(matches("-{n}<0", rec));
}

#[test]
fn arithmetic_precedence_follows_the_usual_rules() {
    assert_eq!(eval_on("1+2*3", json!({})), Value::Number(7.0));
    assert_eq!(eval_on("(1+2)*3", json!({})), Value::Number(9.0));
    assert_eq!(eval_on("10/4", json!({})), Value::Number(2.5));
    assert_eq!(eval_on("1+2&'x'", json!({})), Value::Text("3x".into()));
}

#[test]
fn division_by_zero_makes_the_record_not_match() {
    assert!(!matches("1/0", json!({})));
    assert!(!matches("NOT(1/0)", json!({})));
}

#[test]
fn string_concat_joins_text_forms() {
    let rec = json!({"first": "Ada", "last": "Lovelace", "n": 3});
    assert_eq!(
        eval_on("{first}&' '&{last}&{n}", rec),
        Value::Text("Ada Lovelace3".into())
    );
}

#[test]
fn linked_record_field_compares_as_comma_joined_text() {
    let rec = json!({"owner": ["recA", "recB"], "one": ["recA"]});
    assert!(matches("{owner}='recA, recB'", rec.clone()));
    assert!(matches("{one}='recA'", rec.clone()));
    assert!(matches("FIND('recB', ARRAYJOIN({owner}))", rec.clone()));
    assert!(matches("ARRAYJOIN({owner}, ';')='recA;recB'", rec.clone()));
    assert!(!matches("FIND('recC', ARRAYJOIN({owner}))", rec));
}

#[test]
fn quoted_value_with_apostrophe_matches_exactly_one_record() {
    let names = ["O'Brien", "OBrien", "O", "O'Brien2", "o'brien"];
    let formula = format!("{{name}}={}", quote("O'Brien"));
    assert_eq!(formula, "{name}='O\\'Brien'");
    let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
    let hits: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| parsed.matches("recX", &fields(json!({ "name": n }))))
        .collect();
    assert_eq!(hits, vec!["O'Brien"]);
}

#[test]
fn injection_attempt_in_escaped_value_cannot_widen_the_match() {
    let attack = "x' OR '1'='1";
    let formula = format!("{{name}}={}", quote(attack));
    let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
    assert!(!parsed.matches("recA", &fields(json!({"name": "alice"}))));
    assert!(!parsed.matches("recB", &fields(json!({"name": "x"}))));
    assert!(parsed.matches("recC", &fields(json!({ "name": attack }))));

    let backslash = "a\\";
    let formula = format!("OR({{name}}={}, {{name}}='b')", quote(backslash));
    let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.matches("recA", &fields(json!({ "name": backslash }))));
    assert!(parsed.matches("recB", &fields(json!({"name": "b"}))));
    assert!(!parsed.matches("recC", &fields(json!({"name": "a"}))));
}

#[test]
fn unescaped_quote_is_a_parse_error_not_a_wider_match() {
    assert!(Formula::parse("{name}='O'Brien'").is_err());
    assert!(Formula::parse("{name}='unterminated").is_err());
}

/// Found by the `formula` fuzz target: 776 nested parentheses overflowed the stack (an
/// abort, not an error), and so would a long chain of operators or signs.
#[test]
fn a_formula_nested_too_deeply_is_refused_not_a_stack_overflow() {
    let deep = 100_000;
    for formula in [
        format!("{}1{}", "(".repeat(deep), ")".repeat(deep)),
        format!("1{}", "+1".repeat(deep)),
        format!("'a'{}", "&'a'".repeat(deep)),
        format!("{}1", "-".repeat(deep)),
        format!("{}1{}", "NOT(".repeat(deep), ")".repeat(deep)),
    ] {
        let err = Formula::parse(&formula).expect_err("too deep");
        assert!(err.message.contains("nests more than"), "{err}");
    }
    let nested = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(Formula::parse(&nested).is_ok());
    let chain = format!("1{}", "+1".repeat(100));
    assert_eq!(eval_on(&chain, json!({})), Value::Number(101.0));
}

#[test]
fn double_quoted_strings_and_escapes_are_decoded() {
    assert_eq!(
        eval_on(r#""say \"hi\" \\ bye""#, json!({})),
        Value::Text(r#"say "hi" \ bye"#.into())
    );
    assert_eq!(eval_on(r#"'it\'s'"#, json!({})), Value::Text("it's".into()));
}

#[test]
fn or_of_a_hundred_record_ids_selects_exactly_those_records() {
    let ids: Vec<String> = (0..100).map(|i| format!("rec{i:014}")).collect();
    let formula = format!(
        "OR({})",
        ids.iter()
            .map(|id| format!("RECORD_ID()='{id}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let parsed = Formula::parse(&formula).unwrap_or_else(|e| panic!("{e}"));
    let empty = Map::new();
    for id in &ids {
        assert!(parsed.matches(id, &empty), "{id} should match");
    }
    assert!(!parsed.matches("rec00000000000100", &empty));
    assert!(!parsed.matches("recA", &empty));
}

#[test]
fn record_id_or_with_two_ids() {
    let parsed = Formula::parse("OR(RECORD_ID()='recA',RECORD_ID()='recB')")
        .unwrap_or_else(|e| panic!("{e}"));
    let empty = Map::new();
    assert!(parsed.matches("recA", &empty));
    assert!(parsed.matches("recB", &empty));
    assert!(!parsed.matches("recC", &empty));
}

#[test]
fn logical_functions_and_if() {
    let rec = json!({"a": 1, "b": "", "c": "x"});
    assert!(matches("AND({a}, {c})", rec.clone()));
    assert!(!matches("AND({a}, {b})", rec.clone()));
    assert!(matches("OR({b}, {c})", rec.clone()));
    assert!(matches("NOT({b})", rec.clone()));
    assert_eq!(
        eval_on("IF({a}, 'yes', 'no')", rec.clone()),
        Value::Text("yes".into())
    );
    assert_eq!(eval_on("IF({b}, 'yes')", rec.clone()), Value::Blank);
    assert!(matches("TRUE()", rec.clone()));
    assert!(!matches("FALSE()", rec.clone()));
    assert!(matches("true", rec.clone()));
    assert!(matches("{a} != 2", rec));
}

#[test]
fn text_functions_behave_like_airtable() {
    let rec = json!({"s": "  Hello World  "});
    assert_eq!(
        eval_on("TRIM({s})", rec.clone()),
        Value::Text("Hello World".into())
    );
    assert_eq!(eval_on("LEN(TRIM({s}))", rec.clone()), Value::Number(11.0));
    assert_eq!(
        eval_on("UPPER('abc')", rec.clone()),
        Value::Text("ABC".into())
    );
    assert_eq!(
        eval_on("FIND('World', {s})", rec.clone()),
        Value::Number(9.0)
    );
    assert_eq!(
        eval_on("FIND('world', {s})", rec.clone()),
        Value::Number(0.0)
    );
    assert_eq!(
        eval_on("SEARCH('world', {s})", rec.clone()),
        Value::Number(9.0)
    );
    assert_eq!(eval_on("SEARCH('nope', {s})", rec.clone()), Value::Blank);
    assert_eq!(
        eval_on("FIND('l', 'hello', 4)", rec.clone()),
        Value::Number(4.0)
    );
    assert_eq!(
        eval_on("LEFT('hello', 2)&RIGHT('hello', 2)", rec.clone()),
        Value::Text("helo".into())
    );
    assert_eq!(
        eval_on("CONCATENATE('a', 1, 'b')", rec.clone()),
        Value::Text("a1b".into())
    );
    assert_eq!(eval_on("VALUE('42')+1", rec), Value::Number(43.0));
}

#[test]
fn checkbox_fields_compare_with_true_and_false() {
    assert!(matches("{done}=TRUE()", json!({"done": true})));
    assert!(matches("{done}", json!({"done": true})));
    assert!(matches("{done}=FALSE()", json!({})));
    assert!(!matches("{done}=TRUE()", json!({})));
}

#[test]
fn function_names_are_case_insensitive() {
    assert!(matches("or(record_id()='recTEST', false())", json!({})));
}

#[test]
fn parse_errors_are_reported() {
    for bad in [
        "{email",
        "{}",
        "email='x'",
        "NOPE(1)",
        "OR(",
        "NOT(1, 2)",
        "RECORD_ID(1)",
        "1 +",
        "(1",
        "1 2",
        "{a} == 'x'",
        "#",
        "IF(1)",
    ] {
        assert!(Formula::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn field_names_lists_referenced_fields_once() {
    let parsed = Formula::parse("AND({a}='1', OR({b}, {a}))").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.field_names(), vec!["a".to_owned(), "b".to_owned()]);
}
