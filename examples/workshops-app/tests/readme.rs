//! The README's "Use it in your app" cannot drift from this crate: each code block the README
//! tags with `<!-- file: examples/workshops-app/PATH -->` (the line before the block) is that
//! file, character for character; `PATH#dependencies` is the `[dependencies]` table of the
//! manifest, whose `path = "../../…"` (this crate's place in the checkout) the README writes
//! `path = "../podium-cache/…"` (a checkout beside the user's app). Every source file of the
//! crate is shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const README: &str = include_str!("../../../README.md");
const CRATE: &str = "examples/workshops-app/";
/// This crate's dependencies point at the checkout it lives in; the README's at one beside it.
const PATH_HERE: &str = "path = \"../../";
const PATH_IN_README: &str = "path = \"../podium-cache/";

/// `(tag, block)` for each tagged block, in README order.
fn tagged_blocks(readme: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(tag) = line.trim().strip_prefix("<!-- file:").and_then(|t| t.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().map(|(_, l)| l).unwrap_or("");
        assert!(
            fence.starts_with("```"),
            "README line {}: a code block follows the tag",
            number + 1
        );
        let body: Vec<&str> = lines.by_ref().map(|(_, l)| l).take_while(|l| *l != "```").collect();
        blocks.push((tag.trim().to_owned(), body.iter().map(|l| format!("{l}\n")).collect()));
    }
    blocks
}

/// The `[name]` table of a TOML text, as written (up to the next table, blank lines trimmed).
fn toml_table(text: &str, name: &str) -> String {
    let header = format!("[{name}]");
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim() != header)
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with('['))
        .map(|(_, l)| l)
        .collect();
    assert!(!lines.is_empty(), "the manifest has a {header} table");
    format!("{}\n", lines.join("\n").trim_end())
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the README must show for `tag`, from this crate's files.
fn expected(tag: &str) -> String {
    let relative = tag
        .strip_prefix(CRATE)
        .unwrap_or_else(|| panic!("the tag {tag:?} names a file of {CRATE}"));
    let (file, table) = match relative.split_once('#') {
        Some((file, table)) => (file, Some(table)),
        None => (relative, None),
    };
    let text = std::fs::read_to_string(crate_dir().join(file))
        .unwrap_or_else(|e| panic!("the README shows {tag}, which cannot be read: {e}"));
    match table {
        Some(table) => toml_table(&text, table).replace(PATH_HERE, PATH_IN_README),
        None => text,
    }
}

/// Every file under `dir`, relative to the crate.
fn files_under(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            let relative = path.strip_prefix(crate_dir()).expect("inside the crate");
            found.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn the_readme_shows_this_crate_literally() {
    let blocks = tagged_blocks(README);
    let mut shown = BTreeMap::new();
    for (tag, block) in &blocks {
        let want = expected(tag);
        if *block != want {
            let line = block.lines().zip(want.lines()).position(|(a, b)| a != b);
            panic!(
                "the README's block for {tag} is not the file (first difference at line {}):\n\
                 --- README ---\n{block}--- file ---\n{want}",
                line.map_or_else(|| "the end".to_owned(), |l| (l + 1).to_string()),
            );
        }
        assert!(shown.insert(tag.clone(), ()).is_none(), "{tag} is shown once");
    }

    let mut sources = vec!["Cargo.toml#dependencies".to_owned(), "seed.json".to_owned()];
    files_under(&crate_dir().join("src"), &mut sources);
    for source in sources {
        let tag = format!("{CRATE}{source}");
        assert!(shown.contains_key(&tag), "the README shows {tag} (<!-- file: {tag} -->)");
    }
    assert_eq!(shown.len(), 5, "Cargo.toml's dependencies, seed.json and the three sources");
}

#[test]
fn the_readme_dependencies_point_at_a_checkout_beside_the_app() {
    let blocks = tagged_blocks(README);
    let (_, dependencies) = blocks
        .iter()
        .find(|(tag, _)| tag.ends_with("#dependencies"))
        .expect("the README shows the dependencies");
    assert!(!dependencies.contains(PATH_HERE), "no path into this repository's layout");
    for library in ["podium-cache-core", "podium-cache-tower"] {
        let line = format!("{library} = {{ {PATH_IN_README}{library}\"");
        assert!(dependencies.contains(&line), "{library} from ../podium-cache: {dependencies}");
    }
}
