//! The short fuzz pass of the test run: each target on its seeds, its saved regressions and a
//! fixed number of mutated inputs (`PODIUM_FUZZ_MUTATIONS`, `PODIUM_FUZZ_SEED` change them).
//! A failing input is saved under `artifacts/short/<target>/` for `cargo xtask fuzz --replay`.

use podium_cache_core_fuzz::short::{self, describe, mutations_from_env, seed_from_env};
use podium_cache_core_fuzz::target;

const MUTATIONS: usize = 3_000;

fn short_pass(name: &str) {
    let target = target(name).expect("a known target");
    let mutations = mutations_from_env(MUTATIONS);
    let report = short::run(&target, mutations, seed_from_env());
    assert!(
        report.executed >= (target.seeds)().len() + mutations,
        "{name} ran only {} inputs",
        report.executed
    );
    assert!(
        report.failures.is_empty(),
        "{name}: {} of {} inputs failed:{}",
        report.failures.len(),
        report.executed,
        describe(name, &report.failures)
    );
}

#[test]
fn only_verified_deliveries_are_applied_and_they_stay_readable_and_ordered() {
    short_pass("webhook_delivery");
}

#[test]
fn native_notifications_need_their_mac_and_webhook_json_round_trips() {
    short_pass("native_notification");
}

#[test]
fn formula_builders_match_exactly_what_they_say_under_a_real_parser() {
    short_pass("formula");
}

#[test]
fn keys_stay_well_formed_distinct_and_selected_only_by_their_pattern() {
    short_pass("keys");
}

#[test]
fn any_configuration_is_refused_or_kept_to_its_rules_without_showing_a_secret() {
    short_pass("config");
}
