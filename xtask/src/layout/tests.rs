//! The layout check on small crates written to a temporary directory.

use std::path::{Path, PathBuf};

use super::*;

/// A crate under a fresh temporary directory, removed on drop.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new(name: &str, files: &[(&str, String)]) -> Self {
        let root = std::env::temp_dir().join(format!(
            "xtask-layout-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join("krate").join(path);
            std::fs::create_dir_all(path.parent().expect("a file has a parent"))
                .expect("fixture dir");
            std::fs::write(&path, text).expect("fixture file");
        }
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = [\"krate\"]\n",
        )
        .expect("fixture manifest");
        Fixture { root }
    }

    fn check(&self) -> Findings {
        check_workspace(&self.root).expect("the fixture reads")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn lines_of_code(n: usize) -> String {
    let mut text = String::from("//! A long file.\n\n");
    for i in 0..n {
        text.push_str(&format!("pub const C{i}: usize = {i};\n\n/// Doc.\n"));
    }
    text
}

#[test]
fn a_file_over_600_lines_of_code_fails_and_one_at_600_passes() {
    let tests = "#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n".repeat(50);
    let fixture = Fixture::new(
        "long",
        &[
            ("src/lib.rs", "mod long;\nmod fits;\n".to_owned()),
            ("src/long.rs", lines_of_code(601)),
            ("src/fits.rs", lines_of_code(600) + &tests),
        ],
    );
    let findings = fixture.check();
    assert_eq!(
        findings.long_files,
        [(Path::new("krate/src/long.rs").to_path_buf(), 601)]
    );
    assert!(findings.loops.is_empty());
    // The 50 `#[cfg(test)]` modules of fits.rs are not counted.
    assert!(findings
        .counts
        .contains(&(Path::new("krate/src/fits.rs").to_path_buf(), 600)));
    assert!(findings.to_string().contains("  601  krate/src/long.rs"));
}

#[test]
fn two_files_importing_each_other_fail_with_the_lines_that_do() {
    let fixture = Fixture::new(
        "loop",
        &[
            ("src/lib.rs", "mod store;\npub use store::Store;\n".to_owned()),
            (
                "src/store/mod.rs",
                "mod commands;\nmod script;\npub struct Store;\n".to_owned(),
            ),
            (
                "src/store/commands.rs",
                "use super::script::Script;\npub struct Command;\n".to_owned(),
            ),
            (
                "src/store/script.rs",
                "pub struct Script;\n\nfn run() {\n    let _ = crate::store::commands::Command;\n}\n"
                    .to_owned(),
            ),
        ],
    );
    let findings = fixture.check();
    assert!(findings.long_files.is_empty());
    assert_eq!(findings.loops.len(), 1, "{findings}");
    let report = findings.to_string();
    assert!(
        report.contains("krate/src/store/commands.rs:1 uses `super::script::Script`"),
        "{report}"
    );
    assert!(
        report.contains("krate/src/store/script.rs:4 uses `crate::store::commands::Command`"),
        "{report}"
    );
}

#[test]
fn files_that_import_one_way_pass() {
    let fixture = Fixture::new(
        "clean",
        &[
            (
                "src/lib.rs",
                "mod store;\nmod cache;\npub use cache::Cache;\n".to_owned(),
            ),
            (
                "src/store/mod.rs",
                "mod commands;\npub use commands::Command;\npub struct Store;\n".to_owned(),
            ),
            (
                "src/store/commands.rs",
                "use super::Store;\npub struct Command(Store);\n".to_owned(),
            ),
            (
                "src/cache.rs",
                "use crate::store::{Command, Store};\npub struct Cache(Store, Command);\n#[cfg(test)]\nmod tests;\n"
                    .to_owned(),
            ),
            // Test code in its own file may use anything.
            ("src/cache/tests.rs", "use crate::Cache;\n".to_owned()),
            ("src/main.rs", "fn main() {}\n".to_owned()),
            ("src/bin/tool.rs", "mod a;\nfn main() { a::f(); }\n".to_owned()),
            ("src/bin/tool/a.rs", "pub fn f() {}\n".to_owned()),
        ],
    );
    let findings = fixture.check();
    assert!(findings.is_clean(), "{findings}");
    // lib.rs, store/mod.rs, store/commands.rs, cache.rs; main.rs; bin/tool.rs, bin/tool/a.rs
    assert_eq!(findings.files, 7);
}

#[test]
fn the_members_of_a_workspace_manifest_are_read() {
    let manifest =
        "[workspace]\nresolver = \"2\"\nmembers = [\n    \"a\",\n    \"examples/b\", # c\n]\nexclude = [\"fuzz\"]\n";
    assert_eq!(members(manifest), ["a", "examples/b"]);
}
