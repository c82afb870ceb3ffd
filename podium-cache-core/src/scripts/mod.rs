//! Airtable automation-script generation from [`crate::EntityMeta`].
//!
//! Each model gets one script, `{entity}_automation.js`, for two Airtable automations on the
//! model's table, "When a record is created" and "When a record is updated" (Airtable's record
//! triggers each fire on one kind of change), each → "Run a script". The script reads the
//! record named by its `recordId` input variable, the webhook URL from its `webhookUrl` input
//! variable and the `whsec_` secret from the script secret `podium_webhook_secret`
//! (`input.secret`, which only those who can access the secret read; never from a table every
//! base reader can read), and POSTs the delivery
//! `{"table", "record_id", "record": {"id", <fields>…}, "timestamp"}` signed the Standard Webhooks
//! way (see [`crate::webhook::signature`]). The fields are turned from the scripting API's cell
//! shapes into the REST API's, which the models read; the app uses them only when it trusts
//! delivery fields, and otherwise re-reads the record (see [`crate::webhook::receiver`]).
//! Retries back off exponentially with jitter, and every attempt and wait ends within
//! [`DEADLINE_MS`]. It runs in Airtable's scripting sandbox, so it brings its own UTF-8
//! encoding, base64, SHA-256 and HMAC, and uses `crypto.subtle` only when present.
//!
//! All scripts come from one template, `automation.js.tmpl` beside this file, with the table
//! name and the model's fields baked in as JSON literals.
//!
//! A user's own xtask writes the scripts of its models with [`write_scripts`]:
//!
//! ```no_run
//! # use podium_cache_core::entity::{EntityMeta, FieldKind, FieldMeta};
//! # static EVENTS: EntityMeta = EntityMeta { table: "Events", entity: "events", id_key: "id", fields: &[] };
//! # fn models() -> Vec<&'static EntityMeta> { vec![&EVENTS] }
//! let scripts = podium_cache_core::scripts::write_scripts("cache/generated".as_ref(), &models())?;
//! print!("{}", podium_cache_core::scripts::summary_table(&scripts));
//! # Ok::<(), podium_cache_core::scripts::ScriptError>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::entity::{EntityMeta, FieldKind};

/// The script template: JavaScript with `{{NAME}}` placeholders.
const TEMPLATE: &str = include_str!("automation.js.tmpl");

/// Every attempt and back-off of a script ends within this many milliseconds of its start:
/// Airtable stops an automation script after 30 s
/// (<https://coda.io/@kuovonne/kuovonnes-guided-to-scripting-in-airtable/automation-script-limits-54>),
/// and the run must still be able to log why it failed.
pub const DEADLINE_MS: u64 = 25_000;

/// The longest one `fetch` of a script is assumed to take: Airtable fails a request that has no
/// answer within 12 s (same source). A retry starts only if it can end by [`DEADLINE_MS`].
pub const FETCH_LIMIT_MS: u64 = 12_000;

/// Knobs of a generated script.
///
/// ```
/// use podium_cache_core::scripts::ScriptOptions;
/// let options = ScriptOptions::default().max_retries(5).backoff_ms(500);
/// assert_eq!((options.retries(), options.backoff()), (5, 500));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptOptions {
    max_retries: u32,
    backoff_ms: u64,
}

impl Default for ScriptOptions {
    /// 3 retries after the first attempt, waiting about 250 ms, 500 ms and 1 s (each plus up to
    /// half of it at random; 2.6 s at most), and never past [`DEADLINE_MS`].
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff_ms: 250,
        }
    }
}

impl ScriptOptions {
    /// How many times a 5xx answer or a network error is retried.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first back-off in milliseconds; each further retry waits twice as long.
    pub fn backoff_ms(mut self, ms: u64) -> Self {
        self.backoff_ms = ms;
        self
    }

    /// The configured number of retries.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The configured first back-off in milliseconds.
    pub fn backoff(&self) -> u64 {
        self.backoff_ms
    }
}

/// The automation script for one model, with the default [`ScriptOptions`].
///
/// ```
/// use podium_cache_core::entity::{EntityMeta, FieldKind, FieldMeta};
/// static EVENTS: EntityMeta = EntityMeta {
///     table: "Events",
///     entity: "events",
///     id_key: "id",
///     fields: &[
///         FieldMeta { name: "name", kind: FieldKind::Scalar, index: false },
///         FieldMeta { name: "owner", kind: FieldKind::Link { entity: "users", many: true }, index: false },
///     ],
/// };
/// let script = podium_cache_core::scripts::automation_script(&EVENTS);
/// // Paste it into the "Run a script" action of an automation triggered on the Events table
/// // (`cargo xtask gen-scripts` writes one file per model).
/// println!("{script}");
/// ```
///
/// `tests/automation_scripts.rs` runs every generated script under Node against a stand-in of
/// Airtable's scripting API and a webhook that verifies each delivery.
pub fn automation_script(meta: &EntityMeta) -> String {
    automation_script_with(meta, &ScriptOptions::default())
}

/// The automation script for one model with explicit options.
///
/// ```
/// # use podium_cache_core::entity::EntityMeta;
/// # static EVENTS: EntityMeta = EntityMeta { table: "Events", entity: "events", id_key: "id", fields: &[] };
/// use podium_cache_core::scripts::{automation_script_with, ScriptOptions};
/// // One retry at most, the first after about 100 ms.
/// let options = ScriptOptions::default().max_retries(1).backoff_ms(100);
/// let script = automation_script_with(&EVENTS, &options);
/// # let _ = script;
/// ```
pub fn automation_script_with(meta: &EntityMeta, options: &ScriptOptions) -> String {
    let fields: Vec<Value> = meta
        .fields
        .iter()
        .map(|field| match field.kind {
            FieldKind::Scalar => json!({ "name": field.name }),
            FieldKind::Link { many, .. } => json!({
                "name": field.name,
                "link": if many { "many" } else { "one" },
            }),
        })
        .collect();
    let table = js_literal(&Value::from(meta.table));
    let entity = js_literal(&Value::from(meta.entity));
    render(TEMPLATE, |name| match name {
        "TABLE_JSON" | "TABLE_COMMENT" => Some(table.clone()),
        "ENTITY_COMMENT" => Some(entity.clone()),
        "FIELDS_JSON" => Some(js_literal(&Value::from(fields.clone()))),
        "MAX_RETRIES" => Some(options.max_retries.to_string()),
        "BACKOFF_MS" => Some(options.backoff_ms.to_string()),
        "DEADLINE_MS" => Some(DEADLINE_MS.to_string()),
        "FETCH_LIMIT_MS" => Some(FETCH_LIMIT_MS.to_string()),
        _ => None,
    })
}

/// A JSON value as JavaScript source: JSON, with U+2028 and U+2029 escaped so that the literal
/// is safe in code and in `//` comments alike (JavaScript ends a line comment at either).
fn js_literal(value: &Value) -> String {
    value
        .to_string()
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Replaces each `{{NAME}}` of `template` in one pass (substituted text is never scanned
/// again); an unknown name is left as it is.
fn render(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => match value(&after[..end]) {
                Some(text) => {
                    out.push_str(&text);
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("{{");
                    rest = after;
                }
            },
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The file name of a model's script: `{entity}_automation.js` (characters other than ASCII
/// letters, digits, `_` and `-` in the entity become `_`).
///
/// ```
/// # use podium_cache_core::entity::EntityMeta;
/// # static EVENTS: EntityMeta = EntityMeta { table: "Events", entity: "events", id_key: "id", fields: &[] };
/// assert_eq!(podium_cache_core::scripts::script_file_name(&EVENTS), "events_automation.js");
/// ```
pub fn script_file_name(meta: &EntityMeta) -> String {
    let entity: String = meta
        .entity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{entity}_automation.js")
}

/// One script written by [`write_scripts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedScript {
    /// The Airtable table the automation belongs to.
    pub table: &'static str,
    /// The model's entity name.
    pub entity: &'static str,
    /// Where the script was written.
    pub path: PathBuf,
    /// The script's size in bytes.
    pub bytes: usize,
}

/// Why scripts could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The output directory could not be created.
    #[error("cannot create the script directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A script file could not be written.
    #[error("cannot write the script {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Two models would write the same file.
    #[error("two models would both write {file} (tables {first:?} and {second:?}): give one of them another #[cacheable(entity = \"...\")]")]
    DuplicateFile {
        /// The file name.
        file: String,
        /// The first model's table.
        first: &'static str,
        /// The second model's table.
        second: &'static str,
    },
}

/// Writes `{entity}_automation.js` for every model into `out_dir` (created if missing) and returns
/// what was written, in the order of `metas`.
///
/// ```
/// # use podium_cache_core::entity::EntityMeta;
/// # static EVENTS: EntityMeta = EntityMeta { table: "Events", entity: "events", id_key: "id", fields: &[] };
/// let dir = std::env::temp_dir().join(format!("podium-doc-scripts-{}", std::process::id()));
/// let written = podium_cache_core::scripts::write_scripts(&dir, &[&EVENTS])?;
/// assert_eq!(written[0].path, dir.join("events_automation.js"));
/// assert_eq!(written[0].bytes as u64, std::fs::metadata(&written[0].path).unwrap().len());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), podium_cache_core::scripts::ScriptError>(())
/// ```
pub fn write_scripts(
    out_dir: &Path,
    metas: &[&'static EntityMeta],
) -> Result<Vec<GeneratedScript>, ScriptError> {
    let mut seen: Vec<(String, &'static str)> = Vec::new();
    for meta in metas {
        let file = script_file_name(meta);
        if let Some((_, first)) = seen.iter().find(|(f, _)| *f == file) {
            return Err(ScriptError::DuplicateFile {
                file,
                first,
                second: meta.table,
            });
        }
        seen.push((file, meta.table));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| ScriptError::CreateDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::with_capacity(metas.len());
    for meta in metas {
        let path = out_dir.join(script_file_name(meta));
        let script = automation_script(meta);
        std::fs::write(&path, &script).map_err(|source| ScriptError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(GeneratedScript {
            table: meta.table,
            entity: meta.entity,
            path,
            bytes: script.len(),
        });
    }
    Ok(written)
}

/// A plain-text table of written scripts, one line each: Airtable table → file → size.
///
/// ```
/// use podium_cache_core::scripts::{summary_table, GeneratedScript};
/// let table = summary_table(&[GeneratedScript {
///     table: "Events",
///     entity: "events",
///     path: "cache/generated/events_automation.js".into(),
///     bytes: 12345,
/// }]);
/// assert!(table.contains("Events"));
/// assert!(table.contains("cache/generated/events_automation.js"));
/// assert!(table.contains("12345 bytes"));
/// ```
pub fn summary_table(scripts: &[GeneratedScript]) -> String {
    let rows: Vec<(String, String, String)> = scripts
        .iter()
        .map(|s| {
            (
                s.table.to_owned(),
                s.path.display().to_string(),
                format!("{} bytes", s.bytes),
            )
        })
        .collect();
    let header = (
        "Airtable table".to_owned(),
        "script (paste into \"Run a script\")".to_owned(),
        "size".to_owned(),
    );
    let w0 = rows
        .iter()
        .map(|r| r.0.chars().count())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.1.chars().count())
        .chain([header.1.len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, (a, b, c)) in std::iter::once(header).chain(rows).enumerate() {
        let arrow = if i == 0 { "  " } else { "->" };
        let _ = writeln!(out, "{a:<w0$} {arrow} {b:<w1$} {arrow} {c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::FieldMeta;

    static EVENTS: EntityMeta = EntityMeta {
        table: "Events",
        entity: "events",
        id_key: "id",
        fields: &[FieldMeta {
            name: "name",
            kind: FieldKind::Scalar,
            index: false,
        }],
    };

    #[test]
    fn every_placeholder_of_the_template_is_filled() {
        let script = automation_script(&EVENTS);
        assert!(!script.contains("{{"), "unfilled placeholder left");
        assert!(!script.contains("}}"), "unfilled placeholder left");
    }

    #[test]
    fn render_substitutes_once_and_keeps_unknown_names() {
        let out = render("a {{X}} b {{Y}} {{", |name| {
            (name == "X").then(|| "{{Y}}".to_owned())
        });
        assert_eq!(out, "a {{Y}} b {{Y}} {{");
    }

    #[test]
    fn file_names_cannot_leave_the_output_directory() {
        static EVIL: EntityMeta = EntityMeta {
            table: "T",
            entity: "../x",
            id_key: "id",
            fields: &[],
        };
        assert_eq!(script_file_name(&EVIL), "___x_automation.js");
    }

    #[test]
    fn two_models_writing_one_file_is_an_error() {
        static A: EntityMeta = EntityMeta {
            table: "A",
            entity: "same",
            id_key: "id",
            fields: &[],
        };
        static B: EntityMeta = EntityMeta {
            table: "B",
            entity: "same",
            id_key: "id",
            fields: &[],
        };
        let dir = std::env::temp_dir().join("podium-scripts-duplicate-test-never-created");
        let err = write_scripts(&dir, &[&A, &B]).expect_err("duplicate refused");
        assert!(matches!(err, ScriptError::DuplicateFile { .. }));
        assert!(!dir.exists());
    }
}
