//! `nixcap show`: the text and JSON Lines views of captures.
//!
//! - Every committed capture of `testdata/captures/` must decode without
//!   opaque bytes, and the binary prints exactly the library's text and
//!   JSON Lines views of it (their snapshots are nixcap-view's); every real
//!   session of `testdata/real-sessions/` is rendered as text and as JSON
//!   Lines into insta snapshots (times left out; JSON only for the small
//!   probe sessions).
//! - Every JSON line of every capture parses back strictly into the record
//!   types of `nixcap_view::json`, which are the documented schema.
//! - Selection (`--conn`, `--op`), `--raw`, opaque stretches, damaged and
//!   unreadable captures, a closed output pipe and `NO_COLOR` are checked on
//!   the binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nixcap_capture::{read_capture, CloseReason, Direction, Header, Writer, WriterOptions};
use nixcap_test_support::real_sessions::{
    capture_bytes_from_session, load_real_session, real_session_names,
};
use nixcap_view::json::{records, Record};
use nixcap_view::text::Options;
use nixcap_view::DecodedCapture;

const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn show(args: &[&str], file: &Path) -> Output {
    Command::new(NIXCAP)
        .arg("show")
        .args(args)
        .arg(file)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Writes the capture of a real session file into `dir` and returns its
/// path.
fn real_session_capture(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name.replace(".nxsess.zst", ".nixcap"));
    std::fs::write(&path, capture_bytes_from_session(&load_real_session(name))).unwrap();
    path
}

fn decoded(path: &Path) -> DecodedCapture {
    DecodedCapture::new(nixcap_capture::read_capture_file(path).unwrap())
}

/// Snapshots the text view, and the JSON view if `json`, of one capture,
/// without times.
///
/// What changes each time a scenario is recorded again is filtered out too:
/// process ids, the wall-clock start, registration times and activity ids.
fn snapshot_views(path: &Path, name: &str, json: bool) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\bpid \d+", "pid [pid]");
    settings.add_filter(r#""pid":\d+"#, r#""pid":"[pid]""#);
    settings.add_filter(r#""startUnixNanos":\d+"#, r#""startUnixNanos":"[start]""#);
    settings.add_filter(r"registrationTime: \d+", "registrationTime: [time]");
    settings.add_filter(
        r#""registrationTime":\d+"#,
        r#""registrationTime":"[time]""#,
    );
    settings.add_filter(r#""(id|parent)":[1-9]\d*"#, r#""$1":"[activity]""#);
    settings.bind(|| {
        let text = show(&["--no-timestamps"], path);
        assert_eq!(text.status.code(), Some(0), "{name}: {}", stderr(&text));
        insta::assert_snapshot!(format!("{name}.text"), stdout(&text));
        if json {
            let json = show(&["--json", "--no-timestamps"], path);
            assert_eq!(json.status.code(), Some(0), "{name}: {}", stderr(&json));
            insta::assert_snapshot!(format!("{name}.jsonl"), stdout(&json));
        }
    });
}

/// Parses every line strictly and checks it re-serializes identically.
fn assert_strict_round_trip(lines: &str, what: &str) -> usize {
    let mut count = 0;
    for (n, line) in lines.lines().enumerate() {
        let record: Record = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{what} line {}: {e}\n{line}", n + 1));
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            line,
            "{what} line {}",
            n + 1
        );
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["v"], 1, "{what} line {}", n + 1);
        assert!(value["type"].is_string(), "{what} line {}", n + 1);
        assert!(value["t"].is_u64(), "{what} line {}", n + 1);
        if record.conn().is_some() {
            assert!(value["conn"].is_u64(), "{what} line {}", n + 1);
        }
        count += 1;
    }
    count
}

fn assert_no_opaque(capture: &DecodedCapture, what: &str) {
    for connection in &capture.connections {
        assert!(
            connection.fully_decoded(),
            "{what} connection {}: {:?}",
            connection.conn,
            connection.undecoded().next()
        );
    }
}

#[test]
fn committed_captures_snapshot_as_text_and_json() {
    let base = testdata().join("captures");
    if !base.is_dir() {
        eprintln!(
            "skipping: {} does not exist yet (`cargo xtask fixtures` records it)",
            base.display()
        );
        return;
    }
    insta::glob!("../../../../testdata/captures", "nix-*/*.nixcap", |path| {
        let rel = path.strip_prefix(&base).unwrap_or(path);
        let name = rel.display().to_string();
        let capture = decoded(path);
        assert!(capture.capture.damage.is_none(), "{name}");
        assert_no_opaque(&capture, &name);
        let json = show(&["--json"], path);
        assert_eq!(json.status.code(), Some(0), "{name}");
        let lines = assert_strict_round_trip(&stdout(&json), &name);
        assert!(lines > 1, "{name}");
        // The views themselves are snapshotted in nixcap-view's tests; the
        // binary prints exactly what the library renders.
        let options = Options {
            timestamps: false,
            ..Options::default()
        };
        let mut text = Vec::new();
        nixcap_view::text::write_text(&mut text, &capture, &options).unwrap();
        let mut lines = Vec::new();
        nixcap_view::json::write_json_lines(&mut lines, &capture, &options).unwrap();
        let shown = show(&["--no-timestamps"], path);
        assert_eq!(shown.status.code(), Some(0), "{name}: {}", stderr(&shown));
        assert!(shown.stdout == text, "{name}: the text view differs");
        let shown = show(&["--json", "--no-timestamps"], path);
        assert_eq!(shown.status.code(), Some(0), "{name}: {}", stderr(&shown));
        assert!(shown.stdout == lines, "{name}: the JSON view differs");
    });
}

#[test]
fn real_sessions_snapshot_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let names = real_session_names();
    assert_eq!(names.len(), 8);
    for name in names {
        let path = real_session_capture(dir.path(), &name);
        let capture = decoded(&path);
        // The probe sessions send an unknown op number on purpose; the
        // daemon closes the connection, and the op word stays undecodable.
        if !name.starts_with("probe-") {
            assert_no_opaque(&capture, &name);
        }
        // The JSON of the large CLI sessions is only parsed back (below);
        // the committed captures and the probe sessions have JSON snapshots.
        let stem = name.trim_end_matches(".nxsess.zst");
        snapshot_views(
            &path,
            &format!("real-session-{stem}"),
            name.starts_with("probe-"),
        );
    }
}

#[test]
fn every_json_record_of_every_capture_parses_back_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths: Vec<PathBuf> = real_session_names()
        .iter()
        .map(|name| real_session_capture(dir.path(), name))
        .collect();
    paths.push(testdata().join("corrupt/valid.nixcap"));
    if let Ok(series) = std::fs::read_dir(testdata().join("captures")) {
        for entry in series.flatten().filter(|e| e.path().is_dir()) {
            for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
                if file.path().extension().is_some_and(|e| e == "nixcap") {
                    paths.push(file.path());
                }
            }
        }
    }
    let mut total = 0;
    for path in &paths {
        let what = path.display().to_string();
        // Through the binary, with and without raw bytes.
        for args in [&["--json"][..], &["--json", "--raw"][..]] {
            let output = show(args, path);
            assert_eq!(output.status.code(), Some(0), "{what}: {}", stderr(&output));
            total += assert_strict_round_trip(&stdout(&output), &what);
        }
        // And through the library: every record survives a round trip.
        let capture = decoded(path);
        for record in records(&capture, &Options::default()) {
            let line = serde_json::to_string(&record).unwrap();
            let back: Record = serde_json::from_str(&line).unwrap();
            assert_eq!(back, record, "{what}");
        }
    }
    assert!(total > 1000, "only {total} records");
}

#[test]
fn the_schema_rejects_unknown_fields_and_other_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = real_session_capture(dir.path(), "probe-nix-2.34.8.nxsess.zst");
    let output = show(&["--json"], &path);
    let line = stdout(&output)
        .lines()
        .find(|l| l.contains(r#""type":"request""#))
        .unwrap()
        .to_owned();
    assert!(serde_json::from_str::<Record>(&line).is_ok());
    let extra = line.replacen('{', r#"{"surprise":1,"#, 1);
    assert!(serde_json::from_str::<Record>(&extra).is_err());
    let future = line.replacen(r#""v":1"#, r#""v":2"#, 1);
    assert_ne!(future, line);
    let err = serde_json::from_str::<Record>(&future)
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 2"), "{err}");
}

#[test]
fn conn_and_op_select_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = real_session_capture(dir.path(), "nix-2.34.8.nxsess.zst");

    let output = show(&["--conn", "3", "--conn", "5"], &path);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let conns: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(conns.into_iter().collect::<Vec<_>>(), ["3", "5"]);
    let opens = text
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("open"))
        .count();
    assert_eq!(opens, 2, "{text}");
    assert_eq!(text.matches(" handshake ").count(), 2, "{text}");

    let output = show(&["--op", "querypathinfo", "--op", "ISVALIDPATH"], &path);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.lines().count() > 2, "{text}");
    for line in text.lines() {
        assert!(
            line.contains(" QueryPathInfo ") || line.contains(" IsValidPath "),
            "{line}"
        );
    }
    assert!(text.contains(" QueryPathInfo "), "{text}");

    // JSON: only records of the selected ops, on the selected connection.
    let output = show(&["--json", "--conn", "3", "--op", "SetOptions"], &path);
    let lines: Vec<Record> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(matches!(lines[0], Record::Capture(_)));
    assert!(lines.len() >= 3);
    for record in &lines[1..] {
        assert_eq!(record.conn(), Some(3));
        assert_eq!(record.seq(), Some(0));
    }

    let output = show(&["--op", "Frobnicate"], &path);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("unknown op 'Frobnicate'"), "{err}");
    assert!(err.contains("AddToStoreNar"), "{err}");
    assert!(output.stdout.is_empty());

    let output = show(&["--conn", "999"], &path);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no connection 999"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn raw_dumps_the_bytes_under_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = real_session_capture(dir.path(), "nix-2.34.8.nxsess.zst");
    let output = show(&["--raw", "--conn", "1", "--no-timestamps"], &path);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    // The client's hello: WORKER_MAGIC_1 and version 1.38, little-endian.
    assert!(
        text.contains("  00000000: 6378 696e 0000 0000 2601 0000 0000 0000  cxin....&......."),
        "{text}"
    );
    assert!(
        text.contains("C>D offset 0, 16 bytes (handshake)"),
        "{text}"
    );
    assert!(text.contains("(request)"), "{text}");
    assert!(text.contains("(reply)"), "{text}");

    let output = show(&["--raw", "--json", "--conn", "1"], &path);
    let first_request = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .find_map(|r| match r {
            Record::Request(r) => Some(r),
            _ => None,
        })
        .unwrap();
    let raw = first_request.raw.unwrap();
    assert_eq!(raw.len() as u64, first_request.len * 2);
    // The op word of SetOptions (19), little-endian.
    assert!(raw.starts_with("1300000000000000"), "{raw}");
}

/// A capture whose client stream has garbage after the first op, and a
/// second, intact connection.
fn capture_with_garbage(dir: &Path) -> (PathBuf, u64) {
    let sessions = load_real_session("nix-2.34.8.nxsess.zst");
    let one = capture_bytes_from_session(&sessions[..1]);
    let original = DecodedCapture::new(read_capture(&one[..]).unwrap());
    let connection = &original.connections[0];
    let first = &connection.exchanges[0];
    let end = |direction| {
        first
            .events
            .iter()
            .map(|&i| &connection.events[i].event)
            .filter(|e| e.direction == direction)
            .map(|e| e.end())
            .max()
            .unwrap()
    };
    let client_end = end(nixcap_wire::session::Direction::ClientToDaemon);
    let daemon_end = end(nixcap_wire::session::Direction::DaemonToClient);
    let raw = &original.capture.connections[0];
    let client = raw.stream(Direction::ClientToServer);
    let daemon = raw.stream(Direction::ServerToClient);

    let header = Header {
        tool_version: "test".into(),
        start_unix_nanos: 0,
        metadata: BTreeMap::new(),
    };
    let mut writer = Writer::new(Vec::new(), header, WriterOptions::default()).unwrap();
    writer
        .open_connection(1, 1000, None, BTreeMap::new())
        .unwrap();
    let client_end_usize = usize::try_from(client_end).unwrap();
    let daemon_end_usize = usize::try_from(daemon_end).unwrap();
    writer
        .data(
            1,
            Direction::ClientToServer,
            2000,
            &client[..client_end_usize],
        )
        .unwrap();
    writer
        .data(
            1,
            Direction::ServerToClient,
            3000,
            &daemon[..daemon_end_usize],
        )
        .unwrap();
    let mut garbage = 0xdead_beef_u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"this is not a request at all");
    writer
        .data(1, Direction::ClientToServer, 4000, &garbage)
        .unwrap();
    writer
        .close_connection(1, 5000, CloseReason::CleanEof)
        .unwrap();
    // A second connection, whole.
    writer
        .open_connection(2, 6000, None, BTreeMap::new())
        .unwrap();
    let mut t = 6000;
    for (direction, bytes) in &sessions[1] {
        t += 1000;
        writer.data(2, *direction, t, bytes).unwrap();
    }
    writer
        .close_connection(2, t + 1000, CloseReason::CleanEof)
        .unwrap();
    let (bytes, _) = writer.finish(t + 2000).unwrap();
    let path = dir.join("garbage.nixcap");
    std::fs::write(&path, bytes).unwrap();
    (path, client_end)
}

#[test]
fn opaque_stretches_are_shown_with_reason_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (path, offset) = capture_with_garbage(dir.path());
    let output = show(&["--no-timestamps"], &path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let conn1: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("1 "))
        .collect();
    assert!(conn1[0].contains("open"), "{text}");
    assert!(conn1[1].contains("handshake  protocol 1.38"), "{text}");
    assert!(conn1[2].contains("#0 SetOptions → ok"), "{text}");
    assert!(
        conn1[3].contains(&format!(
            "!! C>D undecodable from stream offset {offset}, 36 bytes: "
        )),
        "{text}"
    );
    assert!(conn1[4].contains("close"), "{text}");
    // The second connection is shown in full after it.
    let conn2 = text
        .lines()
        .filter(|l| l.trim_start().starts_with("2 "))
        .count();
    assert!(conn2 > 3, "{text}");
    assert!(text.lines().last().unwrap().contains("close"), "{text}");

    let output = show(&["--json"], &path);
    let opaque: Vec<_> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .filter_map(|r| match r {
            Record::Opaque(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(opaque.len(), 1);
    assert_eq!(opaque[0].conn, 1);
    assert_eq!(opaque[0].offset, offset);
    assert_eq!(opaque[0].len, 36);
    assert!(!opaque[0].reason.is_empty());

    // With --raw the garbage is dumped at its stream offset.
    let output = show(&["--raw", "--conn", "1"], &path);
    let text = stdout(&output);
    assert!(
        text.contains(&format!("{offset:08x}: efbe adde 0000 0000")),
        "{text}"
    );
}

/// A capture of `connections` written in frames of at most 16 KiB, one
/// connection after the other.
fn small_frames_capture(connections: &[Vec<(Direction, Vec<u8>)>]) -> Vec<u8> {
    let header = Header {
        tool_version: "test".into(),
        start_unix_nanos: 0,
        metadata: BTreeMap::new(),
    };
    let options = WriterOptions {
        frame_max_bytes: 16 << 10,
        ..WriterOptions::default()
    };
    let mut writer = Writer::new(Vec::new(), header, options).unwrap();
    let mut t = 0;
    for (index, chunks) in connections.iter().enumerate() {
        let conn = index as u64 + 1;
        t += 1000;
        writer
            .open_connection(conn, t, None, BTreeMap::new())
            .unwrap();
        for (direction, bytes) in chunks {
            t += 1000;
            writer.data(conn, *direction, t, bytes).unwrap();
        }
        t += 1000;
        writer
            .close_connection(conn, t, CloseReason::CleanEof)
            .unwrap();
    }
    writer.finish(t + 1000).unwrap().0
}

#[test]
fn damaged_captures_show_what_is_readable_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    // The session in small frames, cut in the middle of the file.
    let whole = small_frames_capture(&load_real_session("nix-2.26.3.nxsess.zst"));
    let cut = dir.path().join("cut.nixcap");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();

    let output = show(&[], &cut);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.lines().count() > 50, "{text}");
    assert!(text.contains(" SetOptions → ok"), "{text}");
    let err = stderr(&output);
    assert!(
        err.contains("the capture is damaged: the file is truncated"),
        "{err}"
    );
    assert!(err.contains("where: file offset "), "{err}");
    assert!(err.contains(", frame "), "{err}");

    let output = show(&["--json"], &cut);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let last: Record = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(matches!(last, Record::Damage(_)), "{last:?}");

    // The committed damaged files: exit 1, or 2 for files that are not
    // captures at all; never a panic.
    let unreadable = [
        "empty.nixcap",
        "wrong-magic.nixcap",
        "future-major.nixcap",
        "truncated-in-magic.nixcap",
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(testdata().join("corrupt")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".nixcap") {
            continue;
        }
        let output = show(&[], &path);
        let err = stderr(&output);
        let expected = if name == "valid.nixcap" {
            0
        } else if unreadable.contains(&name.as_str()) {
            2
        } else {
            1
        };
        assert_eq!(output.status.code(), Some(expected), "{name}: {err}");
        match expected {
            0 => assert!(err.is_empty(), "{name}: {err}"),
            1 => assert!(err.contains("the capture is damaged: "), "{name}: {err}"),
            _ => assert!(err.contains("cannot read"), "{name}: {err}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 21);
    let output = show(&[], &testdata().join("corrupt/future-major.nixcap"));
    assert!(stderr(&output).contains("newer than this nixcap supports"));
    let output = show(&[], &testdata().join("corrupt/wrong-magic.nixcap"));
    assert!(stderr(&output).contains("not a nixcap capture"));
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = real_session_capture(dir.path(), "nix-2.8.0.nxsess.zst");
    for args in [&["-V", "--raw"][..], &["--json", "--raw"][..]] {
        let mut child = Command::new(NIXCAP)
            .arg("show")
            .args(args)
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        // Closing our end makes the next write fail with EPIPE.
        drop(reader);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(output.stderr.is_empty(), "{}", stderr(&output));
    }
}

#[test]
fn colour_only_when_asked_and_never_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let path = real_session_capture(dir.path(), "probe-nix-2.34.8.nxsess.zst");
    let escape = "\x1b[";
    // Piped output: no colour by default.
    let output = show(&[], &path);
    assert!(!stdout(&output).contains(escape));
    // Forced.
    let output = show(&["--color", "always"], &path);
    assert!(stdout(&output).contains(escape));
    // NO_COLOR wins over --color always.
    let output = Command::new(NIXCAP)
        .args(["show", "--color", "always"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(!stdout(&output).contains(escape));
    // JSON is never coloured.
    let output = show(&["--json", "--color", "always"], &path);
    assert!(!stdout(&output).contains(escape));
}

#[test]
fn verbose_shows_fields_logs_and_errors_under_each_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = real_session_capture(dir.path(), "nix-2.34.8.nxsess.zst");
    let output = show(&["-V", "--no-timestamps"], &path);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    // SetOptions' settings, every field.
    assert!(
        text.contains("        request:\n          settings:\n"),
        "{text}"
    );
    assert!(text.contains("            keepFailed: false"), "{text}");
    // Activities and build log lines of the builds.
    assert!(text.contains("D>C start activity "), "{text}");
    assert!(text.contains("D>C stop activity "), "{text}");
    assert!(text.contains("resBuildLogLine"), "{text}");
    // The failing build's error, message first.
    assert!(text.contains("        error:\n"), "{text}");
    assert!(text.contains("        reply:\n"), "{text}");
    assert!(!text.contains('\x1b'), "escape sequences must be cleaned");
}
