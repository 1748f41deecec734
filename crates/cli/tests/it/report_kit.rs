//! The bug-report kit: `nixcap redact` on a real client run with a secret in
//! its settings, and `nixcap export` read back by a real tshark.
//!
//! The real-Nix test skips (printing why) when Nix 2.8 is not installed, and
//! the tshark test when tshark is missing; both fail instead when
//! `NIXCAP_REQUIRE_NIX=1` is set (CI installs tshark alongside Nix).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};

use nixcap_capture::{read_capture_file, Capture, Direction};
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr};
use nixcap_replay::{Options as ReplayOptions, Server};
use nixcap_test_support::real_sessions::{capture_bytes_from_session, load_real_session};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;
use nixcap_wire::ops::Request;

const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

const SECRET: &str = "s3cret";
const SECRET_URL: &str = "https://alice:s3cret@cache.example.org";
const SECRET_CONFIG: &str = "experimental-features = nix-command\nsubstituters =\n\
                             extra-substituters = https://alice:s3cret@cache.example.org";

fn nixcap(args: &[&std::ffi::OsStr]) -> Output {
    let output = Command::new(NIXCAP).args(args).output().unwrap();
    eprintln!(
        "nixcap {:?}:\n{}{}",
        args,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every place a capture can hold text: both streams of every connection,
/// the header and connection metadata, the annotations.
fn capture_mentions(capture: &Capture, needle: &[u8]) -> Vec<String> {
    let mut places = Vec::new();
    for connection in &capture.connections {
        for direction in Direction::BOTH {
            if contains(&connection.stream(direction), needle) {
                places.push(format!("connection {} {direction}", connection.conn));
            }
        }
        for (key, value) in &connection.opened.metadata {
            if contains(value.as_bytes(), needle) {
                places.push(format!("connection {} metadata {key}", connection.conn));
            }
        }
    }
    for (key, value) in &capture.header.metadata {
        if contains(value.as_bytes(), needle) || contains(key.as_bytes(), needle) {
            places.push(format!("header metadata {key}"));
        }
    }
    for (_, annotation) in &capture.annotations {
        if contains(annotation.text.as_bytes(), needle) {
            places.push("annotation".to_owned());
        }
    }
    places
}

fn record_with_secret(peer: &Peer, dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let version = peer.version();
    let daemon = Daemon::start(peer, DaemonOptions::new());
    let capture_path = dir.join(format!("raw-{}.nixcap", version.series()));
    let file = File::create(&capture_path).unwrap();
    let recorder = BackgroundRecorder::start(
        Config::new(None, DaemonAddr::from_path(daemon.socket_path())),
        file,
    )
    .unwrap();
    let via = daemon.uri_via(recorder.socket_path());
    let work = dir.join(format!("work-{}", version.series()));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("hello.txt"), "hello from the report kit\n").unwrap();
    let path = peer
        .command("nix-store")
        .args(["--add", "hello.txt"])
        .remote(&via)
        .current_dir(&work)
        .env("NIX_CONFIG", SECRET_CONFIG)
        .stdout_ok();
    assert!(path.trim().starts_with("/nix/store/"), "{path}");
    let hash = peer
        .command("nix-store")
        .args(["-q", "--hash", path.trim()])
        .remote(&via)
        .current_dir(&work)
        .env("NIX_CONFIG", SECRET_CONFIG)
        .stdout_ok();
    let report = recorder.finish().unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    (capture_path, vec![path, hash])
}

fn redact_hides_the_secret(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (raw_path, outputs) = record_with_secret(&peer, dir.path());

    // The secret is in the raw capture, in the SetOptions of the client.
    let raw = read_capture_file(&raw_path).unwrap();
    assert!(raw.is_intact());
    let places = capture_mentions(&raw, SECRET.as_bytes());
    assert!(
        places.iter().any(|p| p.ends_with("client-to-server")),
        "the raw capture should hold the secret: {places:?}"
    );
    let raw_decoded = DecodedCapture::new(raw);
    assert!(raw_decoded.connections.iter().all(|c| c.fully_decoded()));

    let out_path = dir.path().join("redacted.nixcap");
    let output = nixcap(&[
        "redact".as_ref(),
        raw_path.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("setting values"), "{stdout}");
    // Nix folds `extra-substituters` into `substituters` before sending it.
    assert!(stdout.contains("substituters ("), "{stdout}");
    assert!(stdout.contains("header metadata values"), "{stdout}");

    // Nowhere in the redacted file: not in the streams or the metadata, and
    // not in the file's bytes either.
    let redacted = read_capture_file(&out_path).unwrap();
    assert!(redacted.is_intact(), "{:?}", redacted.damage);
    assert_eq!(
        capture_mentions(&redacted, SECRET.as_bytes()),
        Vec::<String>::new()
    );
    assert!(!contains(
        &std::fs::read(&out_path).unwrap(),
        SECRET.as_bytes()
    ));
    let hostname = raw_decoded
        .capture
        .header
        .metadata
        .get("hostname")
        .cloned()
        .unwrap_or_default();
    assert!(!hostname.is_empty());
    assert!(redacted.header.metadata["hostname"].starts_with("redacted:"));

    // It still decodes fully, op for op.
    let decoded = DecodedCapture::new(redacted);
    assert_eq!(decoded.connections.len(), raw_decoded.connections.len());
    for (a, b) in raw_decoded.connections.iter().zip(&decoded.connections) {
        assert!(b.fully_decoded(), "connection {}", b.conn);
        let ops_a: Vec<String> = a.exchanges.iter().map(|e| e.op_name()).collect();
        let ops_b: Vec<String> = b.exchanges.iter().map(|e| e.op_name()).collect();
        assert_eq!(ops_a, ops_b);
    }

    // And `nixcap verify` accepts it.
    let output = nixcap(&["verify".as_ref(), out_path.as_os_str()]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(": OK"));

    // And it still replays: the query the client made gets its recorded
    // answer from the redacted capture. The client is configured with the
    // redacted value, as someone replaying a shared capture would do; the
    // replayer leaves SetOptions' settings out of its matching, so this
    // works whether or not the client passes the value on unchanged (2.34
    // does not pass on a substituter that is not a URL).
    let placeholder = decoded
        .connections
        .iter()
        .flat_map(|c| c.exchanges.iter())
        .find_map(|e| match &e.request {
            Some(Request::SetOptions { settings }) => settings
                .overrides
                .iter()
                .map(|o| o.1.to_string_lossy().into_owned())
                .find(|value| value.starts_with("redacted:")),
            _ => None,
        })
        .unwrap();
    assert!(placeholder.starts_with("redacted:"), "{placeholder}");
    // Nix 2.8 folds the URL into `substituters`, 2.34 sends it as
    // `extra-substituters`; either way the URL is the whole value.
    let replay_config = SECRET_CONFIG.replace(SECRET_URL, &placeholder);
    let server = Server::start_file(&out_path, ReplayOptions::default()).unwrap();
    let replayed = peer
        .command("nix-store")
        .args(["-q", "--hash", outputs[0].trim()])
        .remote(server.store_uri())
        .bind_dir(server.socket_path().parent().unwrap())
        .env("NIX_CONFIG", &replay_config)
        .output()
        .unwrap();
    let report = server.finish();
    assert!(
        replayed.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&replayed.stderr),
        report.render()
    );
    assert_eq!(
        String::from_utf8_lossy(&replayed.stdout).trim(),
        outputs[1].trim()
    );
    assert!(!report.diverged(), "{}", report.render());
}

#[test]
fn redact_hides_a_settings_secret_of_a_real_nix_2_8_client() {
    redact_hides_the_secret(NixVersion::V2_8);
}

#[test]
fn redact_hides_a_settings_secret_of_a_real_nix_2_34_client() {
    redact_hides_the_secret(NixVersion::V2_34);
}

/// tshark, or `None` (after printing why) when it is missing and
/// `NIXCAP_REQUIRE_NIX` is not set.
fn tshark_or_skip() -> Option<&'static str> {
    match Command::new("tshark").arg("--version").output() {
        Ok(output) if output.status.success() => Some("tshark"),
        result => {
            let why = format!("tshark is not usable: {result:?}");
            if std::env::var_os("NIXCAP_REQUIRE_NIX").is_some_and(|v| v == "1") {
                panic!("{why} (NIXCAP_REQUIRE_NIX=1)");
            }
            eprintln!("skipping: {why}");
            None
        }
    }
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Parses `tshark -q -z follow,tcp,raw,N` output (several streams): the
/// client port and the bytes of each direction, per stream.
fn parse_follow(text: &str) -> Vec<(u16, [Vec<u8>; 2])> {
    let mut streams = Vec::new();
    let mut current: Option<(u16, [Vec<u8>; 2])> = None;
    for line in text.lines() {
        if line.starts_with("Follow: ") {
            if let Some(done) = current.take() {
                streams.push(done);
            }
            current = Some((0, [Vec::new(), Vec::new()]));
        } else if let Some(rest) = line.strip_prefix("Node 0: ") {
            let port = rest.rsplit(':').next().unwrap().parse().unwrap();
            if let Some(c) = current.as_mut() {
                c.0 = port;
            }
        } else if line.starts_with("Filter:")
            || line.starts_with("Node 1:")
            || line.starts_with("====")
            || line.is_empty()
        {
            continue;
        } else if let Some(c) = current.as_mut() {
            // Lines of the second node (the server) are indented by a tab.
            match line.strip_prefix('\t') {
                Some(hex) => c.1[1].extend(hex_decode(hex.trim())),
                None => c.1[0].extend(hex_decode(line.trim())),
            }
        }
    }
    streams.extend(current);
    streams
}

#[test]
fn export_reads_back_in_tshark_with_exact_streams_and_comments() {
    let Some(tshark) = tshark_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A real CLI session: 76 connections, including a 1 MiB upload that
    // is split into many packets.
    let capture_bytes = capture_bytes_from_session(&load_real_session("nix-2.8.0.nxsess.zst"));
    let capture_path = dir.path().join("in.nixcap");
    std::fs::write(&capture_path, &capture_bytes).unwrap();
    let pcap = dir.path().join("out.pcapng");
    let output = nixcap(&[
        "export".as_ref(),
        capture_path.as_os_str(),
        "-o".as_ref(),
        pcap.as_os_str(),
    ]);
    assert!(output.status.success());

    let capture = read_capture_file(&capture_path).unwrap();
    let decoded = DecodedCapture::new(capture);
    let n = decoded.connections.len();

    // Follow every stream in one tshark run.
    let mut args: Vec<String> = vec!["-r".into(), pcap.display().to_string(), "-q".into()];
    for i in 0..n {
        args.push("-z".into());
        args.push(format!("follow,tcp,raw,{i}"));
    }
    let follow = Command::new(tshark).args(&args).output().unwrap();
    assert!(
        follow.status.success(),
        "{}",
        String::from_utf8_lossy(&follow.stderr)
    );
    let streams = parse_follow(&String::from_utf8_lossy(&follow.stdout));
    assert_eq!(streams.len(), n);
    let by_port: BTreeMap<u16, &[Vec<u8>; 2]> = streams.iter().map(|(p, s)| (*p, s)).collect();
    assert_eq!(by_port.len(), n, "one client port per connection");
    for (index, connection) in decoded.capture.connections.iter().enumerate() {
        let port = 40000 + index as u16;
        let followed = by_port[&port];
        assert_eq!(
            followed[0],
            connection.stream(Direction::ClientToServer),
            "connection {} client bytes",
            connection.conn
        );
        assert_eq!(
            followed[1],
            connection.stream(Direction::ServerToClient),
            "connection {} daemon bytes",
            connection.conn
        );
    }

    // Every request's op name is a comment (tshark 3.6 and later call the
    // field frame.comment), and every packet's checksums are right.
    let fields = Command::new(tshark)
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "frame.comment",
            "-e",
            "tcp.checksum.status",
            "-e",
            "ip.checksum.status",
            "-E",
            "separator=|",
        ])
        .output()
        .unwrap();
    assert!(
        fields.status.success(),
        "{}",
        String::from_utf8_lossy(&fields.stderr)
    );
    let text = String::from_utf8_lossy(&fields.stdout);
    let mut comments = String::new();
    for (packet, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 3, "{line}");
        comments.push_str(parts[0]);
        comments.push('\n');
        // Status 1 is "good" in Wireshark's checksum status enum (0 bad,
        // 2 unverified).
        assert_eq!(parts[1], "1", "TCP checksum of packet {packet}: {line}");
        assert_eq!(parts[2], "1", "IP checksum of packet {packet}: {line}");
    }
    let exchanges: usize = decoded.connections.iter().map(|c| c.exchanges.len()).sum();
    assert_eq!(comments.matches(" (op ").count(), exchanges);
    assert_eq!(
        comments.matches("SetOptions (op 0)").count(),
        decoded
            .connections
            .iter()
            .filter(|c| !c.exchanges.is_empty())
            .count()
    );
    assert_eq!(comments.matches("nixcap connection ").count(), n);
    assert!(comments.contains("AddToStore"));
}
