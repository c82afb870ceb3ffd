//! `cargo xtask layout`: the layout rules of the project, checked.
//!
//! - No library or example source file (a workspace member's `src/`; tests, benches and fuzz
//!   targets aside) holds more than [`MAX_CODE_LINES`] lines of code: blank lines, comments (doc
//!   comments too) and the `#[cfg(test)]` module do not count.
//! - No two files of one crate import each other, directly or round a longer loop: every
//!   `use` and every path in code (`crate::…`, `super::…`, `self::…`, a child module's name) is
//!   resolved to the file that defines the item (see [`graph`]); a module declaring its
//!   children (`mod x;`) and re-exporting their items is not an import.
//!
//! `cargo xtask test` runs it first (`PODIUM_SKIP_LAYOUT=1` skips it there).

mod graph;
mod items;
mod scan;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use graph::{Edge, Graph, Node};

/// Most lines of code one source file may hold.
pub const MAX_CODE_LINES: usize = 600;

/// What the check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Files over [`MAX_CODE_LINES`], with their count.
    pub long_files: Vec<(PathBuf, usize)>,
    /// Import loops: each as the files caught in it and one cycle through them (the file,
    /// line and path of each use).
    pub loops: Vec<(Vec<PathBuf>, Vec<LoopStep>)>,
    /// Files read.
    pub files: usize,
    /// Every file read with its lines of code, in the order read.
    pub counts: Vec<(PathBuf, usize)>,
}

/// One step of a loop: `from` line `line` uses `path`, defined in `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopStep {
    pub from: PathBuf,
    pub line: usize,
    pub path: String,
    pub to: PathBuf,
}

impl Findings {
    /// Whether nothing breaks the rules.
    pub fn is_clean(&self) -> bool {
        self.long_files.is_empty() && self.loops.is_empty()
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return writeln!(
                f,
                "layout: ok ({} files: none over {MAX_CODE_LINES} lines of code, no import loop)",
                self.files
            );
        }
        if !self.long_files.is_empty() {
            writeln!(
                f,
                "layout: {} file(s) over {MAX_CODE_LINES} lines of code (blank lines, comments and the #[cfg(test)] module not counted):",
                self.long_files.len()
            )?;
            for (path, lines) in &self.long_files {
                writeln!(f, "  {lines:>5}  {}", path.display())?;
            }
        }
        if !self.loops.is_empty() {
            writeln!(
                f,
                "layout: {} import loop(s) (files that import each other; break each at one step):",
                self.loops.len()
            )?;
            for (n, (knot, steps)) in self.loops.iter().enumerate() {
                let files: Vec<String> = steps
                    .iter()
                    .map(|s| s.from.display().to_string())
                    .chain(steps.first().map(|s| s.from.display().to_string()))
                    .collect();
                writeln!(f, "  loop {}: {}", n + 1, files.join(" -> "))?;
                if knot.len() > steps.len() {
                    let all: Vec<String> = knot.iter().map(|p| p.display().to_string()).collect();
                    writeln!(
                        f,
                        "    ({} files import each other round loops: {})",
                        knot.len(),
                        all.join(", ")
                    )?;
                }
                for step in steps {
                    writeln!(
                        f,
                        "      {}:{} uses `{}` (in {})",
                        step.from.display(),
                        step.line,
                        step.path,
                        step.to.display()
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Options of `cargo xtask layout`.
#[derive(clap::Args)]
pub struct Args {
    /// Also print every file's lines of code (as counted for the limit), largest first.
    #[arg(long)]
    pub counts: bool,
    /// The workspace to check (default: this one), e.g. an exported older revision.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `cargo xtask layout`.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let root = args.root.unwrap_or_else(crate::shell::workspace_root);
    let findings = check_workspace(&root)?;
    if args.counts {
        let mut counts = findings.counts.clone();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (path, lines) in counts {
            println!("{lines:>5}  {}", path.display());
        }
    }
    print!("{findings}");
    Ok(if findings.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks every member of the workspace at `root`.
pub fn check_workspace(root: &Path) -> Result<Findings, String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))
        .map_err(|e| format!("reading {}/Cargo.toml: {e}", root.display()))?;
    let mut findings = Findings::default();
    for member in members(&manifest) {
        check_crate(root, &root.join(member), &mut findings)?;
    }
    Ok(findings)
}

/// The `members = [...]` of a workspace manifest.
fn members(manifest: &str) -> Vec<String> {
    let Some(start) = manifest.find("members") else {
        return Vec::new();
    };
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap_or(0)..list.find(']').unwrap_or(list.len())];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Checks the `src/` of one crate, each build target (library, main binary, `src/bin/*`)
/// apart, and adds what it finds to `findings`.
pub fn check_crate(root: &Path, dir: &Path, findings: &mut Findings) -> Result<(), String> {
    let src = dir.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    files.sort();
    for target in targets(&src, &files) {
        let mut nodes = Vec::new();
        let mut test_only = BTreeSet::new();
        for (file, module) in target {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("reading {}: {e}", file.display()))?;
            let scanned = scan::scan(&text);
            for name in &scanned.test_modules {
                let mut path = module.clone();
                path.push(name.clone());
                test_only.insert(path);
            }
            let shown = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
            let code_lines = scanned.code_lines();
            nodes.push((
                code_lines,
                Node {
                    path: shown,
                    module,
                    items: items::read(&scanned.text()),
                },
            ));
        }
        nodes.retain(|(_, node)| !test_only.contains(&node.module));
        findings.files += nodes.len();
        for (lines, node) in &nodes {
            findings.counts.push((node.path.clone(), *lines));
            if *lines > MAX_CODE_LINES {
                findings.long_files.push((node.path.clone(), *lines));
            }
        }
        let graph = Graph::new(nodes.into_iter().map(|(_, n)| n).collect());
        for (knot, cycle) in graph.loops() {
            let knot = knot.iter().map(|n| graph.nodes[*n].path.clone()).collect();
            findings.loops.push((
                knot,
                cycle
                    .iter()
                    .map(|edge: &Edge| LoopStep {
                        from: graph.nodes[edge.from].path.clone(),
                        line: edge.line,
                        path: edge.path.clone(),
                        to: graph.nodes[edge.to].path.clone(),
                    })
                    .collect(),
            ));
        }
    }
    Ok(())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry
            .map_err(|e| format!("listing {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The build targets of a `src/` and each one's files with their module paths: the library
/// (`lib.rs` and every file but `main.rs` and `bin/`), the main binary (`main.rs`, with the
/// other files when there is no library) and each `bin/name.rs` with `bin/name/`.
fn targets(src: &Path, files: &[PathBuf]) -> Vec<Vec<(PathBuf, Vec<String>)>> {
    let bin = src.join("bin");
    let main = src.join("main.rs");
    let has_lib = files.contains(&src.join("lib.rs"));
    let mut shared: Vec<(PathBuf, Vec<String>)> = Vec::new();
    let mut targets = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&bin)) {
        if *file == main && has_lib {
            targets.push(vec![(file.clone(), Vec::new())]);
        } else {
            shared.push((file.clone(), module_path(src, file)));
        }
    }
    if !shared.is_empty() {
        targets.push(shared);
    }
    for root in files.iter().filter(|f| f.parent() == Some(bin.as_path())) {
        let dir = root.with_extension("");
        let mut target = vec![(root.clone(), Vec::new())];
        target.extend(
            files
                .iter()
                .filter(|f| f.starts_with(&dir))
                .map(|f| (f.clone(), module_path(&dir, f))),
        );
        targets.push(target);
    }
    targets
}

/// `src/a/b.rs` → `["a", "b"]`; `src/a/mod.rs` → `["a"]`; `src/lib.rs` → `[]`.
fn module_path(base: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(base).unwrap_or(file).with_extension("");
    let mut path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path.len() == 1 && matches!(path[0].as_str(), "lib" | "main") {
        path.clear();
    }
    if path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

#[cfg(test)]
mod tests;
