//! What one scanned file names: the items it defines, what it re-exports, the modules it
//! declares, and every path it uses (`use` trees and in-code `crate::`/`super::`/`self::`
//! paths).

/// A path one file refers to, as written (first segment `crate`, `super`, `self` or a child
/// module's name), with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    /// The segments, e.g. `["super", "entry", "encode"]`.
    pub segments: Vec<String>,
    /// 1-based line.
    pub line: usize,
    /// Whether it is a `pub use` at the file's top level (a re-export).
    pub reexport: bool,
}

/// What the layout check needs from one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileItems {
    /// Names of the items defined at the top level (`struct`, `fn`, `mod`, …).
    pub defined: Vec<String>,
    /// `mod name;` declarations (children in other files).
    pub child_modules: Vec<String>,
    /// `pub use` at the top level: the name it is known by and the path it stands for.
    pub reexports: Vec<(String, Vec<String>)>,
    /// `pub use path::*` at the top level.
    pub glob_reexports: Vec<Vec<String>>,
    /// Every path used.
    pub paths: Vec<PathRef>,
}

const ITEM_KEYWORDS: [&str; 9] = [
    "struct", "enum", "fn", "trait", "type", "const", "static", "union", "mod",
];
const QUALIFIERS: [&str; 6] = [
    "async ", "unsafe ", "const ", "extern ", "default ", "\"_\" ",
];

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `pub`, `pub(crate)`, `pub(in x)` … stripped; `None` if the item is private.
fn strip_visibility(item: &str) -> (bool, &str) {
    if let Some(rest) = item.strip_prefix("pub(") {
        let close = rest.find(')').map_or(0, |i| i + 1);
        return (true, rest[close..].trim_start());
    }
    match item.strip_prefix("pub ") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, item),
    }
}

/// Reads `code` (scanned: comments out, literals masked, test module blanked).
pub fn read(code: &str) -> FileItems {
    let mut items = FileItems::default();
    let mut depth = 0i64;
    for line in code.split('\n') {
        if depth == 0 {
            top_level_item(line.trim(), &mut items);
        }
        depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
    }
    let without_uses = use_statements(code, &mut items);
    inline_paths(&without_uses, &mut items);
    items
}

fn top_level_item(line: &str, items: &mut FileItems) {
    let (_, mut rest) = strip_visibility(line);
    if let Some(name) = rest.strip_prefix("macro_rules!") {
        items.defined.push(ident_prefix(name.trim_start()));
        return;
    }
    loop {
        let before = rest;
        for q in QUALIFIERS {
            if let Some(r) = rest.strip_prefix(q) {
                // `const NAME` is an item, `const fn` a qualifier.
                if q == "const " && !r.starts_with("fn ") && !r.starts_with("unsafe ") {
                    continue;
                }
                rest = r.trim_start();
            }
        }
        if before == rest {
            break;
        }
    }
    for keyword in ITEM_KEYWORDS {
        let Some(after) = rest.strip_prefix(keyword) else {
            continue;
        };
        if !after.starts_with(' ') {
            continue;
        }
        let name = ident_prefix(after.trim_start());
        if name.is_empty() {
            continue;
        }
        if keyword == "mod" && after.trim_end().ends_with(';') {
            items.child_modules.push(name.clone());
        }
        items.defined.push(name);
        return;
    }
}

fn ident_prefix(text: &str) -> String {
    text.chars().take_while(|c| is_ident(*c)).collect()
}

/// Every `use …;` (at any depth): its tree expanded into paths. Returns `code` with the
/// statements blanked (newlines kept).
fn use_statements(code: &str, items: &mut FileItems) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let mut depth = 0i64;
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' => depth += 1,
            '}' => depth -= 1,
            '\n' => line += 1,
            _ => {}
        }
        let starts_use = chars[i..].starts_with(&['u', 's', 'e'])
            && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == '$'))
            && chars.get(i + 3).is_some_and(|c| c.is_whitespace());
        if !starts_use {
            i += 1;
            continue;
        }
        let end = chars[i..]
            .iter()
            .position(|c| *c == ';')
            .map_or(chars.len(), |p| i + p);
        let tree: String = chars[i + 3..end].iter().collect();
        let head: String = chars[code_line_start(&chars, i)..i].iter().collect();
        let head = head.trim();
        let public = head == "pub" || (head.starts_with("pub(") && head.ends_with(')'));
        let reexport = public && depth == 0;
        let mut expanded = Vec::new();
        expand_tree(&tree, Vec::new(), &mut expanded);
        for (segments, alias) in expanded {
            if segments.last().is_some_and(|s| s == "*") {
                let mut base = segments.clone();
                base.pop();
                if reexport {
                    items.glob_reexports.push(base.clone());
                }
                items.paths.push(PathRef {
                    segments: base,
                    line,
                    reexport,
                });
                continue;
            }
            if reexport {
                if let Some(name) = alias.or_else(|| segments.last().cloned()) {
                    items.reexports.push((name, segments.clone()));
                }
            }
            items.paths.push(PathRef {
                segments,
                line,
                reexport,
            });
        }
        line += chars[i..end].iter().filter(|c| **c == '\n').count();
        for c in &mut chars[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    chars.into_iter().collect()
}

fn code_line_start(chars: &[char], i: usize) -> usize {
    chars[..i]
        .iter()
        .rposition(|c| *c == '\n')
        .map_or(0, |p| p + 1)
}

/// Expands a use tree (`a::{b, c::d as e, f::*}`) into full paths and their aliases.
fn expand_tree(tree: &str, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let tree = tree.trim();
    let tree = tree.strip_prefix("::").unwrap_or(tree);
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let mut base = prefix;
        base.extend(segments(head));
        let close = tree.rfind('}').unwrap_or(tree.len());
        for part in split_top_level(&tree[open + 1..close]) {
            if part.trim() == "self" {
                out.push((base.clone(), None));
            } else if !part.trim().is_empty() {
                expand_tree(part, base.clone(), out);
            }
        }
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((path, alias)) => (path, Some(alias.trim().to_owned())),
        None => (tree, None),
    };
    let mut full = prefix;
    full.extend(segments(path));
    if full.last().is_some_and(|s| s == "self") {
        full.pop();
    }
    if !full.is_empty() {
        out.push((full, alias));
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|s| s.split_whitespace().collect::<String>())
        .filter(|s| !s.is_empty())
        .collect()
}

fn split_top_level(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// Paths written in code outside `use` (`crate::a::b`, `super::x`, `child::f`,
/// `std::mem::take`: which of them are this crate's is decided when they are resolved).
fn inline_paths(code: &str, items: &mut FileItems) {
    for (n, line) in code.split('\n').enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let boundary = i == 0 || !(is_ident(chars[i - 1]) || matches!(chars[i - 1], ':' | '$'));
            if !(boundary && is_ident(chars[i])) {
                i += 1;
                continue;
            }
            let mut path = Vec::new();
            let mut j = i;
            loop {
                let word: String = chars[j..].iter().take_while(|c| is_ident(**c)).collect();
                if word.is_empty() {
                    break;
                }
                j += word.chars().count();
                path.push(word);
                if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                    j += 2;
                } else {
                    break;
                }
            }
            if path.len() > 1 {
                items.paths.push(PathRef {
                    segments: path,
                    line: n + 1,
                    reexport: false,
                });
            }
            i = j.max(i + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(items: &FileItems) -> Vec<String> {
        items.paths.iter().map(|p| p.segments.join("::")).collect()
    }

    #[test]
    fn use_trees_expand_into_full_paths() {
        let items = read("use crate::cache::{self, entry::{encode, HEADER as H}, read::*};\nuse super::x;\nuse std::fmt;\n");
        assert_eq!(
            paths(&items),
            [
                "crate::cache",
                "crate::cache::entry::encode",
                "crate::cache::entry::HEADER",
                "crate::cache::read",
                "super::x",
                "std::fmt"
            ]
        );
        assert_eq!(items.paths[4].line, 2);
    }

    #[test]
    fn top_level_items_reexports_and_child_modules_are_told_apart() {
        let items = read("mod entry;\npub use entry::Entry;\npub use read::*;\npub(crate) async fn get() {\n    let x = 1;\n}\npub const LIMIT: usize = 5;\npub const fn f() {}\nstruct S;\n");
        assert_eq!(items.child_modules, ["entry"]);
        assert_eq!(items.defined, ["entry", "get", "LIMIT", "f", "S"]);
        assert_eq!(
            items.reexports,
            [(
                "Entry".to_owned(),
                vec!["entry".to_owned(), "Entry".to_owned()]
            )]
        );
        assert_eq!(items.glob_reexports, [vec!["read".to_owned()]]);
    }

    #[test]
    fn paths_in_code_are_found_but_not_inside_longer_paths() {
        let items = read("fn f() {\n    crate::store::commands::run();\n    let y = super::super::x::Y;\n    $crate::no::Thing;\n}\n");
        assert_eq!(
            paths(&items),
            ["crate::store::commands::run", "super::super::x::Y"]
        );
    }
}
