//! The short pass: every target on its seeds, its saved regressions (`regressions/<target>/`),
//! its local libFuzzer corpus when there is one (`corpus/<target>/`, capped) and a fixed number
//! of mutations of those, without libFuzzer (no instrumented build), deterministic by seed.
//! `cargo test` here runs it; `cargo xtask fuzz` runs the coverage-guided fuzzer instead.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::input::SEP;
use crate::Target;

/// This crate's folder (`podium-cache-core/fuzz`).
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Saved crash inputs of `target`, replayed by every test run.
pub fn regressions_dir(target: &str) -> PathBuf {
    fuzz_dir().join("regressions").join(target)
}

/// The local libFuzzer corpus of `target` (not committed).
pub fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

/// Files of a folder (none when it does not exist), sorted by name.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

thread_local! {
    static QUIET: RefCell<bool> = const { RefCell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside [`run_one`] are recorded, not printed; others go to the usual hook.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| *q.borrow()) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `check` on one input; the panic message when it panicked.
pub fn run_one(check: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    install_hook();
    QUIET.with(|q| *q.borrow_mut() = true);
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(data)));
    QUIET.with(|q| *q.borrow_mut() = false);
    result.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".into())
    })
}

/// A small, fast, seeded generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Tokens that matter to one target or another, inserted by the mutator.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"'",
    b"\"",
    b"\\",
    b"\n",
    b"\r",
    b"\t",
    b"\0",
    b"*",
    b"?",
    b"[",
    b":",
    b".",
    b" ",
    b"=",
    b",",
    b"h.",
    b"whsec_",
    b"v1,",
    b"hmac-sha256=",
    b"rec",
    b"msg_",
    b"redis://",
    b"\xc3\xa9",
    b"\xe2\x80\x83",
    b"\xf0\x9f\x98\x80",
    b"\xce\xa3",
    b"\xc3\x9f",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"1e999",
    b"-1",
    b"18446744073709551616",
    b"\"table\"",
    b"\"record\"",
    b"\"timestamp\"",
    b"Z",
    b"T",
    b"+25:00",
    b"2026-11-25T19:04:05.123Z",
    b"\"\"\"",
    b"'''",
    b"[a]",
    b"#",
    &[SEP],
];

/// One random change of `data` (`others` are spliced from).
pub fn mutate(rng: &mut Rng, data: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = data.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 1 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                out.drain(start..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let copy = out[start..end].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            5 | 6 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            7 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len() + 1);
                let at = rng.below(len + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => out[0] = rng.next_u64() as u8,
            _ => out.push(rng.next_u64() as u8),
        }
    }
    out.truncate(4096);
    out
}

/// A failing input and why.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Where it came from (a file, `seed N` or `mutation N`).
    pub origin: String,
    /// The input.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

/// What a short pass did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Inputs run.
    pub executed: usize,
    /// Inputs that failed a property.
    pub failures: Vec<Failure>,
}

/// Corpus entries replayed at most (the local corpus can grow large).
const MAX_CORPUS_FILES: usize = 300;

/// Runs `target` on its seeds, regressions, local corpus and `mutations` mutated inputs.
pub fn run(target: &Target, mutations: usize, seed: u64) -> Report {
    let mut report = Report::default();
    let mut base: Vec<(String, Vec<u8>)> = (target.seeds)()
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("seed {i}"), s))
        .collect();
    let saved = files(&regressions_dir(target.name)).into_iter().chain(
        files(&corpus_dir(target.name))
            .into_iter()
            .take(MAX_CORPUS_FILES),
    );
    for path in saved {
        if let Ok(data) = std::fs::read(&path) {
            base.push((path.display().to_string(), data));
        }
    }
    let record = |origin: String, input: Vec<u8>, report: &mut Report| {
        report.executed += 1;
        if let Err(message) = run_one(target.check, &input) {
            report.failures.push(Failure {
                origin,
                input,
                message,
            });
        }
    };
    for (origin, input) in &base {
        record(origin.clone(), input.clone(), &mut report);
    }
    let inputs: Vec<Vec<u8>> = base.into_iter().map(|(_, data)| data).collect();
    let mut rng = Rng::new(seed);
    for n in 0..mutations {
        let start = if inputs.is_empty() {
            Vec::new()
        } else {
            inputs[rng.below(inputs.len())].clone()
        };
        let input = mutate(&mut rng, &start, &inputs);
        record(format!("mutation {n} (seed {seed})"), input, &mut report);
    }
    report
}

/// Saves failing inputs under `artifacts/short/<target>/` and describes them.
pub fn describe(target: &str, failures: &[Failure]) -> String {
    let dir = fuzz_dir().join("artifacts").join("short").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let mut out = String::new();
    for failure in failures.iter().take(5) {
        let name = format!("crash-{:016x}", fnv(&failure.input));
        let path = dir.join(&name);
        let _ = std::fs::write(&path, &failure.input);
        out.push_str(&format!(
            "\n- {} ({}): {}\n  input {:?}\n  saved as {}",
            failure.origin,
            target,
            failure.message,
            String::from_utf8_lossy(&failure.input),
            path.display()
        ));
    }
    if failures.len() > 5 {
        out.push_str(&format!("\n… and {} more", failures.len() - 5));
    }
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `main` of a target binary built without libFuzzer: runs the target on every file (or
/// every file of every folder) named on the command line and says which fail.
pub fn replay_main(check: fn(&[u8])) -> std::process::ExitCode {
    let mut failed = 0;
    let mut ran = 0;
    for arg in std::env::args_os().skip(1) {
        let path = PathBuf::from(arg);
        let paths = if path.is_dir() {
            files(&path)
        } else {
            vec![path]
        };
        for path in paths {
            let Ok(data) = std::fs::read(&path) else {
                eprintln!("cannot read {}", path.display());
                failed += 1;
                continue;
            };
            ran += 1;
            if let Err(message) = run_one(check, &data) {
                failed += 1;
                eprintln!("FAIL {}: {message}", path.display());
            }
        }
    }
    println!("replayed {ran} input(s): {failed} failed");
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Writes `target`'s seeds into the folder `PODIUM_FUZZ_SEEDS_DIR` names, if it names one (a
/// libFuzzer target does this before it reads its corpus folders; `cargo xtask fuzz` passes
/// that folder as one of them).
pub fn write_seeds_from_env(target: &str) {
    let (Some(dir), Some(target)) = (
        std::env::var_os("PODIUM_FUZZ_SEEDS_DIR"),
        crate::target(target),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for (n, seed) in (target.seeds)().into_iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("seed-{n:03}")), seed);
    }
}

/// Mutations per target in the test run (`PODIUM_FUZZ_MUTATIONS` overrides).
pub fn mutations_from_env(default: usize) -> usize {
    std::env::var("PODIUM_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The mutation seed (`PODIUM_FUZZ_SEED` overrides; fixed by default, so a run is repeatable).
pub fn seed_from_env() -> u64 {
    std::env::var("PODIUM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_reported_with_its_message_and_a_passing_one_is_not() {
        fn fails_on_x(data: &[u8]) {
            assert!(!data.contains(&b'x'), "found an x");
        }
        assert_eq!(run_one(fails_on_x, b"abc"), Ok(()));
        let err = run_one(fails_on_x, b"axc").expect_err("x fails");
        assert!(err.contains("found an x"), "{err}");
    }

    #[test]
    fn mutations_are_repeatable_by_seed() {
        let seeds = vec![b"hello".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| mutate(&mut rng, b"hello", &seeds))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
