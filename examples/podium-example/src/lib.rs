//! The podium example app's library part: the five models it caches.
//!
//! ```
//! let tables: Vec<&str> = podium_example::models::all_models().iter().map(|m| m.table).collect();
//! assert_eq!(tables, ["Events", "Projects", "Referrals", "Users", "Votes"]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod demo;
pub mod models;
pub mod server;
