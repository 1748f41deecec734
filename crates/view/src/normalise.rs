//! Normalisation of per-run values in the JSON form of protocol messages.
//!
//! Two recordings of the same deterministic client run never carry quite the
//! same bytes: the daemon numbers its log activities `(worker pid << 32) +
//! counter`, stamps paths with their registration time and builds with their
//! start and stop times, `nix-build` registers indirect roots under a
//! temporary directory named after its pid (`/tmp/nix-build-<pid>-<n>`), the
//! garbage collector names the temporary-roots file of each worker by pid and
//! the automatic root of each symlink by a hash of the symlink's path, and
//! the client's settings (the number of cores, for one) follow the machine.
//!
//! This module replaces those values by stable placeholders so that such
//! recordings compare equal, while keeping everything that is deterministic —
//! store paths, hashes, sizes, names — intact:
//!
//! - `registrationTime`, `startTime` and `stopTime` become [`TIME`] and
//!   `cpuUser` and `cpuSystem` become [`DURATION`] (a zero or absent value is
//!   kept: it says "not measured" or "not built", which is not noise).
//! - Activity ids (`id` and `parent` of `startActivity`, `stopActivity` and
//!   `result` log messages) are renumbered 1, 2, 3… in order of appearance;
//!   parent 0 ("none") stays 0. A [`Normaliser`] keeps the numbering across
//!   the messages of one connection.
//! - In every string: timestamps (`2024-05-01T12:00:00Z`) become [`TIME`];
//!   `…/temproots/<pid>` ends in [`PID`]; `…/gcroots/auto/<hash>` ends in
//!   [`HASH`]; an absolute path under `/tmp`, `/var/tmp` or `$TMPDIR` keeps
//!   only its last component, after [`TMP`]; and the pid and counter of
//!   `nix-build-<pid>-<n>` style names, and the random suffix of
//!   `.tmpXXXXXX` names, become placeholders.
//! - `buildCores` of SetOptions becomes [`CORES`].
//!
//! [`request_key`] is the normalised JSON of a request, for matching a live
//! request against recorded ones: it also drops SetOptions' settings, which
//! follow the client's environment and never change the daemon's answer.

use std::sync::LazyLock;

use nixcap_wire::ops::Request;
use regex::Regex;
use serde_json::Value;

/// Placeholder for a timestamp.
pub const TIME: &str = "@TIME@";
/// Placeholder for a measured duration (CPU time).
pub const DURATION: &str = "@DURATION@";
/// Placeholder for a process id.
pub const PID: &str = "@PID@";
/// Placeholder for a per-run counter or random number.
pub const N: &str = "@N@";
/// Placeholder for a per-run hash (an automatic GC root's name).
pub const HASH: &str = "@HASH@";
/// Placeholder for a temporary directory.
pub const TMP: &str = "@TMP@";
/// Placeholder for the random part of a temporary file name.
pub const RANDOM: &str = "@RANDOM@";
/// Placeholder for the number of cores of the client's machine.
pub const CORES: &str = "@CORES@";
/// Placeholder for SetOptions' settings in a [`request_key`].
pub const SETTINGS: &str = "@SETTINGS@";

/// JSON keys holding a point in time (Unix seconds).
pub const TIMESTAMP_KEYS: &[&str] = &["registrationTime", "startTime", "stopTime"];
/// JSON keys holding a measured duration (microseconds).
pub const DURATION_KEYS: &[&str] = &["cpuUser", "cpuSystem"];

/// The `type` of the log messages that carry activity ids.
const ACTIVITY_MESSAGE_TYPES: &[&str] = &["startActivity", "stopActivity", "result"];

/// Whether `key` holds a timestamp or a duration.
pub fn is_time_key(key: &str) -> bool {
    TIMESTAMP_KEYS.contains(&key) || DURATION_KEYS.contains(&key)
}

/// Normalises JSON values, keeping activity numbering across calls.
///
/// Use one per connection: activity ids are per daemon worker, and a worker
/// serves one connection.
#[derive(Debug, Clone, Default)]
pub struct Normaliser {
    keep_times: bool,
    activities: Vec<u64>,
}

impl Normaliser {
    /// A normaliser with the default rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// A normaliser that leaves timestamps and durations as they are (for
    /// comparisons that look at timing).
    pub fn keeping_times() -> Self {
        Normaliser {
            keep_times: true,
            activities: Vec::new(),
        }
    }

    /// The stable number of an activity id: 1 for the first id seen, and so
    /// on; 0 stays 0.
    pub fn activity(&mut self, id: u64) -> u64 {
        if id == 0 {
            return 0;
        }
        let index = match self.activities.iter().position(|&seen| seen == id) {
            Some(index) => index,
            None => {
                self.activities.push(id);
                self.activities.len() - 1
            }
        };
        index as u64 + 1
    }

    /// Normalises `value` in place.
    pub fn value(&mut self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Some(normalised) = normalise_text_changed(text) {
                    *text = normalised;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.value(item)),
            Value::Object(map) => {
                let is_activity_message = map
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| ACTIVITY_MESSAGE_TYPES.contains(&t));
                for (key, item) in map.iter_mut() {
                    let key = key.as_str();
                    if is_activity_message && (key == "id" || key == "parent") {
                        if let Some(id) = item.as_u64() {
                            *item = Value::from(self.activity(id));
                        }
                        continue;
                    }
                    if !self.keep_times && is_time_key(key) {
                        if item.as_u64().is_some_and(|n| n != 0) {
                            let placeholder = if DURATION_KEYS.contains(&key) {
                                DURATION
                            } else {
                                TIME
                            };
                            *item = Value::from(placeholder);
                        }
                        continue;
                    }
                    if key == "buildCores" && item.is_u64() {
                        *item = Value::from(CORES);
                        continue;
                    }
                    self.value(item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Normalises a JSON value in place: per-run values replaced by stable placeholders.
pub fn normalise_value(value: &mut Value) {
    Normaliser::new().value(value);
}

/// The normalised JSON of a request, for matching a live request against recorded ones.
pub fn request_key(request: &Request) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Request::SetOptions { .. } = request {
        if let Some(map) = value.as_object_mut() {
            map.insert("settings".to_owned(), Value::from(SETTINGS));
        }
    }
    normalise_value(&mut value);
    value
}

/// Normalises per-run values in a piece of text (a path, a log line, an
/// error message).
pub fn normalise_text(text: &str) -> String {
    normalise_text_changed(text).unwrap_or_else(|| text.to_owned())
}

struct TextRules {
    timestamp: Regex,
    temproots: Regex,
    auto_root: Regex,
    temp_path: Regex,
    pid_dir: Regex,
    tempfile: Regex,
}

#[allow(clippy::expect_used)]
static RULES: LazyLock<TextRules> = LazyLock::new(|| {
    let compile = |pattern: &str| Regex::new(pattern).expect("the patterns are valid");
    // `$TMPDIR`, if it is set and is not already covered.
    let tmpdir = std::env::var("TMPDIR")
        .ok()
        .map(|dir| dir.trim_end_matches('/').to_owned())
        .filter(|dir| dir.len() > 1 && dir != "/tmp" && dir != "/var/tmp")
        .map(|dir| format!("|{}", regex::escape(&dir)))
        .unwrap_or_default();
    TextRules {
        timestamp: compile(
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
        ),
        temproots: compile(r"/temproots/\d+"),
        auto_root: compile(r"/gcroots/auto/[0-9a-z]{32}"),
        temp_path: compile(&format!(
            r#"(^|[^\w.@/-])(?:/tmp|/var/tmp{tmpdir})((?:/[^/\s'"`\x1b]+)+)"#
        )),
        pid_dir: compile(r"\b(nix(?:-build|-shell)?)-\d+-\d+\b"),
        tempfile: compile(r"\.tmp[A-Za-z0-9]{6}\b"),
    }
});

/// The normalised text, or `None` if nothing changed.
fn normalise_text_changed(text: &str) -> Option<String> {
    // Most strings are store paths, hashes or plain words: skip them fast.
    if !text.contains('/') && !text.contains('-') && !text.contains(".tmp") {
        return None;
    }
    let rules = &*RULES;
    let mut out = rules.timestamp.replace_all(text, TIME).into_owned();
    out = rules
        .temproots
        .replace_all(&out, format!("/temproots/{PID}"))
        .into_owned();
    out = rules
        .auto_root
        .replace_all(&out, format!("/gcroots/auto/{HASH}"))
        .into_owned();
    out = rules
        .temp_path
        .replace_all(&out, |captures: &regex::Captures<'_>| {
            let lead = captures.get(1).map_or("", |m| m.as_str());
            let rest = captures.get(2).map_or("", |m| m.as_str());
            let last = rest.rsplit('/').next().unwrap_or("");
            format!("{lead}{TMP}/{last}")
        })
        .into_owned();
    out = rules
        .pid_dir
        .replace_all(&out, format!("${{1}}-{PID}-{N}"))
        .into_owned();
    out = rules
        .tempfile
        .replace_all(&out, format!(".tmp{RANDOM}"))
        .into_owned();
    (out != text).then_some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn temporary_roots_of_nix_build_lose_their_pid_and_directory() {
        assert_eq!(
            normalise_text("/tmp/nix-build-12022-0/result"),
            "@TMP@/result"
        );
        assert_eq!(
            normalise_text("/tmp/nix-build-15922-3955064222"),
            "@TMP@/nix-build-@PID@-@N@"
        );
        assert_eq!(
            normalise_text("/tmp/nixcap-fixtures-2.8/build/result"),
            "@TMP@/result"
        );
        assert_eq!(
            normalise_text("removing stale link from '/nix/var/nix/gcroots/auto/2sxyqn8k5v8xgvgd3srd7aw4n428m7kx' to '/tmp/nix-build-12658-0/result'\n"),
            "removing stale link from '/nix/var/nix/gcroots/auto/@HASH@' to '@TMP@/result'\n"
        );
        assert_eq!(
            normalise_text(
                "removing stale temporary roots file \"/nix/var/nix/temproots/19166\"\n"
            ),
            "removing stale temporary roots file \"/nix/var/nix/temproots/@PID@\"\n"
        );
        assert_eq!(
            normalise_text("building in nix-build-123-4 and x/.tmpAb12Cd"),
            "building in nix-build-@PID@-@N@ and x/.tmp@RANDOM@"
        );
        assert_eq!(normalise_text("at 2024-05-01T12:00:00Z"), "at @TIME@");
    }

    #[test]
    fn store_paths_and_plain_text_are_kept() {
        for text in [
            "/nix/store/85bx2mf3qci1lj9bvb5q0iz07h85g5fk-file.txt",
            "/nix/store/85bx2mf3qci1lj9bvb5q0iz07h85g5fk-tmp-stuff",
            "fixed:r:sha256",
            "note: hard linking is currently saving -4.0 KiB\n",
            "building '/nix/store/wpybr9mcp07w556vgn3c6gn27mvjf18h-gen-1.drv'",
        ] {
            assert_eq!(normalise_text(text), text);
        }
    }

    #[test]
    fn times_are_replaced_unless_zero_and_activities_renumbered() {
        let mut value = json!({
            "info": {"registrationTime": 1795553670u64, "narSize": 136},
            "result": {"startTime": 0, "stopTime": 17, "cpuUser": null, "cpuSystem": 5},
            "log": [
                {"type": "startActivity", "id": 37744172597248u64, "parent": 0, "text": ""},
                {"type": "startActivity", "id": 37744172597250u64, "parent": 37744172597248u64},
                {"type": "result", "id": 37744172597250u64, "fields": [1, 2]},
                {"type": "stopActivity", "id": 37744172597248u64},
            ],
        });
        normalise_value(&mut value);
        assert_eq!(
            value,
            json!({
                "info": {"registrationTime": "@TIME@", "narSize": 136},
                "result": {"startTime": 0, "stopTime": "@TIME@", "cpuUser": null, "cpuSystem": "@DURATION@"},
                "log": [
                    {"type": "startActivity", "id": 1, "parent": 0, "text": ""},
                    {"type": "startActivity", "id": 2, "parent": 1},
                    {"type": "result", "id": 2, "fields": [1, 2]},
                    {"type": "stopActivity", "id": 1},
                ],
            })
        );
        let mut kept = json!({"registrationTime": 5});
        Normaliser::keeping_times().value(&mut kept);
        assert_eq!(kept, json!({"registrationTime": 5}));
    }

    #[test]
    fn request_keys_ignore_the_environment() {
        use nixcap_wire::types::ClientSettings;
        let settings = |cores| ClientSettings {
            keep_failed: false,
            keep_going: false,
            try_fallback: false,
            verbosity: 3,
            max_build_jobs: 1,
            max_silent_time: 0,
            use_build_hook: 1,
            verbose_build: 7,
            log_type: 0,
            print_build_trace: 0,
            build_cores: cores,
            use_substitutes: true,
            overrides: Vec::new(),
        };
        assert_eq!(
            request_key(&Request::SetOptions {
                settings: settings(2)
            }),
            request_key(&Request::SetOptions {
                settings: settings(64)
            })
        );
        let root = |path: &str| Request::AddIndirectRoot {
            path: path.as_bytes().to_vec().into(),
        };
        assert_eq!(
            request_key(&root("/tmp/nix-build-12022-0/result")),
            request_key(&root("/tmp/nix-build-9-3/result"))
        );
        let info = |path: &str| Request::QueryPathInfo {
            path: nixcap_wire::types::StorePath(path.to_owned()),
        };
        assert_ne!(
            request_key(&info("/nix/store/85bx2mf3qci1lj9bvb5q0iz07h85g5fk-a")),
            request_key(&info("/nix/store/52zb8zy76yi1ghxpzcm7rxwy0z8jka8f-a"))
        );
    }
}
