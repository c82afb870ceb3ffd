//! `keys`: see [`podium_cache_core_fuzz::keys`]. A libFuzzer target when built with
//! `--cfg fuzzing` (`cargo xtask fuzz`, `cargo fuzz`); otherwise it replays the input files
//! and folders named on its command line.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(
    init: podium_cache_core_fuzz::short::write_seeds_from_env("keys"),
    |data: &[u8]| podium_cache_core_fuzz::keys::check(data)
);

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    podium_cache_core_fuzz::short::replay_main(podium_cache_core_fuzz::keys::check)
}
