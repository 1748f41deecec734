//! `nixcap_view::summary` over every committed capture: the footer report,
//! the full scan that replaces it when the footer is unusable, the protocol
//! report, and the sum of a set.

use std::io::{self, Cursor};
use std::path::PathBuf;

use nixcap_view::summary::{
    build_report, protocol_report, set_report, ReadSeek, Report, Source, SummaryError,
};

use crate::{capture_name, captures_dir};

/// A capture's bytes with something appended after its trailer, so that the
/// footer cannot be found and the summary has to scan.
struct Appended {
    path: PathBuf,
    tail: &'static [u8],
}

impl Source for Appended {
    fn name(&self) -> String {
        format!(
            "{} (with {} bytes appended)",
            capture_name(&self.path),
            self.tail.len()
        )
    }

    fn open(&self) -> io::Result<Box<dyn ReadSeek>> {
        let mut bytes = std::fs::read(&self.path)?;
        bytes.extend_from_slice(self.tail);
        Ok(Box::new(Cursor::new(bytes)))
    }
}

/// The fields of a report that the footer and a scan must agree on.
fn container_counts(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "connections": r.connections,
        "close_reasons": r.close_reasons,
        "bytes_client_to_server": r.bytes_client_to_server,
        "bytes_server_to_client": r.bytes_server_to_client,
        "frames": r.frames,
        "blocks": r.blocks,
        "annotations": r.annotations,
        "uncompressed_bytes": r.uncompressed_bytes,
        "compressed_bytes": r.compressed_bytes,
        "duration_nanos": r.duration_nanos,
        "connection_list": r.connection_list,
    })
}

#[test]
fn every_capture_is_summarised_from_its_footer_and_decoded() {
    insta::glob!("../../../../testdata/captures", "**/*.nixcap", |path| {
        let name = capture_name(path);
        let report = build_report(path).unwrap();
        assert_eq!(report.file, path.display().to_string());
        assert_eq!(report.file_size, std::fs::metadata(path).unwrap().len());
        assert_eq!(report.source, "footer", "{name}");
        assert!(report.complete, "{name}");
        assert_eq!(report.problem, None, "{name}");
        assert_eq!(report.connections, report.connection_list.len() as u64);
        assert_eq!(
            report.bytes_client_to_server,
            report
                .connection_list
                .iter()
                .map(|c| c.bytes_client_to_server)
                .sum::<u64>(),
            "{name}"
        );
        assert_eq!(
            report.bytes_server_to_client,
            report
                .connection_list
                .iter()
                .map(|c| c.bytes_server_to_client)
                .sum::<u64>(),
            "{name}"
        );
        assert!(report.compressed_bytes > 0, "{name}");
        assert_eq!(
            report.compression_ratio,
            Some(report.uncompressed_bytes as f64 / report.compressed_bytes as f64)
        );

        let protocol = protocol_report(path).unwrap();
        assert_eq!(protocol.connections_with_undecoded_bytes, 0, "{name}");
        assert_eq!(
            protocol.sessions.iter().map(|s| s.connections).sum::<u64>(),
            report.connections,
            "{name}"
        );
        // What the recording decided: the handshakes, the ops, the store
        // objects and how connections ended. Times and sizes change each
        // time a scenario is recorded again, so they are left out.
        let decided = serde_json::json!({
            "connections": report.connections,
            "close_reasons": report.close_reasons,
            "sessions": protocol.sessions,
            "op_histogram": protocol.op_histogram,
            "store_objects": {
                "nars": protocol.store_objects.nars,
                "build_logs": protocol.store_objects.build_logs,
                "other": protocol.store_objects.other,
                "missing": protocol.store_objects.missing,
            },
        });
        insta::assert_json_snapshot!(decided);
    });
}

#[test]
fn a_scan_counts_what_the_footer_says() {
    insta::glob!("../../../../testdata/captures", "**/*.nixcap", |path| {
        let name = capture_name(path);
        let footer = build_report(path).unwrap();
        let damaged = Appended {
            path: path.to_path_buf(),
            tail: b"not a trailer",
        };
        let scanned = build_report(&damaged).unwrap();
        assert_eq!(scanned.source, "scan", "{name}");
        assert!(!scanned.complete, "{name}");
        let problem = scanned.problem.clone().unwrap();
        assert!(
            problem.starts_with("scan stopped at damage: "),
            "{name}: {problem}"
        );
        assert_eq!(scanned.file_size, footer.file_size + 13, "{name}");
        assert_eq!(
            container_counts(&scanned),
            container_counts(&footer),
            "{name}"
        );
        // The protocol report decodes whatever is readable: all of it here.
        assert_eq!(
            serde_json::to_value(protocol_report(&damaged).unwrap()).unwrap(),
            serde_json::to_value(protocol_report(path).unwrap()).unwrap(),
            "{name}"
        );
    });
}

#[test]
fn a_set_sums_its_captures() {
    let dir = captures_dir().join("nix-2.8");
    let mut members: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nixcap"))
        .collect();
    members.sort();
    assert!(members.len() > 1);
    let set = set_report("nix-2.8/", &members, true).unwrap();
    assert_eq!(set.prefix, "nix-2.8/");
    assert_eq!(set.captures, members.len() as u64);
    assert_eq!(set.complete, set.captures);
    let reports: Vec<Report> = members.iter().map(|m| build_report(m).unwrap()).collect();
    assert_eq!(
        set.total_size,
        reports.iter().map(|r| r.file_size).sum::<u64>()
    );
    assert_eq!(
        set.connections,
        reports.iter().map(|r| r.connections).sum::<u64>()
    );
    assert_eq!(
        set.bytes_client_to_server,
        reports
            .iter()
            .map(|r| r.bytes_client_to_server)
            .sum::<u64>()
    );
    assert_eq!(
        set.start_unix_nanos,
        reports.iter().map(|r| r.start_unix_nanos).min().unwrap()
    );
    let mut ops = std::collections::BTreeMap::new();
    for member in &members {
        for (op, n) in protocol_report(member).unwrap().op_histogram {
            *ops.entry(op).or_insert(0) += n;
        }
    }
    assert_eq!(set.op_histogram, Some(ops));
    let names: Vec<&str> = set.files.iter().map(|f| f.file.as_str()).collect();
    let expected: Vec<String> = members.iter().map(|m| m.display().to_string()).collect();
    assert_eq!(names, expected);

    let undecoded = set_report("nix-2.8/", &members, false).unwrap();
    assert_eq!(undecoded.op_histogram, None);
    assert_eq!(undecoded.connections, set.connections);

    let empty = set_report::<PathBuf>("none/", &[], true).unwrap();
    assert_eq!(empty.captures, 0);
    assert_eq!(empty.start_time, "1970-01-01T00:00:00.000000000Z");
}

#[test]
fn what_cannot_be_read_is_named() {
    let missing = captures_dir().join("nix-2.8/no-such.nixcap");
    let err = build_report(&missing).unwrap_err();
    assert!(matches!(err, SummaryError::Open { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot open {}", missing.display())
    );

    let readme = captures_dir().join("README.md");
    let err = build_report(&readme).unwrap_err();
    assert!(matches!(err, SummaryError::Read { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("cannot read {}", readme.display()));
    let err = protocol_report(&readme).unwrap_err();
    assert!(matches!(err, SummaryError::Read { .. }), "{err:?}");
}
