//! The Chrome trace export of every committed capture (and of every damaged one) is valid JSON
//! that meets the Trace Event format: every event has the fields its phase requires, `B`/`E`
//! pairs match per thread and `b`/`e` pairs per async track (same name, innermost first),
//! nothing is left open, and timestamps never go back on a track.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use nixcap_export::chrome::{export_chrome_trace, TraceSummary};
use nixcap_view::stream::EventStream;
use serde_json::Value;

fn testdata(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(dir)
}

/// Every `.nixcap` file under `dir`, sorted.
fn captures_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "nixcap") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn export(bytes: &[u8]) -> Option<(Vec<u8>, TraceSummary)> {
    let stream = EventStream::new(bytes).ok()?;
    let mut out = Vec::new();
    let mut reports = 0;
    let summary = export_chrome_trace(stream, &mut out, &mut |_| reports += 1).unwrap();
    assert!(reports > 0, "progress is reported at least at the end");
    Some((out, summary))
}

/// What the checks counted.
#[derive(Debug, Default)]
struct Counts {
    by_phase: BTreeMap<String, u64>,
    nested_async: u64,
}

fn str_field<'a>(event: &'a Value, key: &str, at: &str) -> &'a str {
    event[key]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: no string {key:?}: {event}"))
}

fn int_field(event: &Value, key: &str, at: &str) -> u64 {
    event[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{at}: no integer {key:?}: {event}"))
}

/// Checks one trace against the Trace Event format; panics with the event at fault.
fn check_trace(name: &str, trace: &[u8]) -> Counts {
    let trace: Value = serde_json::from_slice(trace)
        .unwrap_or_else(|err| panic!("{name}: the trace is not JSON: {err}"));
    let events = trace["traceEvents"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no traceEvents array"));
    assert!(trace["displayTimeUnit"] == "ms" || trace["displayTimeUnit"] == "ns");
    let mut counts = Counts::default();
    // Open B slices per (pid, tid), open b slices per (pid, cat, id), last ts per track.
    let mut threads: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut tracks: HashMap<(u64, String, String), Vec<String>> = HashMap::new();
    let mut last_ts: HashMap<String, f64> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let at = format!("{name} event {index}");
        let ph = str_field(event, "ph", &at);
        *counts.by_phase.entry(ph.to_owned()).or_default() += 1;
        let pid = int_field(event, "pid", &at);
        let tid = int_field(event, "tid", &at);
        let event_name = str_field(event, "name", &at).to_owned();
        if ph == "M" {
            assert!(
                [
                    "process_name",
                    "process_sort_index",
                    "thread_name",
                    "thread_sort_index"
                ]
                .contains(&event_name.as_str()),
                "{at}: unknown metadata {event}"
            );
            assert!(event["args"].is_object(), "{at}: metadata without args");
            continue;
        }
        let ts = event["ts"]
            .as_f64()
            .unwrap_or_else(|| panic!("{at}: no numeric ts: {event}"));
        assert!(ts >= 0.0, "{at}: negative ts");
        if let Some(args) = event.get("args") {
            assert!(args.is_object(), "{at}: args is not an object");
        }
        let track = match ph {
            "B" | "E" | "i" | "I" | "X" => format!("thread {pid}/{tid}"),
            "b" | "e" | "n" => {
                let cat = str_field(event, "cat", &at);
                let id = str_field(event, "id", &at);
                format!("async {pid}/{cat}/{id}")
            }
            other => panic!("{at}: unexpected phase {other:?}"),
        };
        let last = last_ts.entry(track.clone()).or_insert(0.0);
        assert!(ts >= *last, "{at}: ts {ts} before {last} on {track}");
        *last = ts;
        match ph {
            "B" => threads.entry((pid, tid)).or_default().push(event_name),
            "E" => {
                let open = threads.entry((pid, tid)).or_default().pop();
                assert_eq!(
                    open.as_deref(),
                    Some(event_name.as_str()),
                    "{at}: E without its B"
                );
            }
            "X" => assert!(event["dur"].as_f64().is_some(), "{at}: X without dur"),
            "i" | "I" => {
                let scope = event.get("s").and_then(Value::as_str).unwrap_or("t");
                assert!(["g", "p", "t"].contains(&scope), "{at}: bad scope");
            }
            "b" | "e" | "n" => {
                let key = (
                    pid,
                    str_field(event, "cat", &at).to_owned(),
                    str_field(event, "id", &at).to_owned(),
                );
                let stack = tracks.entry(key).or_default();
                match ph {
                    "b" => {
                        if !stack.is_empty() {
                            counts.nested_async += 1;
                        }
                        stack.push(event_name);
                    }
                    "e" => {
                        let open = stack.pop();
                        assert_eq!(
                            open.as_deref(),
                            Some(event_name.as_str()),
                            "{at}: e without its b"
                        );
                    }
                    _ => assert!(!stack.is_empty(), "{at}: n outside any open b"),
                }
            }
            _ => unreachable!(),
        }
    }
    for ((pid, tid), open) in threads {
        assert!(open.is_empty(), "{name}: {pid}/{tid} left open: {open:?}");
    }
    for (key, open) in tracks {
        assert!(open.is_empty(), "{name}: {key:?} left open: {open:?}");
    }
    counts
}

#[test]
fn every_committed_capture_exports_to_a_valid_trace() {
    let files = captures_under(&testdata("captures"));
    assert!(files.len() >= 30, "only {} captures found", files.len());
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut activities = 0;
    for file in &files {
        let name = file.display().to_string();
        let bytes = fs::read(file).unwrap();
        let (trace, summary) = export(&bytes).expect("a committed capture reads");
        assert!(summary.damage.is_none(), "{name}: {:?}", summary.damage);
        let counts = check_trace(&name, &trace);
        assert_eq!(
            counts.by_phase.values().sum::<u64>(),
            summary.events,
            "{name}"
        );
        assert_eq!(counts.by_phase.get("B").copied().unwrap_or(0), summary.ops);
        assert_eq!(
            counts.by_phase.get("b").copied().unwrap_or(0),
            summary.activities
        );
        assert!(summary.connections > 0 && summary.ops > 0, "{name}");
        activities += summary.activities;
        for (phase, n) in counts.by_phase {
            *totals.entry(phase).or_default() += n;
        }
    }
    // The builds have activities, results and log lines, and the handshakes and closes are there.
    assert!(activities > 0);
    for phase in ["M", "B", "E", "b", "e", "n", "i"] {
        assert!(
            totals.get(phase).is_some_and(|&n| n > 0),
            "no {phase}: {totals:?}"
        );
    }
}

#[test]
fn a_build_trace_has_ops_activities_and_connection_instants() {
    let bytes = fs::read(testdata("captures/nix-2.34/build-fail.nixcap")).unwrap();
    let (trace, _) = export(&bytes).unwrap();
    let trace: Value = serde_json::from_slice(&trace).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let named = |ph: &str, name: &str| {
        events
            .iter()
            .any(|e| e["ph"] == ph && e["name"].as_str().is_some_and(|n| n.contains(name)))
    };
    assert!(named("B", "BuildPaths"), "an op slice");
    assert!(
        named("b", "building '/nix/store/"),
        "an activity named by its text"
    );
    assert!(
        named("b", "actBuilds"),
        "an activity without text named by its type"
    );
    assert!(
        named("n", "about to fail"),
        "a build log line on its activity"
    );
    for instant in ["open", "handshake", "close"] {
        assert!(named("i", instant), "{instant}");
    }
    let build = events
        .iter()
        .find(|e| e["ph"] == "b" && e["args"]["type"] == "actBuild")
        .unwrap();
    assert_eq!(build["args"]["level"], 3);
    assert!(build["args"]["fields"][0]
        .as_str()
        .unwrap()
        .ends_with("-fail.drv"));
    let failed = events
        .iter()
        .find(|e| e["ph"] == "E" && e["name"] == "BuildPaths")
        .unwrap();
    assert!(failed["args"]["error"].as_str().is_some(), "{failed}");
}

#[test]
fn damaged_captures_export_what_precedes_the_damage_as_a_valid_trace() {
    let mut damaged = 0;
    for file in captures_under(&testdata("corrupt")) {
        let name = file.display().to_string();
        let bytes = fs::read(&file).unwrap();
        let Some((trace, summary)) = export(&bytes) else {
            // Not readable as a capture at all (no header): nothing to export.
            continue;
        };
        if summary.damage.is_some() {
            damaged += 1;
        }
        check_trace(&name, &trace);
    }
    assert!(
        damaged > 0,
        "some corrupt captures are damaged past their header"
    );
}

#[test]
fn every_cut_of_a_capture_exports_to_a_valid_trace() {
    let bytes = fs::read(testdata("captures/nix-2.8/build.nixcap")).unwrap();
    for len in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        if let Some((trace, _)) = export(&bytes[..len]) {
            check_trace(&format!("build.nixcap cut at {len}"), &trace);
        }
    }
}
