//! Checks the committed captures in `testdata/captures/` without running Nix: the manifest
//! matches the files, every scenario of every series is there with its sidecar (and `copy` with
//! the capture of its source store), and every capture is intact, cleanly closed and decodes
//! without opaque bytes.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nixcap_capture::{read_capture_file, CloseReason, Direction};
use nixcap_test_support::scenarios::{
    sha256_hex, source_capture_name, FixtureRecord, FIXTURE_RECORD_FORMAT, SCENARIOS,
};
use nixcap_wire::session::{Direction as WireDirection, EventKind, PayloadItem, SessionDecoder};

const SERIES: [&str; 3] = ["nix-2.8", "nix-2.26", "nix-2.34"];

fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures")
}

/// The captures a sidecar describes, with their connection counts and ops: the scenario's
/// capture (`base` with `.nixcap`) and, for `copy`, the capture of the source store.
fn captures_of<'a>(
    base: &Path,
    record: &'a FixtureRecord,
) -> Vec<(PathBuf, usize, &'a [Vec<String>])> {
    let mut captures = vec![(
        base.with_extension("nixcap"),
        record.connections,
        record.ops.as_slice(),
    )];
    if let Some(source) = &record.source {
        captures.push((
            base.with_file_name(&source.capture),
            source.connections,
            source.ops.as_slice(),
        ));
    }
    captures
}

#[test]
fn the_manifest_matches_the_files() {
    let dir = captures_dir();
    let manifest = fs::read_to_string(dir.join("MANIFEST.sha256")).unwrap();
    let mut listed = BTreeMap::new();
    for line in manifest.lines() {
        let (hash, name) = line.split_once("  ").unwrap();
        listed.insert(name.to_owned(), hash.to_owned());
    }
    assert!(listed.contains_key("README.md"));
    for series in SERIES {
        for scenario in SCENARIOS {
            let mut names: Vec<String> = ["nixcap", "json"]
                .iter()
                .map(|ext| format!("{series}/{}.{ext}", scenario.name))
                .collect();
            if scenario.needs_source {
                names.push(format!("{series}/{}", source_capture_name(scenario.name)));
            }
            for name in names {
                assert!(listed.contains_key(&name), "{name} is not in the manifest");
            }
        }
    }
    for (name, hash) in &listed {
        let bytes = fs::read(dir.join(name)).unwrap();
        assert_eq!(&sha256_hex(&bytes), hash, "{name}");
    }
}

#[test]
fn every_capture_is_complete_and_matches_its_sidecar() {
    let dir = captures_dir();
    for series in SERIES {
        for scenario in SCENARIOS {
            let base = dir.join(series).join(scenario.name);
            let record: FixtureRecord =
                serde_json::from_str(&fs::read_to_string(base.with_extension("json")).unwrap())
                    .unwrap();
            assert_eq!(record.format, FIXTURE_RECORD_FORMAT);
            assert_eq!(record.scenario, scenario.name);
            assert_eq!(record.run.client_nix_version, record.daemon_nix_version);
            assert!(
                record.run.unexpected_outcomes().is_empty(),
                "{series}/{}: {:?}",
                scenario.name,
                record.run.unexpected_outcomes()
            );
            assert_eq!(record.source.is_some(), scenario.needs_source);
            for (path, connections, ops) in captures_of(&base, &record) {
                let capture = read_capture_file(&path).unwrap();
                assert!(capture.is_intact(), "{:?}", capture.damage);
                assert!(capture.footer.is_some());
                assert_eq!(capture.connections.len(), connections, "{}", path.display());
                assert_eq!(ops.len(), connections, "{}", path.display());
                for connection in &capture.connections {
                    let closed = connection.closed.as_ref().unwrap();
                    assert_eq!(closed.reason, CloseReason::CleanEof);
                }
            }
        }
    }
}

#[test]
fn every_capture_decodes_without_opaque_bytes() {
    let dir = captures_dir();
    for series in SERIES {
        for scenario in SCENARIOS {
            let base = dir.join(series).join(scenario.name);
            let record: FixtureRecord =
                serde_json::from_str(&fs::read_to_string(base.with_extension("json")).unwrap())
                    .unwrap();
            for (path, _, record_ops) in captures_of(&base, &record) {
                let capture = read_capture_file(&path).unwrap();
                for (index, connection) in capture.connections.iter().enumerate() {
                    let mut decoder = SessionDecoder::new();
                    for chunk in &connection.chunks {
                        let direction = match chunk.direction {
                            Direction::ClientToServer => WireDirection::ClientToDaemon,
                            _ => WireDirection::DaemonToClient,
                        };
                        decoder.feed(direction, &chunk.bytes);
                    }
                    decoder.finish();
                    let mut ops = Vec::new();
                    while let Some(event) = decoder.next_event() {
                        let label = format!("{} connection {index}", path.display());
                        assert!(!event.kind.is_undecoded(), "{label}: {event:?}");
                        match &event.kind {
                            EventKind::Request { request, .. } => {
                                ops.push(request.op().name().to_owned());
                            }
                            EventKind::FramedData { payload, .. }
                            | EventKind::FramedEnd { payload, .. }
                            | EventKind::ReadAnswer { payload, .. } => {
                                for item in payload {
                                    assert!(
                                        !matches!(item, PayloadItem::Undecodable { .. }),
                                        "{label}: {item:?}"
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                    assert_eq!(ops, record_ops[index], "{}", path.display());
                }
            }
        }
    }
}
