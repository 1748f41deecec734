//! - Every committed capture diffs as identical to itself, read twice.
//! - The committed captures diff between Nix 2.8 and 2.26 and between 2.26
//!   and 2.34 as insta snapshots: a changelog of the protocol as the CLI
//!   uses it.

use std::path::{Path, PathBuf};

use nixcap_capture::read_capture_file;
use nixcap_diff::Options;
use nixcap_test_support::scenarios::all_scenarios;
use nixcap_view::DecodedCapture;

/// Where the committed captures are: `testdata/captures`, or `NIXCAP_CAPTURES_DIR` to check
/// a freshly recorded set before it is committed.
fn captures_dir() -> PathBuf {
    match std::env::var_os("NIXCAP_CAPTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures"),
    }
}

fn committed_capture(series: &str, scenario: &str) -> PathBuf {
    captures_dir()
        .join(format!("nix-{series}"))
        .join(format!("{scenario}.nixcap"))
}

fn decoded(path: &Path) -> DecodedCapture {
    DecodedCapture::new(read_capture_file(path).unwrap())
}

#[test]
fn every_capture_diffs_as_identical_to_itself() {
    insta::glob!("../../../../testdata/captures", "**/*.nixcap", |path| {
        let a = decoded(path);
        let b = decoded(path);
        let report = nixcap_diff::diff(&a, &b, &Options::default());
        assert!(report.is_identical(), "{}: {report}", path.display());
        assert_eq!(report.field_diffs().count(), 0, "{}", path.display());
        assert!(report.handshake.is_empty(), "{}", path.display());
        assert!(!a.connections.is_empty(), "{}", path.display());
    });
}

/// The committed captures of `scenario` for two Nix series, diffed.
fn committed_diff(scenario: &str, a: &str, b: &str) -> String {
    let load = |series: &str| {
        let path = committed_capture(series, scenario);
        let capture = read_capture_file(&path).unwrap_or_else(|err| {
            panic!(
                "{}: {err} (the committed captures are recorded by `cargo xtask fixtures`)",
                path.display()
            )
        });
        DecodedCapture::new(capture)
    };
    nixcap_diff::diff(&load(a), &load(b), &Options::default()).to_string()
}

#[test]
fn committed_scenarios_between_nix_2_8_and_2_26() {
    for scenario in all_scenarios() {
        insta::assert_snapshot!(
            format!("{}-2.8-vs-2.26", scenario.name),
            committed_diff(scenario.name, "2.8", "2.26")
        );
    }
}

#[test]
fn committed_scenarios_between_nix_2_26_and_2_34() {
    for scenario in all_scenarios() {
        insta::assert_snapshot!(
            format!("{}-2.26-vs-2.34", scenario.name),
            committed_diff(scenario.name, "2.26", "2.34")
        );
    }
}
