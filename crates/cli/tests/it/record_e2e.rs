//! Real Nix clients and daemons through the recorder, end to end.
//!
//! Every scenario of `nixcap_test_support::scenarios` runs twice, each time against a fresh
//! daemon so that the store starts out the same: once directly, once through a recorder. The
//! clients must see the same thing both times (standard output, standard error after
//! placeholders, exit status, files written), and the capture must hold every connection,
//! cleanly closed, with streams that match their close records and the recorder's counters.
//!
//! The matrix covers client and daemon of the same version (2.8, 2.26, 2.34) and the cross
//! pairs 2.8 client with 2.34 daemon and 2.34 client with 2.8 daemon. Same-version pairs use the
//! recorder library; cross pairs run the `nixcap record --listen` binary and stop it with SIGINT.
//! Each pair also adds a 64 MiB file, which is not part of the committed captures. Chains are
//! covered too: a recorder in front of a daemon that forwards to another daemon, and a recorder
//! in front of another recorder, whose two captures must agree byte for byte.
//!
//! These tests skip (printing why) when a Nix version is missing, and fail instead when
//! `NIXCAP_REQUIRE_NIX=1` is set. Timings and a result table go to stderr (`--nocapture`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_capture::{
    read_capture, read_capture_file, Capture, CloseReason, Direction, StoreObjectKind,
};
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr, Options};
use nixcap_test_support::scenarios::{
    pseudo_random_bytes, sha256_hex, Scenario, ScenarioRun, Step, StoreAccess, StoreRole, Stores,
    SCENARIOS, STORE,
};
use nixcap_test_support::{
    assert_host_nix_dir_empty, peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer,
};
use nixcap_wire::session::{Direction as WireDirection, EventKind, PayloadItem, SessionDecoder};

/// The first word a client sends: `WORKER_MAGIC_1`, "nixc".
const WORKER_MAGIC_1: u64 = 0x6e69_7863;
/// The first word a daemon sends: `WORKER_MAGIC_2`, "dxio".
const WORKER_MAGIC_2: u64 = 0x6478_696f;
/// The size of the large file each pair adds (not part of the committed captures).
const LARGE_ADD_LEN: usize = 64 << 20;
/// The seed of the large file.
const LARGE_ADD_SEED: u64 = 0x6e69_7863_6170_0040;
/// How long connections may take to finish once a recorder is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Which recorder to put in front of a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `BackgroundRecorder` from the library, writing to memory.
    Library,
    /// The `nixcap record --listen` binary, writing to a file, stopped with SIGINT.
    Cli,
}

/// A running recorder of either kind.
enum Recorder {
    Library(BackgroundRecorder<Vec<u8>>),
    Cli(CliRecorder),
}

/// What a finished recorder left: the capture, and for the library, the forwarded byte counts
/// (client to daemon, daemon to client).
struct Recorded {
    capture: Capture,
    forwarded: Option<(u64, u64)>,
}

impl Recorder {
    /// Starts a recorder forwarding to the daemon socket `upstream`.
    fn start(via: Via, upstream: &Path) -> Recorder {
        match via {
            Via::Library => {
                let mut config = Config::new(None, DaemonAddr::from_path(upstream));
                config.options = Options {
                    shutdown_grace: SHUTDOWN_GRACE,
                    ..Options::default()
                };
                Recorder::Library(BackgroundRecorder::start(config, Vec::new()).unwrap())
            }
            Via::Cli => Recorder::Cli(CliRecorder::start(upstream)),
        }
    }

    fn socket(&self) -> &Path {
        match self {
            Recorder::Library(recorder) => recorder.socket_path(),
            Recorder::Cli(recorder) => &recorder.socket,
        }
    }

    fn finish(self) -> Recorded {
        match self {
            Recorder::Library(recorder) => {
                let report = recorder.finish().unwrap();
                assert!(
                    report.capture_complete(),
                    "capture incomplete: {:?}",
                    report.capture_problems
                );
                let forwarded = (
                    report.stats.bytes_client_to_daemon,
                    report.stats.bytes_daemon_to_client,
                );
                let bytes = report
                    .out
                    .expect("a finished capture gives its output back");
                Recorded {
                    capture: read_capture(bytes.as_slice()).unwrap(),
                    forwarded: Some(forwarded),
                }
            }
            Recorder::Cli(recorder) => Recorded {
                capture: recorder.finish(),
                forwarded: None,
            },
        }
    }
}

/// `nixcap record -w FILE --listen SOCK --upstream unix://…`, run as a child process.
struct CliRecorder {
    child: Option<Child>,
    socket: PathBuf,
    capture_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl CliRecorder {
    fn start(upstream: &Path) -> CliRecorder {
        // Socket paths hold at most 107 bytes: keep the directory short, as the harness does.
        let mut parent = std::env::temp_dir();
        if parent.as_os_str().len() > 60 {
            parent = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix("nixcap-rec-")
            .tempdir_in(parent)
            .unwrap();
        let socket = dir.path().join("sock");
        let capture_path = dir.path().join("capture.nixcap");
        let mut child = Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .arg("record")
            .arg("-w")
            .arg(&capture_path)
            .arg("--listen")
            .arg(&socket)
            .arg("--upstream")
            .arg(format!("unix://{}", upstream.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if !wait_for_socket_file(&socket, Duration::from_secs(10)) {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "nixcap record did not listen on {}: {}\n{}",
                socket.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        CliRecorder {
            child: Some(child),
            socket,
            capture_path,
            _dir: dir,
        }
    }

    /// Sends SIGINT to the recorder, waits for it, checks that it succeeded and reads the
    /// capture it wrote.
    fn finish(mut self) -> Capture {
        let child = self.child.take().expect("finish runs once");
        interrupt(child.id());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "nixcap record exited with {}:\n{stderr}",
            output.status
        );
        read_capture_file(&self.capture_path).unwrap()
    }
}

impl Drop for CliRecorder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            interrupt(child.id());
            let _ = child.wait();
        }
    }
}

/// Waits until the socket file `socket` exists.
///
/// The recorder binds its socket under a private name and links it to the final path only
/// once it listens, with its final mode, so the final path never shows up in
/// `/proc/net/unix` (which `wait_until_listening` reads) but exists only once it can be used.
fn wait_for_socket_file(socket: &Path, timeout: Duration) -> bool {
    use std::os::unix::fs::FileTypeExt;

    let deadline = Instant::now() + timeout;
    loop {
        if fs::symlink_metadata(socket).is_ok_and(|meta| meta.file_type().is_socket()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends SIGINT to `pid`, a process this test started.
fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT {pid} failed");
}

/// The daemons one scenario run needs: a fresh main daemon (possibly a proxy in front of
/// another fresh daemon) and, for `copy`, a fresh source daemon.
struct Daemons {
    main: Daemon,
    /// The daemon a chained main daemon forwards to; dropped after `main`.
    _behind: Option<Daemon>,
    source: Option<Daemon>,
}

impl Daemons {
    fn start(server: &Peer, scenario: &Scenario, chained: bool) -> Daemons {
        let (main, behind) = if chained {
            let behind = Daemon::start(server, DaemonOptions::new());
            let main = Daemon::start(server, DaemonOptions::new().upstream(&behind));
            (main, Some(behind))
        } else {
            (Daemon::start(server, DaemonOptions::new()), None)
        };
        let source = scenario
            .needs_source
            .then(|| Daemon::start(server, DaemonOptions::new()));
        Daemons {
            main,
            _behind: behind,
            source,
        }
    }

    fn stores(&self, main_socket: Option<&Path>) -> Stores {
        let main = match main_socket {
            Some(socket) => StoreAccess::via(&self.main, socket),
            None => StoreAccess::direct(&self.main),
        };
        match &self.source {
            Some(source) => Stores::with_source(main, StoreAccess::direct(source)),
            None => Stores::main(main),
        }
    }
}

/// Runs `scenario` with `client` against a fresh daemon of `server`, directly.
fn run_direct(client: &Peer, server: &Peer, scenario: &Scenario, chained: bool) -> ScenarioRun {
    let daemons = Daemons::start(server, scenario, chained);
    let work = tempfile::tempdir().unwrap();
    scenario
        .run(client, work.path(), &daemons.stores(None))
        .unwrap_or_else(|err| panic!("{err}"))
}

/// Runs `scenario` with `client` against a fresh daemon of `server` through the recorders
/// `chain` (the first one is the client's, the last one talks to the daemon). Returns the
/// client's results and each recorder's capture, in the same order.
fn run_recorded(
    client: &Peer,
    server: &Peer,
    scenario: &Scenario,
    chained: bool,
    chain: &[Via],
) -> (ScenarioRun, Vec<Recorded>) {
    let daemons = Daemons::start(server, scenario, chained);
    // Start from the daemon's end of the chain.
    let mut recorders: Vec<Recorder> = Vec::new();
    for via in chain.iter().rev() {
        let upstream = match recorders.last() {
            Some(next) => next.socket().to_path_buf(),
            None => daemons.main.socket_path().to_path_buf(),
        };
        recorders.push(Recorder::start(*via, &upstream));
    }
    let work = tempfile::tempdir().unwrap();
    let client_socket = recorders.last().unwrap().socket().to_path_buf();
    let run = scenario.run(client, work.path(), &daemons.stores(Some(&client_socket)));
    // Stop the client's recorder first, so each one sees its client go before it stops.
    let recorded: Vec<Recorded> = recorders.into_iter().rev().map(Recorder::finish).collect();
    (run.unwrap_or_else(|err| panic!("{err}")), recorded)
}

/// Checks a capture recorded in front of a real daemon and returns its problems: damage,
/// connections that did not close cleanly, streams that do not match their close records or
/// the recorder's counters or that do not start with the protocol's magic numbers, and
/// anything the session decoder could not decode.
fn check_capture(recorded: &Recorded, min_connections: usize) -> Checked {
    let capture = &recorded.capture;
    let mut problems = Vec::new();
    if let Some(damage) = &capture.damage {
        problems.push(format!("capture damaged: {damage}"));
    }
    let Some(footer) = &capture.footer else {
        problems.push("capture has no footer".to_owned());
        return Checked { problems, ops: 0 };
    };
    if capture.connections.len() < min_connections {
        problems.push(format!(
            "{} connections recorded, expected at least {min_connections}",
            capture.connections.len()
        ));
    }
    let mut totals = [0u64; 2];
    for connection in &capture.connections {
        let conn = connection.conn;
        let Some(closed) = &connection.closed else {
            problems.push(format!("connection {conn} was not closed"));
            continue;
        };
        if closed.reason != CloseReason::CleanEof {
            problems.push(format!("connection {conn} closed with {:?}", closed.reason));
        }
        for (index, direction) in Direction::BOTH.into_iter().enumerate() {
            let stream = connection.stream(direction);
            let digest = closed.digest(direction);
            if digest.bytes != stream.len() as u64 || sha256_hex(&stream) != hex(&digest.sha256) {
                problems.push(format!(
                    "connection {conn} {direction:?}: the close record says {} bytes with \
                     SHA-256 {}, the data blocks hold {} bytes with SHA-256 {}",
                    digest.bytes,
                    hex(&digest.sha256),
                    stream.len(),
                    sha256_hex(&stream)
                ));
            }
            totals[index] += stream.len() as u64;
            let magic = match direction {
                Direction::ClientToServer => WORKER_MAGIC_1,
                _ => WORKER_MAGIC_2,
            };
            if stream.get(..8) != Some(&magic.to_le_bytes()[..]) {
                problems.push(format!(
                    "connection {conn} {direction:?} does not start with {magic:#x}"
                ));
            }
        }
        if connection.opened.peer.map(|peer| peer.uid) != Some(0) {
            problems.push(format!(
                "connection {conn}: peer {:?}, expected uid 0",
                connection.opened.peer
            ));
        }
    }
    if (footer.bytes_client_to_server, footer.bytes_server_to_client) != (totals[0], totals[1]) {
        problems.push(format!(
            "footer totals {:?} differ from the streams' {totals:?}",
            (footer.bytes_client_to_server, footer.bytes_server_to_client)
        ));
    }
    if let Some(forwarded) = recorded.forwarded {
        if forwarded != (totals[0], totals[1]) {
            problems.push(format!(
                "the recorder forwarded {forwarded:?} bytes but recorded {totals:?}"
            ));
        }
    }
    let (decoding, ops) = decode_problems(capture);
    problems.extend(decoding);
    Checked {
        problems,
        ops: ops.iter().map(Vec::len).sum(),
    }
}

/// What checking a capture found.
struct Checked {
    problems: Vec<String>,
    /// How many requests the decoder found, over all connections.
    ops: usize,
}

/// The problems found by decoding every connection of a capture with the session decoder:
/// bytes it could not decode (opaque or truncated events), payloads it could not read, and
/// events that do not tile the streams. Returns them with the ops of each connection.
fn decode_problems(capture: &Capture) -> (Vec<String>, Vec<Vec<&'static str>>) {
    let mut problems = Vec::new();
    let mut ops = Vec::new();
    for connection in &capture.connections {
        let conn = connection.conn;
        let mut decoder = SessionDecoder::new();
        let mut events = Vec::new();
        for chunk in &connection.chunks {
            decoder.feed(wire_direction(chunk.direction), &chunk.bytes);
            events.extend(std::iter::from_fn(|| decoder.next_event()));
        }
        decoder.finish();
        events.extend(std::iter::from_fn(|| decoder.next_event()));

        let mut ends = [0u64; 2];
        let mut names = Vec::new();
        for event in &events {
            let index = match event.direction {
                WireDirection::ClientToDaemon => 0,
                WireDirection::DaemonToClient => 1,
            };
            if event.offset != ends[index] {
                problems.push(format!(
                    "connection {conn}: a {:?} event starts at {} instead of {}",
                    event.direction, event.offset, ends[index]
                ));
            }
            ends[index] = event.end();
            let payload = match &event.kind {
                EventKind::Opaque { reason, .. } | EventKind::Truncated { reason, .. } => {
                    problems.push(format!(
                        "connection {conn}: {} undecoded bytes {:?} at {}: {reason}",
                        event.len, event.direction, event.offset
                    ));
                    &[][..]
                }
                EventKind::Request { request, .. } => {
                    names.push(request.op().name());
                    &[][..]
                }
                EventKind::FramedData { payload, .. }
                | EventKind::FramedEnd { payload, .. }
                | EventKind::ReadAnswer { payload, .. } => payload.as_slice(),
                _ => &[][..],
            };
            for item in payload {
                if let PayloadItem::Undecodable { reason } = item {
                    problems.push(format!(
                        "connection {conn}: undecodable payload at {}: {reason}",
                        event.offset
                    ));
                }
            }
        }
        let lengths = [
            connection.byte_count(Direction::ClientToServer),
            connection.byte_count(Direction::ServerToClient),
        ];
        if ends != lengths {
            problems.push(format!(
                "connection {conn}: events cover {ends:?} bytes of streams of {lengths:?}"
            ));
        }
        ops.push(names);
    }
    (problems, ops)
}

fn wire_direction(direction: Direction) -> WireDirection {
    match direction {
        Direction::ClientToServer => WireDirection::ClientToDaemon,
        _ => WireDirection::DaemonToClient,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The smallest number of connections a scenario opens to the main store: one per client
/// invocation against it.
fn main_store_steps(scenario: &Scenario, client: &Peer) -> usize {
    scenario
        .steps(client)
        .iter()
        .filter(|step| step.store == StoreRole::Main || step.args.contains(&STORE))
        .filter(|step| !reads_only_the_store_directory(step))
        .count()
}

/// Whether a step may read the store's directory only, without connecting: build logs are
/// read from disk (`nix log`, `nix-store --read-log`).
fn reads_only_the_store_directory(step: &Step) -> bool {
    (step.program == "nix" && step.args.first() == Some(&"log"))
        || (step.program == "nix-store" && step.args.contains(&"--read-log"))
}

/// Checks that two captures of the same traffic (recorders in a chain) hold the same
/// connections with the same streams, matched by content because the two recorders may
/// number concurrent connections differently. When the client-side capture `a` holds store
/// objects, `b` (further upstream) also has the connection `a`'s recorder fetched them over:
/// one more connection, of QueryPathInfo and NarFromPath only.
fn same_streams(a: &Capture, b: &Capture) -> Vec<String> {
    let digests = |capture: &Capture| -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = capture
            .connections
            .iter()
            .map(|connection| {
                (
                    sha256_hex(&connection.stream(Direction::ClientToServer)),
                    sha256_hex(&connection.stream(Direction::ServerToClient)),
                )
            })
            .collect();
        list.sort();
        list
    };
    let (list_a, mut list_b) = (digests(a), digests(b));
    let fetched = a
        .store_objects
        .iter()
        .any(|o| o.object.kind == StoreObjectKind::Nar);
    if fetched && list_b.len() == list_a.len() + 1 {
        let fetch = b.connections.iter().find(|connection| {
            let digest = (
                sha256_hex(&connection.stream(Direction::ClientToServer)),
                sha256_hex(&connection.stream(Direction::ServerToClient)),
            );
            !list_a.contains(&digest)
        });
        if let Some(fetch) = fetch {
            let decoded = nixcap_view::decode_connection(fetch);
            let only_fetch_ops = decoded
                .exchanges
                .iter()
                .all(|e| matches!(e.op_name().as_str(), "QueryPathInfo" | "NarFromPath"));
            if only_fetch_ops && !decoded.exchanges.is_empty() {
                let digest = (
                    sha256_hex(&fetch.stream(Direction::ClientToServer)),
                    sha256_hex(&fetch.stream(Direction::ServerToClient)),
                );
                list_b.retain(|d| *d != digest);
            }
        }
    }
    if list_a == list_b {
        Vec::new()
    } else {
        vec![format!(
            "the captures differ: {} connections with streams {list_a:?} versus {} with {list_b:?}",
            a.connections.len(),
            b.connections.len()
        )]
    }
}

/// One row of the result table.
struct Row {
    label: String,
    problems: Vec<String>,
    direct: Duration,
    recorded: Duration,
    connections: usize,
    ops: usize,
    bytes: (u64, u64),
}

fn print_table(title: &str, rows: &[Row]) -> Vec<String> {
    let mut table = format!("results: {title}\n");
    let mut failures = Vec::new();
    for row in rows {
        let _ =
            writeln!(
            table,
            "  {:<5} {:<40} direct {:>6.2} s  recorded {:>6.2} s  {:>3} connections  {:>3} ops  \
             {:>9} / {:>7} bytes up / down",
            if row.problems.is_empty() { "PASS" } else { "FAIL" },
            row.label,
            row.direct.as_secs_f64(),
            row.recorded.as_secs_f64(),
            row.connections,
            row.ops,
            row.bytes.0,
            row.bytes.1,
        );
        for problem in &row.problems {
            failures.push(format!("{}: {problem}", row.label));
        }
    }
    eprint!("{table}");
    failures
}

fn byte_totals(capture: &Capture) -> (u64, u64) {
    capture.connections.iter().fold((0, 0), |(up, down), c| {
        (
            up + c.byte_count(Direction::ClientToServer),
            down + c.byte_count(Direction::ServerToClient),
        )
    })
}

/// Runs every scenario with `client` against `server`, directly and through the recorder
/// `via`, then the 64 MiB add, and fails with every problem found.
fn matrix(client: &Peer, server: &Peer, via: Via) {
    let started = Instant::now();
    let pair = format!("{} -> {}", client.nix_version(), server.nix_version());
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        let t0 = Instant::now();
        let direct = run_direct(client, server, scenario, false);
        let t1 = Instant::now();
        let (recorded_run, recorded) = run_recorded(client, server, scenario, false, &[via]);
        let t2 = Instant::now();
        let mut problems = direct.unexpected_outcomes();
        problems.extend(recorded_run.unexpected_outcomes());
        problems.extend(direct.differences(&recorded_run));
        let checked = check_capture(&recorded[0], main_store_steps(scenario, client));
        problems.extend(checked.problems);
        rows.push(Row {
            label: format!("{pair} {}", scenario.name),
            problems,
            direct: t1 - t0,
            recorded: t2 - t1,
            connections: recorded[0].capture.connections.len(),
            ops: checked.ops,
            bytes: byte_totals(&recorded[0].capture),
        });
    }
    rows.push(large_add(client, server, via, &pair));
    let failures = print_table(&format!("{pair} via {via:?}"), &rows);
    eprintln!(
        "timing: {pair}: every scenario direct and recorded, and the large add: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_host_nix_dir_empty();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Adds a 64 MiB pseudo-random file directly and through the recorder, each time to a fresh
/// daemon, and checks the store path, the stored bytes and the capture.
fn large_add(client: &Peer, server: &Peer, via: Via, pair: &str) -> Row {
    let work = tempfile::tempdir().unwrap();
    let content = pseudo_random_bytes(LARGE_ADD_LEN, LARGE_ADD_SEED);
    fs::write(work.path().join("big.bin"), &content).unwrap();
    let content_sha256 = sha256_hex(&content);
    drop(content);
    let add = |daemon: &Daemon, uri: &str| -> (String, String) {
        let path = client
            .command("nix-store")
            .args(["--add", "big.bin"])
            .current_dir(work.path())
            .remote(uri)
            .stdout_ok();
        let stored = sha256_hex(&fs::read(daemon.host_path(&path)).unwrap());
        (path, stored)
    };
    let mut problems = Vec::new();

    let t0 = Instant::now();
    let direct_daemon = Daemon::start(server, DaemonOptions::new());
    let (direct_path, direct_stored) = add(&direct_daemon, &direct_daemon.store_uri());
    drop(direct_daemon);
    let t1 = Instant::now();

    let daemon = Daemon::start(server, DaemonOptions::new());
    let recorder = Recorder::start(via, daemon.socket_path());
    let (path, stored) = add(&daemon, &daemon.uri_via(recorder.socket()));
    let recorded = recorder.finish();
    let t2 = Instant::now();

    if path != direct_path {
        problems.push(format!(
            "store path {path} through the recorder, {direct_path} directly"
        ));
    }
    for (how, digest) in [
        ("directly", &direct_stored),
        ("through the recorder", &stored),
    ] {
        if *digest != content_sha256 {
            problems.push(format!("the file stored {how} has SHA-256 {digest}"));
        }
    }
    let checked = check_capture(&recorded, 1);
    problems.extend(checked.problems);
    let bytes = byte_totals(&recorded.capture);
    if bytes.0 < LARGE_ADD_LEN as u64 {
        problems.push(format!(
            "only {} bytes went from the client to the daemon",
            bytes.0
        ));
    }
    Row {
        label: format!("{pair} add of 64 MiB"),
        problems,
        direct: t1 - t0,
        recorded: t2 - t1,
        connections: recorded.capture.connections.len(),
        ops: checked.ops,
        bytes,
    }
}

#[test]
fn nix_2_8_scenarios_through_the_recorder() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_8) {
        matrix(&peer, &peer, Via::Library);
    }
}

#[test]
fn nix_2_26_scenarios_through_the_recorder() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_26) {
        matrix(&peer, &peer, Via::Library);
    }
}

#[test]
fn nix_2_34_scenarios_through_the_recorder() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_34) {
        matrix(&peer, &peer, Via::Library);
    }
}

#[test]
fn nix_2_8_client_with_2_34_daemon_through_nixcap_record() {
    let (Some(client), Some(server)) = (
        peer_or_skip(NixVersion::V2_8),
        peer_or_skip(NixVersion::V2_34),
    ) else {
        return;
    };
    matrix(&client, &server, Via::Cli);
}

#[test]
fn nix_2_34_client_with_2_8_daemon_through_nixcap_record() {
    let (Some(client), Some(server)) = (
        peer_or_skip(NixVersion::V2_34),
        peer_or_skip(NixVersion::V2_8),
    ) else {
        return;
    };
    matrix(&client, &server, Via::Cli);
}

/// Runs every scenario against a daemon that forwards to another daemon
/// (`nix-daemon --store unix://…`), directly and with the recorder in front of the proxy.
fn recorder_in_front_of_a_chained_daemon(peer: &Peer) {
    let started = Instant::now();
    let label = format!("{} chained", peer.nix_version());
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        let t0 = Instant::now();
        let direct = run_direct(peer, peer, scenario, true);
        let t1 = Instant::now();
        let (recorded_run, recorded) = run_recorded(peer, peer, scenario, true, &[Via::Library]);
        let t2 = Instant::now();
        let mut problems = direct.unexpected_outcomes();
        problems.extend(recorded_run.unexpected_outcomes());
        problems.extend(direct.differences(&recorded_run));
        let checked = check_capture(&recorded[0], main_store_steps(scenario, peer));
        problems.extend(checked.problems);
        rows.push(Row {
            label: format!("{label} {}", scenario.name),
            problems,
            direct: t1 - t0,
            recorded: t2 - t1,
            connections: recorded[0].capture.connections.len(),
            ops: checked.ops,
            bytes: byte_totals(&recorded[0].capture),
        });
    }
    let failures = print_table(&label, &rows);
    eprintln!(
        "timing: {label}: every scenario: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nix_2_8_recorder_in_front_of_a_chained_daemon() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_8) {
        recorder_in_front_of_a_chained_daemon(&peer);
    }
}

#[test]
fn nix_2_34_recorder_in_front_of_a_chained_daemon() {
    if let Some(peer) = peer_or_skip(NixVersion::V2_34) {
        recorder_in_front_of_a_chained_daemon(&peer);
    }
}

/// Runs every scenario through two recorders in a chain (`nixcap record` in front of the
/// library's recorder in front of the daemon): the client's results must match a direct run,
/// and the two captures must hold the same streams, since what the first recorder forwarded is
/// what the second one received.
#[test]
fn nix_2_26_recorder_in_front_of_another_recorder() {
    let Some(peer) = peer_or_skip(NixVersion::V2_26) else {
        return;
    };
    let started = Instant::now();
    let label = format!("{} two recorders", peer.nix_version());
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        let t0 = Instant::now();
        let direct = run_direct(&peer, &peer, scenario, false);
        let t1 = Instant::now();
        let (recorded_run, recorded) =
            run_recorded(&peer, &peer, scenario, false, &[Via::Cli, Via::Library]);
        let t2 = Instant::now();
        let mut problems = direct.unexpected_outcomes();
        problems.extend(recorded_run.unexpected_outcomes());
        problems.extend(direct.differences(&recorded_run));
        let min = main_store_steps(scenario, &peer);
        let mut ops = 0;
        for capture in &recorded {
            let checked = check_capture(capture, min);
            problems.extend(checked.problems);
            ops = checked.ops;
        }
        problems.extend(same_streams(&recorded[0].capture, &recorded[1].capture));
        rows.push(Row {
            label: format!("{label} {}", scenario.name),
            problems,
            direct: t1 - t0,
            recorded: t2 - t1,
            connections: recorded[0].capture.connections.len(),
            ops,
            bytes: byte_totals(&recorded[0].capture),
        });
    }
    let failures = print_table(&label, &rows);
    eprintln!(
        "timing: {label}: every scenario: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
