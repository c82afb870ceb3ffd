//! Fuzz targets of podium-cache-core: what each checks on any input.
//!
//! Each target is a function from bytes to nothing that panics when a property fails. The
//! binaries in `fuzz_targets/` hand them to libFuzzer (built with `--cfg fuzzing`, as
//! `cargo xtask fuzz` and `cargo fuzz` build them); [`short`] runs them on seeds, on saved
//! regressions and on mutated inputs without libFuzzer, for the test run.
//!
//! | target | what |
//! |---|---|
//! | `webhook_delivery` | the automation delivery pipeline: signature, timestamp, JSON, replay guard, ordering |
//! | `native_notification` | native-webhook MAC, notifications, payload and webhook JSON |
//! | `formula` | `filterByFormula` builders against a real formula parser |
//! | `keys` | every store key: shape, length, distinctness, `SCAN` pattern |
//! | `config` | `.secrets.toml` + environment: never panics, keeps its rules, never shows a secret |

#![forbid(unsafe_code)]

pub mod config;
pub mod delivery;
pub mod formula;
pub mod input;
pub mod keys;
pub mod native;
pub mod short;
pub mod support;

/// One fuzz target.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Its name (the binary's, and the folder of its corpus and regressions).
    pub name: &'static str,
    /// The check: panics when a property fails.
    pub check: fn(&[u8]),
    /// Inputs to start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "webhook_delivery",
        check: delivery::check,
        seeds: delivery::seeds,
    },
    Target {
        name: "native_notification",
        check: native::check,
        seeds: native::seeds,
    },
    Target {
        name: "formula",
        check: formula::check,
        seeds: formula::seeds,
    },
    Target {
        name: "keys",
        check: keys::check,
        seeds: keys::seeds,
    },
    Target {
        name: "config",
        check: config::check,
        seeds: config::seeds,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|t| t.name == name)
}
