//! The committed fixture captures, merged per Nix version, for the replay
//! fuzz targets (included by each with `#[path]`).

use std::path::{Path, PathBuf};

use nixcap_capture::Capture;

/// The fixture series in `testdata/captures/`.
pub const VERSIONS: [&str; 3] = ["nix-2.8", "nix-2.26", "nix-2.34"];

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures")
}

/// Every fixture capture of `version` except those whose file stem is in
/// `left_out`, merged into one: connection ids renumbered so that they stay
/// unique, store objects kept.
pub fn merged_capture(version: &str, left_out: &[&str]) -> Capture {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(captures_dir().join(version))
        .expect("reading the fixture directory")
        .map(|entry| entry.expect("listing the fixtures").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "nixcap"))
        .filter(|path| {
            !path
                .file_stem()
                .is_some_and(|stem| left_out.iter().any(|left| stem == *left))
        })
        .collect();
    paths.sort();
    let mut merged: Option<Capture> = None;
    let mut next_conn = 1;
    for path in paths {
        let mut capture = nixcap_capture::read_capture_file(&path).expect("reading a fixture");
        for connection in &mut capture.connections {
            connection.conn = next_conn;
            next_conn += 1;
        }
        match &mut merged {
            None => merged = Some(capture),
            Some(all) => {
                all.connections.extend(capture.connections);
                all.store_objects.extend(capture.store_objects);
            }
        }
    }
    merged.expect("no fixture captures")
}
