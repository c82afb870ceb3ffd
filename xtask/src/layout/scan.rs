//! Reading one Rust source file for the layout check: comments and literal contents out, the
//! `#[cfg(test)]` module out, then what is left counted as lines of code.

/// One source file with comments removed and string/char contents masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// The code, one entry per line of the file: comments removed (doc comments too), every
    /// character inside a string or char literal replaced by `_` (so a `crate::` in a string is
    /// no path and a `{` in one no brace), `#[cfg(test)]` modules blanked.
    pub lines: Vec<String>,
    /// Files declared as `#[cfg(test)] mod name;`: test code kept in its own file.
    pub test_modules: Vec<String>,
}

impl Scanned {
    /// Lines holding code: not blank, not only a comment, not in the `#[cfg(test)]` module.
    pub fn code_lines(&self) -> usize {
        self.lines.iter().filter(|l| !l.trim().is_empty()).count()
    }

    /// The code as one string (lines joined with `\n`).
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Scans `source`: see [`Scanned`].
pub fn scan(source: &str) -> Scanned {
    let stripped = strip(source);
    let mut lines: Vec<String> = stripped.split('\n').map(str::to_owned).collect();
    let test_modules = blank_test_modules(&mut lines);
    Scanned {
        lines,
        test_modules,
    }
}

/// Removes comments and masks literal contents, keeping every newline where it was.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = masked_string(&chars, i + 1, 0, &mut out);
        } else if (c == 'r' || (c == 'b' && next == Some('r')))
            && (i == 0 || !ident(chars[i - 1]))
            && raw_string_start(&chars, if c == 'b' { i + 2 } else { i + 1 }).is_some()
        {
            let start = if c == 'b' { i + 2 } else { i + 1 };
            let hashes = raw_string_start(&chars, start).unwrap_or(0);
            out.push_str(if c == 'b' { "br" } else { "r" });
            i = masked_string(&chars, start + hashes + 1, hashes, &mut out);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                out.push('\'');
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    out.push('_');
                    i += 1;
                }
                out.push('\'');
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("'_'");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The number of `#` of a raw string whose `r` is just before `at`, if one starts there.
fn raw_string_start(chars: &[char], at: usize) -> Option<usize> {
    let hashes = chars[at.min(chars.len())..]
        .iter()
        .take_while(|c| **c == '#')
        .count();
    (chars.get(at + hashes) == Some(&'"')).then_some(hashes)
}

/// Masks a string body starting at `i` (after the opening quote and `hashes` `#`s), writes
/// the quotes, and returns the index after the closing quote and hashes.
fn masked_string(chars: &[char], mut i: usize, hashes: usize, out: &mut String) -> usize {
    out.push_str(&"#".repeat(hashes));
    out.push('"');
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && hashes == 0 {
            out.push_str("__");
            if chars.get(i + 1) == Some(&'\n') {
                out.pop();
                out.push('\n');
            }
            i += 2;
            continue;
        }
        if c == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|h| **h == '#')
                .count()
                == hashes
        {
            out.push('"');
            out.push_str(&"#".repeat(hashes));
            return i + 1 + hashes;
        }
        out.push(if c == '\n' { '\n' } else { '_' });
        i += 1;
    }
    i
}

/// Blanks every `#[cfg(test)] mod name { … }` in `lines` and returns the names of
/// `#[cfg(test)] mod name;` declarations.
fn blank_test_modules(lines: &mut [String]) -> Vec<String> {
    let mut files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "#[cfg(test)]" {
            i += 1;
            continue;
        }
        // The item the attribute applies to: the next line that is not another attribute.
        let mut j = i + 1;
        while j < lines.len() && (lines[j].trim().is_empty() || lines[j].trim().starts_with("#[")) {
            j += 1;
        }
        let Some(item) = lines.get(j).map(|l| l.trim().to_owned()) else {
            break;
        };
        let Some(name) = module_name(&item) else {
            i = j;
            continue;
        };
        if item.ends_with(';') {
            files.push(name);
            i = j + 1;
            continue;
        }
        let end = matching_brace_line(lines, j).unwrap_or(lines.len() - 1);
        for line in &mut lines[i..=end] {
            line.clear();
        }
        i = end + 1;
    }
    files
}

/// `tests` for `mod tests {`, `pub(crate) mod tests;` and the like.
pub fn module_name(item: &str) -> Option<String> {
    let rest = item
        .strip_prefix("pub ")
        .or_else(|| item.strip_prefix("pub(crate) "))
        .or_else(|| item.strip_prefix("pub(super) "))
        .unwrap_or(item);
    let rest = rest.strip_prefix("mod ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The line where the brace opened on line `start` closes.
fn matching_brace_line(lines: &[String], start: usize) -> Option<usize> {
    let mut depth = 0i64;
    let mut opened = false;
    for (n, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
            if opened && depth == 0 {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_the_test_module_are_not_code() {
        let source = "//! Crate docs.\n\n/// A doc.\nfn a() {\n    /* block\n       comment */\n    let s = \"// not a comment\";\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { let c = '}'; }\n}\nfn b() {}\n";
        let scanned = scan(source);
        // fn a() {, let s = …, }, fn b() {}
        assert_eq!(scanned.code_lines(), 4, "{:#?}", scanned.lines);
        assert!(scanned.text().contains("fn b()"));
        assert!(!scanned.text().contains("not a comment"));
    }

    #[test]
    fn literal_contents_are_masked_but_count_as_code() {
        let scanned = scan("let a = r#\"crate::x {\n\"#;\nlet b: &'static str = \"\\\"{\";\n");
        assert_eq!(scanned.code_lines(), 3);
        assert!(!scanned.text().contains("crate::x"));
        assert!(!scanned.text().contains('{'), "{:?}", scanned.text());
        assert!(scanned.text().contains("&'static"));
    }

    #[test]
    fn a_test_module_in_its_own_file_is_named() {
        let scanned = scan("mod a;\n#[cfg(test)]\nmod tests;\n");
        assert_eq!(scanned.test_modules, vec!["tests".to_owned()]);
        assert_eq!(scanned.code_lines(), 3);
    }
}
