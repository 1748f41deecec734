//! Runs the benchmark harness in `--quick` mode on the synthetic cases and
//! checks that it writes a well-formed table and JSON. Nothing here looks at
//! how fast anything was: benchmarks are not timed tests.

use std::process::Command;

const HEADER: &str = "| case | direct | nixcap | socat | socat -v | ratio | target | met? |";

#[test]
fn quick_synthetic_run_writes_a_well_formed_table() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nixcap-bench"))
        .args([
            "--quick",
            "--synthetic-only",
            "--runs",
            "1",
            "--recorder",
            "library",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "nixcap-bench failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let md = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert_eq!(md, stdout, "stdout and results.md differ");
    let lines: Vec<&str> = md.lines().collect();
    let header = lines
        .iter()
        .position(|l| *l == HEADER)
        .expect("table header");
    assert_eq!(lines[header + 1], "|---|---|---|---|---|---|---|---|");
    let rows: Vec<&str> = lines[header + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .copied()
        .collect();
    for row in &rows {
        assert_eq!(row.matches('|').count(), 9, "eight cells in {row}");
    }
    for case in [
        "bulk: pump 16 MiB client → daemon",
        "bulk: pump 16 MiB daemon → client",
        "memory: recorder peak RSS after 1 MiB",
        "capture size: file ÷ raw, random bytes (pump)",
        "latency p50: 1000 × IsValidPath (synthetic daemon)",
        "latency p99: 1000 × IsValidPath (synthetic daemon)",
        "capture size: file ÷ raw, handshake + 1050 × IsValidPath (synthetic daemon)",
        "CPU: relay process seconds per GiB, pump (both directions)",
    ] {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| {case}")))
            .unwrap_or_else(|| panic!("no row for {case} in\n{md}"));
        // Every row has a measured nixcap value and a verdict.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_ne!(cells[3], "–", "nixcap value of {case}");
        if case.starts_with("CPU") {
            assert_eq!(cells[7], "(reported)", "target of {case}");
            continue;
        }
        assert!(
            ["yes", "**no**"].contains(&cells[8]),
            "verdict of {case}: {}",
            cells[8]
        );
    }
    // The real-Nix cases are listed as not measured, with the reason.
    assert!(md.contains("Not measured:"));
    for case in ["latency-nix", "add", "ops", "decode", "replay"] {
        assert!(
            md.contains(&format!("- {case}: --synthetic-only")),
            "{case} in\n{md}"
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["quick"], true);
    assert_eq!(json["runs"], 1);
    let json_rows = json["rows"].as_array().unwrap();
    assert_eq!(json_rows.len(), rows.len());
    for row in json_rows {
        // One sample per run, or per run and direction for the pump's rows.
        let samples = row["samples"]["nixcap"].as_array().unwrap();
        assert!((1..=2).contains(&samples.len()), "samples in {row}");
        if row["case"].as_str().unwrap().starts_with("CPU") {
            // Clock ticks are 10 ms: a 16 MiB pump may read as none.
            assert!(samples.iter().all(|s| s.as_f64().unwrap() >= 0.0), "{row}");
            assert!(row["met"].is_null());
            continue;
        }
        assert!(samples.iter().all(|s| s.as_f64().unwrap() > 0.0), "{row}");
        assert!(row["met"].is_boolean());
    }
    // The direct connection is measured in every bulk and latency row.
    for row in json_rows.iter().filter(|r| {
        let case = r["case"].as_str().unwrap();
        case.starts_with("bulk") || case.starts_with("latency")
    }) {
        assert!(row["values"]["direct"].as_f64().unwrap() > 0.0);
    }
}
