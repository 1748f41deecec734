//! `nixcap export --format chrome-trace`, and its output loaded by a real trace viewer.
//!
//! The viewer is the Performance panel of the DevTools that Chromium bundles (Debian's
//! `chromium`, installed by `.ci/run`): `trace_viewer/devtools_load.py` runs Chromium headless
//! with a fresh profile and no network but loopback, hands it the exported file as "Load
//! profile" does, and reports the tracks and entries the panel drew. This panel draws
//! processes, threads and `B`/`E` slices; it does not draw async slices or instants (Perfetto UI
//! does, but cannot run offline), so the test checks the ops of every connection.
//!
//! Without Chromium (or python3) the viewer test skips, saying why; with `NIXCAP_REQUIRE_NIX=1`
//! it fails instead, as CI installs both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nixcap_capture::read_capture_file;
use nixcap_test_support::nix_required;
use nixcap_view::DecodedCapture;

/// Where Debian's `chromium` package puts the browser itself (`/usr/bin/chromium` is a shell
/// wrapper that does not pass the debugging pipe through).
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(path)
}

fn export(input: &Path, output: &Path, format: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(["export", "--format", format])
        .arg(input)
        .arg("-o")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn chrome_trace_is_a_format_of_export_and_pcapng_stays_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("nix-2.34/query.nixcap");
    for format in ["chrome-trace", "perfetto"] {
        let out = dir.path().join(format!("{format}.json"));
        let run = export(&input, &out, format);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            stdout.contains(": 9 connections, 38 ops, "),
            "summary line: {stdout}"
        );
        let trace: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert!(trace["traceEvents"]
            .as_array()
            .is_some_and(|e| !e.is_empty()));
    }
    // No --format: pcapng, as before.
    let pcap = dir.path().join("default.pcapng");
    let run = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("export")
        .arg(&input)
        .arg("-o")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(run.status.success());
    assert_eq!(
        &std::fs::read(&pcap).unwrap()[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a pcapng section header"
    );
    // One capture only, and no partitions.
    let two = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(["export", "--format", "chrome-trace"])
        .arg(&input)
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("two.json"))
        .output()
        .unwrap();
    assert_eq!(two.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&two.stderr).contains("exactly one capture"));
}

#[test]
fn a_damaged_capture_exports_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corrupt/truncated-mid-frame.nixcap");
    let out = dir.path().join("t.json");
    let run = export(&input, &out, "chrome-trace");
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("damaged") && stderr.contains("file offset"),
        "{stderr}"
    );
    let trace: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(trace["traceEvents"].is_array());
    // Not a capture at all: exit 2.
    let garbage =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/corrupt/wrong-magic.nixcap");
    assert_eq!(
        export(&garbage, &out, "chrome-trace").status.code(),
        Some(2)
    );
}

/// Why the viewer cannot run here, if it cannot.
fn viewer_missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("python3 is missing".to_owned()),
    }
}

/// Loads `trace` into Chromium's DevTools; returns the script's report.
fn load_in_devtools(trace: &Path, screenshot: Option<&Path>) -> serde_json::Value {
    let profile = tempfile::tempdir().unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/trace_viewer/devtools_load.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(CHROMIUM)
        .arg(trace)
        .arg(profile.path());
    if let Some(png) = screenshot {
        command.arg(png);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "devtools_load.py: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "devtools_load.py printed no report ({err}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn chromium_devtools_draws_every_connection_and_op_of_an_export() {
    if let Some(why) = viewer_missing() {
        assert!(!nix_required(), "the trace viewer cannot run: {why}");
        eprintln!("skipping: the trace viewer cannot run: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("nix-2.34/query.nixcap");
    let trace = dir.path().join("query.json");
    assert!(export(&input, &trace, "chrome-trace").status.success());
    // NIXCAP_TRACE_SCREENSHOT=FILE keeps a picture of the panel (docs/ has one).
    let screenshot = std::env::var_os("NIXCAP_TRACE_SCREENSHOT").map(PathBuf::from);
    let report = load_in_devtools(&trace, screenshot.as_deref());
    assert_eq!(report["loaded"], true, "{report}");

    let decoded = DecodedCapture::new(read_capture_file(&input).unwrap());
    let groups: Vec<&str> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    for connection in &decoded.connections {
        let prefix = format!("conn {} · pid ", connection.conn);
        assert!(
            groups.iter().any(|g| g.starts_with(&prefix)),
            "no track for connection {}: {groups:?}",
            connection.conn
        );
    }
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for connection in &decoded.connections {
        for exchange in &connection.exchanges {
            *expected.entry(exchange.op_name()).or_default() += 1;
        }
    }
    let mut drawn: BTreeMap<String, usize> = BTreeMap::new();
    for title in report["titles"].as_array().unwrap() {
        *drawn.entry(title.as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(drawn, expected, "the ops DevTools drew");
}
