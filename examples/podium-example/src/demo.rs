//! Demo data for the local Airtable server: a few events with projects, users, votes and
//! referrals, linked both ways as Airtable links them. Ids are fixed, so the printed "try this"
//! commands work on every start.
//!
//! The tables come from the app's model registry ([`crate::models::models`]): one table per
//! model, under the model's table name, with the model's fields declared.
//!
//! ```
//! use podium_example::demo::{seed, DEMO_BASE};
//! let seed = seed(DEMO_BASE, &podium_example::models::models());
//! let events = &seed["bases"][DEMO_BASE]["Events"];
//! assert_eq!(events["records"].as_array().map(Vec::len), Some(3));
//! assert!(events["fields"].as_array().is_some_and(|f| f.contains(&"slug".into())));
//! ```

use std::collections::BTreeMap;

use podium_cache_core::Models;
use serde_json::{json, Map, Value};

/// The demo base id.
pub const DEMO_BASE: &str = "appPODIUMDEMO0001";
/// The first demo event (its slug is `hack-night`).
pub const FIRST_EVENT: &str = "recEVT00000000001";
/// The first demo user (`ada@example.com`).
pub const FIRST_USER: &str = "recUSR00000000001";
/// The first demo vote (the printed delete removes it).
pub const FIRST_VOTE: &str = "recVOT00000000001";

fn id(prefix: &str, n: usize) -> String {
    format!("rec{prefix}{n:011}")
}

/// The seed JSON for `podium_local::airtable::AirtableServer::seed_json`: a table for every
/// model of `models` (its table name, its fields declared), holding the demo records of the
/// model's entity (none for a model the demo has no data for).
pub fn seed(base: &str, models: &Models) -> Value {
    let events = [
        ("Hack Night", "hack-night"),
        ("Demo Day", "demo-day"),
        ("Build Week", "build-week"),
    ];
    let people = [
        ("Ada", "Lovelace"),
        ("Grace", "Hopper"),
        ("Alan", "Turing"),
        ("Katherine", "Johnson"),
        ("Edsger", "Dijkstra"),
        ("Barbara", "Liskov"),
    ];
    let user_ids: Vec<String> = (1..=people.len()).map(|n| id("USR", n)).collect();
    let event_ids: Vec<String> = (1..=events.len()).map(|n| id("EVT", n)).collect();
    let mut projects = Vec::new();
    let mut votes = Vec::new();
    let mut referrals = Vec::new();
    let mut user_projects: Vec<Vec<String>> = vec![Vec::new(); people.len()];
    let mut user_votes: Vec<Vec<String>> = vec![Vec::new(); people.len()];
    let mut event_projects: Vec<Vec<String>> = vec![Vec::new(); events.len()];
    for p in 0..9 {
        let pid = id("PRJ", p + 1);
        let event = p % events.len();
        let owner = p % people.len();
        event_projects[event].push(pid.clone());
        user_projects[owner].push(pid.clone());
        projects.push(json!({"id": pid, "fields": {
            "name": format!("Project {}", p + 1),
            "description": format!("Demo project {} for {}", p + 1, events[event].0),
            "repo": format!("https://example.com/repo/{}", p + 1),
            "demo": format!("https://example.com/demo/{}", p + 1),
            "image_url": format!("https://example.com/img/{}.png", p + 1),
            "points": (p * 3) as f64,
            "event": [event_ids[event]],
            "owner": [user_ids[owner]],
            "collaborators": [user_ids[(owner + 1) % people.len()]],
        }}));
    }
    for v in 0..12 {
        let vid = id("VOT", v + 1);
        let voter = v % people.len();
        let project = (v * 5) % 9;
        user_votes[voter].push(vid.clone());
        votes.push(json!({"id": vid, "fields": {
            "event": [event_ids[project % events.len()]],
            "project": [id("PRJ", project + 1)],
            "voter": [user_ids[voter]],
        }}));
    }
    for r in 0..4 {
        referrals.push(json!({"id": id("REF", r + 1), "fields": {
            "event": [event_ids[r % events.len()]],
            "user": [user_ids[r]],
            "content": format!("Come to {}!", events[r % events.len()].0),
        }}));
    }
    let users: Vec<Value> = people
        .iter()
        .enumerate()
        .map(|(i, (first, last))| {
            json!({"id": user_ids[i], "fields": {
                "email": format!("{}@example.com", first.to_lowercase()),
                "display_name": format!("{first} {last}"),
                "first_name": first,
                "last_name": last,
                "attending_events": event_ids.iter().take(1 + i % events.len()).collect::<Vec<_>>(),
                "owned_events": if i < events.len() { vec![event_ids[i].clone()] } else { vec![] },
                "projects": user_projects[i],
                "collaborations": [],
                "votes": user_votes[i],
            }})
        })
        .collect();
    let events: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, (name, slug))| {
            json!({"id": event_ids[i], "fields": {
                "name": name,
                "slug": slug,
                "description": format!("{name}: build something, show it, vote."),
                "max_votes": 3,
                "owner": [user_ids[i]],
                "attendees": user_ids.iter().skip(i).collect::<Vec<_>>(),
                "projects": event_projects[i],
            }})
        })
        .collect();
    let mut by_entity = BTreeMap::from([
        ("users", users),
        ("events", events),
        ("projects", projects),
        ("votes", votes),
        ("referrals", referrals),
    ]);
    let tables: Map<String, Value> = models
        .iter()
        .map(|model| {
            let meta = model.meta();
            let fields: Vec<&str> = meta.fields.iter().map(|f| f.name).collect();
            let records = by_entity.remove(meta.entity).unwrap_or_default();
            (
                meta.table.to_owned(),
                json!({"fields": fields, "records": records}),
            )
        })
        .collect();
    json!({"bases": {base: tables}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Event, User};

    #[test]
    fn the_seed_has_a_table_for_each_registered_model_and_no_other() {
        let models = Models::new().register::<Event>().register::<User>();
        let seed = seed(DEMO_BASE, &models);
        let tables: Vec<&String> = seed["bases"][DEMO_BASE]
            .as_object()
            .map(|t| t.keys().collect())
            .unwrap_or_default();
        assert_eq!(tables, ["Events", "Users"]);
        let users = &seed["bases"][DEMO_BASE]["Users"];
        assert_eq!(users["records"].as_array().map(Vec::len), Some(6));
        assert_eq!(users["records"][0]["id"], FIRST_USER);
    }
}
