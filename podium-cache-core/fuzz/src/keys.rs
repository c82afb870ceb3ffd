//! `keys`: every key [`Keys`] builds, from any prefix the configuration accepts and any record
//! id, index value, delivery id, webhook id, lock name, filter or request key.
//!
//! Properties:
//! - shape: a key starts with `{prefix}:`; it has no `*`, `?`, `[`, `]`, `\`, whitespace or
//!   control character; a record key (data, tombstone, generation) has exactly one `{…}`, its
//!   hash tag, at the end, and other keys have no brace; no key is longer than its fixed parts
//!   plus 64 bytes for the user-supplied part;
//! - distinct inputs stay distinct: two different values never give one key (also for a value
//!   shaped like a hashed component, a changed case, a trailing character);
//! - a data key gives its id back, and an entity's `SCAN` pattern matches exactly its data keys
//!   under this prefix (no tombstone, no other entity, no other prefix).
//!
//! The input's first byte: bits 0-1 choose where the prefix comes from (the default, the
//! `PODIUM_PREFIX` environment variable, `prefix` in `.secrets.toml`, a one-letter prefix);
//! bits 2-3 how the second value derives from the first.

use podium_cache_core::config::Settings;
use podium_cache_core::key::Keys;
use podium_cache_core::Cacheable;
use podium_example::models::{Event, Project, Referral, User, Vote};
use sha2::{Digest, Sha256};

use crate::input::{encode, encode_text, number_field, Input};
use crate::support::toml_basic_string;

/// The longest user-supplied component a key carries as it is (longer ones are hashed).
const MAX_COMPONENT: usize = 64;

fn entities() -> [(&'static str, &'static str); 5] {
    [
        (User::meta().entity, User::schema_hash()),
        (Event::meta().entity, Event::schema_hash()),
        (Project::meta().entity, Project::schema_hash()),
        (Vote::meta().entity, Vote::schema_hash()),
        (Referral::meta().entity, Referral::schema_hash()),
    ]
}

/// Redis' glob matching (`SCAN MATCH`, `KEYS`): `*`, `?`, `[…]` with `^` and ranges, `\`.
/// Loops over the pattern and recurses only at a `*` (keys are long, stacks are not).
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    while p < pattern.len() {
        match pattern[p] {
            b'*' => {
                while pattern.get(p + 1) == Some(&b'*') {
                    p += 1;
                }
                let rest = &pattern[p + 1..];
                return rest.is_empty() || (t..=text.len()).any(|i| glob_matches(rest, &text[i..]));
            }
            b'?' => {
                if t >= text.len() {
                    return false;
                }
                p += 1;
                t += 1;
            }
            b'[' => {
                let Some(&c) = text.get(t) else {
                    return false;
                };
                let mut q = p + 1;
                let negate = pattern.get(q) == Some(&b'^');
                if negate {
                    q += 1;
                }
                let mut matched = false;
                loop {
                    match &pattern[q.min(pattern.len())..] {
                        [] => break,
                        [b']', ..] => {
                            q += 1;
                            break;
                        }
                        [b'\\', escaped, ..] => {
                            matched |= *escaped == c;
                            q += 2;
                        }
                        [start, b'-', end, ..] if *end != b']' => {
                            let (lo, hi) = if start <= end {
                                (start, end)
                            } else {
                                (end, start)
                            };
                            matched |= (*lo..=*hi).contains(&c);
                            q += 3;
                        }
                        [one, ..] => {
                            matched |= *one == c;
                            q += 1;
                        }
                    }
                }
                if matched == negate {
                    return false;
                }
                p = q;
                t += 1;
            }
            b'\\' if p + 1 < pattern.len() => {
                if text.get(t) != Some(&pattern[p + 1]) {
                    return false;
                }
                p += 2;
                t += 1;
            }
            c => {
                if text.get(t) != Some(&c) {
                    return false;
                }
                p += 1;
                t += 1;
            }
        }
    }
    t == text.len()
}

/// Whether `key` is well-formed under `prefix`; `tagged` keys end in their one hash tag.
fn check_shape(key: &str, prefix: &str, tagged: bool, fixed_len: usize) {
    assert!(
        key.starts_with(prefix) && key[prefix.len()..].starts_with(':'),
        "{key:?} does not start with {prefix:?}:"
    );
    let bad = key
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '?' | '[' | ']' | '\\'));
    assert_eq!(bad, None, "{key:?} has a glob, space or control character");
    let braces = key.chars().filter(|c| matches!(c, '{' | '}')).count();
    if tagged {
        let open = key.find('{').unwrap_or(usize::MAX);
        assert!(
            braces == 2 && key.ends_with('}') && open < key.len() - 2,
            "{key:?} has braces outside its hash tag"
        );
    } else {
        assert_eq!(braces, 0, "{key:?} has a brace but no hash tag");
    }
    assert!(
        key.len() <= fixed_len + MAX_COMPONENT,
        "{key:?} is longer than {} bytes",
        fixed_len + MAX_COMPONENT
    );
}

/// Every value-carrying key for `value`, with its kind, whether it is tagged and its fixed length.
fn value_keys(
    keys: &Keys,
    entity: &str,
    hash: &str,
    value: &str,
) -> Vec<(&'static str, String, bool)> {
    vec![
        ("data", keys.data(entity, hash, value), true),
        ("tombstone", keys.tombstone(entity, value), true),
        ("generation", keys.generation(entity, value), true),
        ("index", keys.index(entity, hash, "email", value), false),
        ("tag", keys.tag(entity, value), false),
        ("delivery_seen", keys.delivery_seen(value), false),
        ("webhook_cursor", keys.webhook_cursor(value), false),
        ("lock", keys.lock(value), false),
        ("query", keys.query(entity, hash, 7, value), false),
        ("http", keys.http(value), false),
    ]
}

fn prefix_from(source: u8, text: &str) -> Option<String> {
    let settings = match source {
        0 => Settings::default(),
        1 => Settings::from_sources(None, [("PODIUM_PREFIX".to_owned(), text.to_owned())]).ok()?,
        2 => {
            let toml = format!("prefix = {}", toml_basic_string(text));
            Settings::from_sources(Some(&toml), Vec::new()).ok()?
        }
        _ => Settings::from_sources(None, [("PODIUM_PREFIX".to_owned(), "p".to_owned())]).ok()?,
    };
    Some(settings.prefix)
}

fn hashed_shape(value: &str) -> String {
    format!("h.{}", hex::encode(&Sha256::digest(value.as_bytes())[..16]))
}

/// Runs one input.
pub fn check(data: &[u8]) {
    let Some(mut input) = Input::new(data) else {
        return;
    };
    let mode = input.mode();
    let prefix_text = input.text();
    let Some(prefix) = prefix_from(mode & 3, &prefix_text) else {
        return;
    };
    let all = entities();
    let (entity, hash) = all[(input.number() % all.len() as u64) as usize];
    let (other_entity, _) = all[(input.number() % all.len() as u64) as usize];
    let a = input.text();
    let b = match (mode >> 2) & 3 {
        0 => input.text(),
        1 => hashed_shape(&a),
        2 => {
            let upper = a.to_uppercase();
            if upper == a {
                a.to_lowercase()
            } else {
                upper
            }
        }
        _ => format!("{a}{}", input.text().chars().next().unwrap_or(' ')),
    };
    let keys = Keys::new(prefix.clone());
    let fixed = prefix.len() + entity.len() + hash.len() + "email".len() + 24;

    let keys_a = value_keys(&keys, entity, hash, &a);
    let keys_b = value_keys(&keys, entity, hash, &b);
    for ((kind, key_a, tagged), (_, key_b, _)) in keys_a.iter().zip(&keys_b) {
        check_shape(key_a, &prefix, *tagged, fixed);
        check_shape(key_b, &prefix, *tagged, fixed);
        if a != b {
            assert_ne!(key_a, key_b, "{kind} keys of {a:?} and {b:?} collide");
        }
    }
    for key in [
        keys.query_generation(entity),
        keys.entity_tag(entity),
        keys.data_pattern(entity, hash).replace("{*}", "{x}"),
    ] {
        check_shape(&key, &prefix, key.ends_with('}'), fixed);
    }

    // A data key gives its id back (an id that is hashed gives the hash back).
    let data_key = keys.data(entity, hash, &a);
    let id = keys
        .id_from_data_key(&data_key)
        .expect("a data key has an id");
    assert!(id == a || id.starts_with("h."), "{data_key:?} gave {id:?}");

    // The SCAN pattern of an entity matches its data keys and nothing else.
    let pattern = keys.data_pattern(entity, hash);
    assert!(
        glob_matches(pattern.as_bytes(), data_key.as_bytes()),
        "{pattern:?} misses {data_key:?}"
    );
    let mut others = vec![
        keys.tombstone(entity, &a),
        keys.generation(entity, &a),
        keys.index(entity, hash, "email", &a),
        keys.tag(entity, &a),
        keys.delivery_seen(&a),
        keys.lock(&a),
    ];
    if other_entity != entity {
        others.push(keys.data(other_entity, all[0].1, &a));
    }
    for other_prefix in [
        format!("{prefix}x"),
        format!("x{prefix}"),
        format!("{prefix}:x"),
    ] {
        others.push(Keys::new(other_prefix).data(entity, hash, &a));
    }
    if let Some(last) = prefix.chars().last() {
        let changed = if last == 'q' { 'r' } else { 'q' };
        let mut other_prefix = prefix.clone();
        other_prefix.pop();
        other_prefix.push(changed);
        others.push(Keys::new(other_prefix).data(entity, hash, &a));
    }
    for other in others {
        assert!(
            !glob_matches(pattern.as_bytes(), other.as_bytes()),
            "{pattern:?} also matches {other:?}"
        );
    }
}

/// Inputs to start from.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        encode(
            0,
            &[
                b"",
                &number_field(1),
                &number_field(0),
                b"recEVT00000000001",
                b"recEVT00000000002",
            ],
        ),
        encode(
            1,
            &[
                b"tenant-a",
                &number_field(0),
                &number_field(2),
                b"ada@example.com",
                b"a:b",
            ],
        ),
        encode(
            2,
            &[
                b"podium.v2",
                &number_field(3),
                &number_field(3),
                b"{rec1}",
                b"*",
            ],
        ),
        encode(4, &[b"", &number_field(4), &number_field(1), b"x\ny"]),
        encode(
            8,
            &[b"", &number_field(1), &number_field(1), b"Ada@Example.com"],
        ),
        encode(
            12,
            &[b"", &number_field(0), &number_field(4), b"rec1", b" "],
        ),
        encode_text(0, &["", "", "", &"z".repeat(200), ""]),
    ]
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn glob_matching_follows_redis() {
        assert!(glob_matches(b"p:events:h:{*}", b"p:events:h:{rec1}"));
        assert!(!glob_matches(b"p:events:h:{*}", b"p:events:h:rec1"));
        assert!(glob_matches(b"a?c", b"abc"));
        assert!(glob_matches(b"a[b-d]e", b"ace"));
        assert!(!glob_matches(b"a[^b-d]e", b"ace"));
        assert!(glob_matches(b"a\\*", b"a*"));
        assert!(!glob_matches(b"a\\*", b"ab"));
        assert!(glob_matches(b"x*y*z", b"xaayabz"));
        assert!(!glob_matches(b"x*y*z", b"xaaz"));
    }
}
