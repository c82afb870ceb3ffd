//! Misuse of `#[derive(Cacheable)]` is a compile error that says what to write instead.
//! The expected messages are the `.stderr` files beside each case in `tests/ui/`
//! (regenerate with `TRYBUILD=overwrite cargo test -p podium-cache-macros --test derive_compile_errors`,
//! then read them).

#[test]
fn misuse_of_the_derive_fails_to_compile_with_an_explanation() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
