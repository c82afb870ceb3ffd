//! The podium example app (grows with the project).
fn main() {}
