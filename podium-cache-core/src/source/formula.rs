//! Airtable formula builders that escape every value, so user input cannot break or widen a
//! `filterByFormula` query.
//!
//! ```
//! use podium_cache_core::source::formula;
//! assert_eq!(formula::string_literal("O'Brien\\"), r"'O\'Brien\\'");
//! assert_eq!(
//!     formula::record_id_in(&["recA".to_string(), "recB".to_string()]),
//!     "OR(RECORD_ID()='recA',RECORD_ID()='recB')"
//! );
//! assert_eq!(
//!     formula::normalized_field_equals("email", " Ada@Example.com "),
//!     "LOWER(TRIM({email}))='ada@example.com'"
//! );
//! ```

use crate::entity::normalize_index_value;

/// A single-quoted formula string literal: `\`, `'`, and control characters escaped.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A field reference `{name}`; a `}` or `\` inside the name is escaped.
pub fn field_ref(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('{');
    for c in name.chars() {
        if matches!(c, '}' | '\\') {
            out.push('\\');
        }
        if !c.is_control() {
            out.push(c);
        }
    }
    out.push('}');
    out
}

/// `RECORD_ID()='id'` for one id, `OR(RECORD_ID()='a',…)` for several; `FALSE()` for none.
pub fn record_id_in(ids: &[String]) -> String {
    match ids {
        [] => "FALSE()".to_owned(),
        [one] => format!("RECORD_ID()={}", string_literal(one)),
        many => {
            let terms: Vec<String> = many
                .iter()
                .map(|id| format!("RECORD_ID()={}", string_literal(id)))
                .collect();
            format!("OR({})", terms.join(","))
        }
    }
}

/// `{field}='value'`: exact, case-sensitive equality.
pub fn field_equals(field: &str, value: &str) -> String {
    format!("{}={}", field_ref(field), string_literal(value))
}

/// `LOWER(TRIM({field}))='value'` with the value normalised the way indexes are
/// ([`normalize_index_value`]): what an index lookup asks the source on a miss.
pub fn normalized_field_equals(field: &str, value: &str) -> String {
    format!(
        "LOWER(TRIM({}))={}",
        field_ref(field),
        string_literal(&normalize_index_value(value))
    )
}

/// `AND(a,b,…)` of formulas (one formula as it is).
pub fn and(terms: &[String]) -> String {
    match terms {
        [] => "TRUE()".to_owned(),
        [one] => one.clone(),
        many => format!("AND({})", many.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads one single-quoted literal back the way Airtable's lexer does; returns the value and
    /// what follows it.
    fn read_literal(text: &str) -> Option<(String, &str)> {
        let mut chars = text.strip_prefix('\'')?.char_indices();
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(match escaped {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        other => other,
                    });
                }
                '\'' => return Some((value, &text[i + 2..])),
                c => value.push(c),
            }
        }
        None
    }

    #[test]
    fn quote_and_backslash_cannot_close_the_literal() {
        let hostile = r"x' OR TRUE() OR 'y\";
        let literal = string_literal(hostile);
        let (value, rest) = read_literal(&literal).expect("one literal");
        assert_eq!(value, hostile);
        assert_eq!(rest, "");
    }

    proptest! {
        #[test]
        fn any_string_stays_one_literal(s in ".*") {
            let literal = string_literal(&s);
            let (value, rest) = read_literal(&literal).expect("one literal");
            let expected: String = s.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).collect();
            prop_assert_eq!(value, expected);
            prop_assert_eq!(rest, "");
        }
    }
}
