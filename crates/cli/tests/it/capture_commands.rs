//! `nixcap info` and `nixcap verify` on the capture files of `testdata/corrupt/`.

use std::path::PathBuf;
use std::process::{Command, Output};

fn corrupt(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/corrupt")
        .join(name)
}

fn nixcap(args: &[&str], file: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(args)
        .arg(file)
        .output()
        .expect("nixcap runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

#[test]
fn verify_exit_codes_follow_the_documented_meaning() {
    let unreadable = [
        "empty.nixcap",
        "wrong-magic.nixcap",
        "future-major.nixcap",
        "truncated-in-magic.nixcap",
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(corrupt("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".nixcap") {
            continue;
        }
        let output = nixcap(&["verify"], &path);
        let text = stdout(&output);
        let expected = if name == "valid.nixcap" {
            0
        } else if unreadable.contains(&name.as_str()) {
            2
        } else {
            1
        };
        assert_eq!(output.status.code(), Some(expected), "{name}: {text}");
        let verdict = ["OK", "DAMAGED", "UNREADABLE"][expected as usize];
        assert!(
            text.starts_with(&format!("{}: {verdict}", path.display())),
            "{name}: {text}"
        );
        if expected == 1 {
            assert!(
                text.contains("  where:      file offset "),
                "{name}: {text}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 21);
}

#[test]
fn verify_names_the_damaged_frame_and_connection() {
    let output = nixcap(&["verify"], &corrupt("hash-mismatch.nixcap"));
    let text = stdout(&output);
    assert!(
        text.contains("connection 1 server-to-client: SHA-256"),
        "{text}"
    );
    assert!(text.contains("frame 2, block 13, connection 1"), "{text}");

    let output = nixcap(&["verify"], &corrupt("truncated-mid-frame.nixcap"));
    let text = stdout(&output);
    assert!(text.contains("truncated in the frame payload"), "{text}");
    assert!(text.contains("file offset 261, frame 1"), "{text}");
    assert!(
        text.contains("before it:  6 blocks from 1 frame read"),
        "{text}"
    );
    assert!(text.contains("incomplete: connections 1, 2"), "{text}");

    let output = nixcap(&["verify"], &corrupt("future-major.nixcap"));
    assert!(stdout(&output).contains("format 2.0 is newer than this nixcap supports (1.x)"));
}

#[test]
fn info_uses_the_footer_of_a_finished_capture() {
    let output = nixcap(&["info"], &corrupt("valid.nixcap"));
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for line in [
        "Format version:         1.0",
        "Written by:             nixcap 0.1.0",
        "Complete:               yes",
        "Statistics from:        footer index",
        "Start time:             2023-11-14T22:13:20.123456789Z",
        "Duration:               0.900000 s",
        "Connections:            4 (1 clean EOF, 1 recorder shutdown, 1 reset, 1 upstream unreachable)",
        "Bytes client->server:   343",
        "Bytes server->client:   448",
        "Frames:                 3",
        "Blocks:                 16",
        "  hostname:             builder",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn info_scans_an_unfinished_capture_and_says_so() {
    let output = nixcap(
        &["info", "--json"],
        &corrupt("truncated-after-frame.nixcap"),
    );
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["source"], "scan");
    assert_eq!(report["complete"], false);
    assert!(report["problem"]
        .as_str()
        .unwrap()
        .contains("the capture was not finished"));
    assert_eq!(report["connections"], 2);
    assert_eq!(report["close_reasons"]["open"], 1);
    assert_eq!(report["blocks"], 10);
    assert_eq!(report["frames"], 2);

    // The footer path and the scan path agree on a finished capture.
    let footer: serde_json::Value =
        serde_json::from_slice(&nixcap(&["info", "--json"], &corrupt("valid.nixcap")).stdout)
            .unwrap();
    let scanned: serde_json::Value = serde_json::from_slice(
        &nixcap(&["info", "--json"], &corrupt("trailing-garbage.nixcap")).stdout,
    )
    .unwrap();
    assert_eq!(footer["source"], "footer");
    assert_eq!(scanned["source"], "scan");
    for field in [
        "connections",
        "close_reasons",
        "bytes_client_to_server",
        "bytes_server_to_client",
        "frames",
        "blocks",
        "annotations",
        "uncompressed_bytes",
        "compressed_bytes",
        "duration_nanos",
        "connection_list",
    ] {
        assert_eq!(footer[field], scanned[field], "{field}");
    }
}

#[test]
fn info_refuses_what_is_not_a_capture() {
    let output = nixcap(&["info"], &corrupt("empty.nixcap"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("the file is empty"), "{stderr}");
}
