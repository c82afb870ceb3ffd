//! The podium models: users, events, projects, votes and referrals.
//!
//! Each is one Airtable table; linked-record fields hold record ids. A field missing from a
//! record (Airtable leaves empty cells out) takes its default: empty text, `0` for numbers, no
//! links.
//!
//! ```
//! use podium_cache_core::Cacheable;
//! use podium_example::models::Event;
//!
//! let event: Event = serde_json::from_value(serde_json::json!({
//!     "id": "recEvt1", "name": "Demo day", "slug": "demo-day", "owner": ["recUsr1"]
//! }))?;
//! assert_eq!(event.index_values(), vec![("slug", "demo-day".to_string())]);
//! assert_eq!(event.max_votes, 0.0);
//! assert_eq!(Event::meta().entity, "events");
//! # Ok::<(), serde_json::Error>(())
//! ```

use podium_cache_core::{Cacheable, EntityMeta, Models};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A person: attends and owns events, works on projects, votes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Users")]
#[serde(default)]
pub struct User {
    /// Airtable record id.
    pub id: String,
    /// E-mail address (indexed: the auth check reads the user by e-mail).
    #[cacheable(index)]
    pub email: String,
    /// Name shown in the app.
    pub display_name: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Events the user attends.
    #[serde(default)]
    #[cacheable(references = "events")]
    pub attending_events: Vec<String>,
    /// Events the user owns.
    #[serde(default)]
    #[cacheable(references = "events")]
    pub owned_events: Vec<String>,
    /// Projects the user owns.
    #[serde(default)]
    #[cacheable(references = "projects")]
    pub projects: Vec<String>,
    /// Projects the user collaborates on.
    #[serde(default)]
    #[cacheable(references = "projects")]
    pub collaborations: Vec<String>,
    /// Votes the user cast.
    #[serde(default)]
    #[cacheable(references = "votes")]
    pub votes: Vec<String>,
}

/// An event projects are submitted to and voted on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Events")]
#[serde(default)]
pub struct Event {
    /// Airtable record id.
    pub id: String,
    /// Event name.
    pub name: String,
    /// URL slug (indexed: event pages are read by slug).
    #[cacheable(index)]
    pub slug: String,
    /// Description.
    pub description: String,
    /// How many votes each attendee may cast (0 when unset).
    pub max_votes: f64,
    /// The user(s) owning the event.
    #[serde(default)]
    #[cacheable(references = "users")]
    pub owner: Vec<String>,
    /// Users attending.
    #[serde(default)]
    #[cacheable(references = "users")]
    pub attendees: Vec<String>,
    /// Projects submitted.
    #[serde(default)]
    #[cacheable(references = "projects")]
    pub projects: Vec<String>,
}

/// A project submitted to an event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Projects")]
#[serde(default)]
pub struct Project {
    /// Airtable record id.
    pub id: String,
    /// Project name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Source repository URL.
    pub repo: String,
    /// Demo URL.
    pub demo: String,
    /// Cover image URL.
    pub image_url: String,
    /// Points from votes (0 when unset).
    pub points: f64,
    /// The event it was submitted to.
    #[serde(default)]
    #[cacheable(references = "events")]
    pub event: Vec<String>,
    /// The user(s) owning the project.
    #[serde(default)]
    #[cacheable(references = "users")]
    pub owner: Vec<String>,
    /// Users collaborating on it.
    #[serde(default)]
    #[cacheable(references = "users")]
    pub collaborators: Vec<String>,
}

/// One user's vote for one project at one event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Votes")]
#[serde(default)]
pub struct Vote {
    /// Airtable record id.
    pub id: String,
    /// The event voted at.
    #[serde(default)]
    #[cacheable(references = "events")]
    pub event: Vec<String>,
    /// The project voted for.
    #[serde(default)]
    #[cacheable(references = "projects")]
    pub project: Vec<String>,
    /// The user who voted.
    #[serde(default)]
    #[cacheable(references = "users")]
    pub voter: Vec<String>,
}

/// How a user heard of an event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, Cacheable)]
#[cacheable(table = "Referrals")]
#[serde(default)]
pub struct Referral {
    /// Airtable record id.
    pub id: String,
    /// The event.
    #[serde(default)]
    #[cacheable(references = "events")]
    pub event: Vec<String>,
    /// The user referred.
    #[serde(default)]
    #[cacheable(references = "users")]
    pub user: Vec<String>,
    /// The referral text.
    pub content: String,
}

/// Every model of the app: the one list the webhook routes, the maintenance (sweep), the task
/// runner (`cargo xtask`) and the local Airtable server's demo seed all take.
///
/// ```
/// let tables = podium_example::models::models().tables();
/// assert_eq!(tables, ["Events", "Projects", "Referrals", "Users", "Votes"]);
/// ```
pub fn models() -> Models {
    Models::new()
        .register::<User>()
        .register::<Event>()
        .register::<Project>()
        .register::<Vote>()
        .register::<Referral>()
}

/// The metadata of every model of [`models`], in table order (what `cargo xtask gen-scripts`
/// writes scripts for).
///
/// ```
/// let entities: Vec<&str> = podium_example::models::all_models().iter().map(|m| m.entity).collect();
/// assert_eq!(entities, ["events", "projects", "referrals", "users", "votes"]);
/// ```
pub fn all_models() -> Vec<&'static EntityMeta> {
    models().iter().map(|model| model.meta()).collect()
}
