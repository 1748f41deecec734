//! `nixcap-fixtures`: records the committed captures in `testdata/captures/` from real Nix
//! daemons, and checks that re-recording them gives the same protocol content.
//!
//! `cargo xtask fixtures` builds and runs this program. For each Nix series (2.8, 2.26, 2.34)
//! and each scenario of `nixcap_test_support::scenarios`, it starts a fresh daemon, puts a
//! recorder in front of it, runs the scenario with a client of the same version through the
//! recorder, and writes `nix-<series>/<scenario>.nixcap` with the sidecar
//! `nix-<series>/<scenario>.json` (a `FixtureRecord`). A scenario with a source store (`copy`)
//! puts a second recorder in front of the source daemon and writes its capture to
//! `nix-<series>/<scenario>.source.nixcap`, which the sidecar names. Then it writes `README.md`
//! and `MANIFEST.sha256` for the whole directory.
//!
//! Usage:
//!
//! ```text
//! nixcap-fixtures record --out DIR [--series S]... [--scenario NAME]...
//! nixcap-fixtures compare DIR_A DIR_B
//! nixcap-fixtures check --committed DIR [--keep DIR]
//! nixcap-fixtures manifest DIR [--verify]
//! ```
//!
//! `check` verifies the committed manifest, records everything again into a temporary
//! directory (or `--keep DIR`) and compares: the clients' outputs must be identical, and every
//! connection must carry the same number of bytes in each direction. Bytes that differ inside
//! streams of equal length (timestamps, pids, activity ids) are listed but are not failures.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nixcap_capture::{read_capture_file, Capture, CloseReason, Direction};
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr, Options};
use nixcap_test_support::scenarios::{
    sha256_hex, source_capture_name, FixtureRecord, Scenario, SourceCaptureRecord, StoreAccess,
    Stores, FIXTURE_RECORD_FORMAT, SCENARIOS,
};
use nixcap_test_support::{
    assert_host_nix_dir_empty, peers, Daemon, DaemonOptions, NixVersion, Peer,
};
use nixcap_wire::session::{Direction as WireDirection, EventKind, PayloadItem, SessionDecoder};
use nixcap_wire::stderr::StderrMessage;

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const MANIFEST: &str = "MANIFEST.sha256";
const README: &str = "README.md";
/// How many differing byte ranges are listed per stream.
const MAX_RANGES_SHOWN: usize = 6;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("nixcap-fixtures: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The series directory name of a version: `2.8`, `2.26` or `2.34`.
fn series_name(version: NixVersion) -> &'static str {
    match version {
        NixVersion::V2_8 => "2.8",
        NixVersion::V2_26 => "2.26",
        _ => "2.34",
    }
}

fn parse_series(name: &str) -> Result<NixVersion> {
    NixVersion::ALL
        .into_iter()
        .find(|version| series_name(*version) == name.trim_start_matches("nix-"))
        .ok_or_else(|| format!("unknown series `{name}` (known: 2.8, 2.26, 2.34)").into())
}

fn parse_scenario(name: &str) -> Result<&'static Scenario> {
    nixcap_test_support::scenarios::scenario(name).ok_or_else(|| {
        let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        format!("unknown scenario `{name}` (known: {})", known.join(", ")).into()
    })
}

/// Options shared by `record` and `check`.
struct Selection {
    series: Vec<NixVersion>,
    scenarios: Vec<&'static Scenario>,
}

fn run(args: &[String]) -> Result<bool> {
    let Some((command, rest)) = args.split_first() else {
        return Err(usage().into());
    };
    let mut positional = Vec::new();
    let mut out = None;
    let mut committed = None;
    let mut keep = None;
    let mut verify = false;
    let mut series = Vec::new();
    let mut scenarios = Vec::new();
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--committed" => committed = Some(PathBuf::from(value("--committed")?)),
            "--keep" => keep = Some(PathBuf::from(value("--keep")?)),
            "--series" => series.push(parse_series(&value("--series")?)?),
            "--scenario" => scenarios.push(parse_scenario(&value("--scenario")?)?),
            "--verify" => verify = true,
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(true);
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown option `{other}`\n{}", usage()).into())
            }
            other => positional.push(PathBuf::from(other)),
        }
    }
    if series.is_empty() {
        series = NixVersion::ALL.to_vec();
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.iter().collect();
    }
    let selection = Selection { series, scenarios };
    match command.as_str() {
        "record" => {
            let out = out.ok_or("record needs --out DIR")?;
            record_all(&out, &selection)?;
            Ok(true)
        }
        "compare" => {
            let [a, b] = positional.as_slice() else {
                return Err("compare needs two directories".into());
            };
            let comparison = compare_dirs(a, b)?;
            print!("{}", comparison.text);
            Ok(comparison.failures == 0)
        }
        "check" => {
            let committed = committed.ok_or("check needs --committed DIR")?;
            check(&committed, keep.as_deref(), &selection)
        }
        "manifest" => {
            let [dir] = positional.as_slice() else {
                return Err("manifest needs one directory".into());
            };
            if verify {
                let problems = verify_manifest(dir)?;
                for problem in &problems {
                    println!("manifest: {problem}");
                }
                Ok(problems.is_empty())
            } else {
                write_manifest(dir)?;
                Ok(true)
            }
        }
        other => Err(format!("unknown command `{other}`\n{}", usage()).into()),
    }
}

fn usage() -> String {
    "usage:\n  nixcap-fixtures record --out DIR [--series S]... [--scenario NAME]...\n  \
     nixcap-fixtures compare DIR_A DIR_B\n  \
     nixcap-fixtures check --committed DIR [--keep DIR] [--series S]... [--scenario NAME]...\n  \
     nixcap-fixtures manifest DIR [--verify]"
        .to_owned()
}

/// Finds the peer of every selected series, or says why one is missing.
fn require_peers(series: &[NixVersion]) -> Result<Vec<Peer>> {
    let found = peers();
    series
        .iter()
        .map(|&version| {
            found.get(version).cloned().map_err(|reason| {
                format!(
                    "{version} is not usable: {reason} (run `cargo xtask nix-peers install` as root)"
                )
                .into()
            })
        })
        .collect()
}

/// Records the selected scenarios of the selected series into `out`, then rewrites the
/// README and manifest from everything in `out`.
fn record_all(out: &Path, selection: &Selection) -> Result<()> {
    let peers = require_peers(&selection.series)?;
    fs::create_dir_all(out).map_err(|err| format!("creating {}: {err}", out.display()))?;
    let started = Instant::now();
    let scenarios = Arc::new(selection.scenarios.clone());
    let mut threads = Vec::new();
    for peer in peers {
        let dir = out.join(format!("nix-{}", series_name(peer.version())));
        let scenarios = Arc::clone(&scenarios);
        threads.push(std::thread::spawn(move || -> Result<()> {
            fs::create_dir_all(&dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
            let work_root = fixture_work_root(peer.version());
            for scenario in scenarios.iter() {
                let started = Instant::now();
                let recorded = record_one(&peer, scenario, &dir, &work_root).map_err(|err| {
                    format!("Nix {}: {}: {err}", peer.nix_version(), scenario.name)
                })?;
                eprintln!(
                    "recorded nix-{}/{}.nixcap: {} connections, {} bytes, {:.1} s",
                    series_name(peer.version()),
                    scenario.name,
                    recorded.connections,
                    recorded.file_bytes,
                    started.elapsed().as_secs_f64()
                );
            }
            let _ = fs::remove_dir_all(&work_root);
            Ok(())
        }));
    }
    let mut errors = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => errors.push(err.to_string()),
            Err(_) => errors.push("a recording thread panicked".to_owned()),
        }
    }
    assert_host_nix_dir_empty();
    if !errors.is_empty() {
        return Err(errors.join("\n").into());
    }
    write_readme(out)?;
    write_manifest(out)?;
    eprintln!(
        "recorded into {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The fixed working directory of a series. A fixed path keeps the captures reproducible:
/// `nix-build` sends the path of its `result` link to the daemon as an indirect root.
fn fixture_work_root(version: NixVersion) -> PathBuf {
    std::env::temp_dir().join(format!("nixcap-fixtures-{}", series_name(version)))
}

/// What one recording produced.
struct Recorded {
    connections: usize,
    file_bytes: u64,
}

fn record_one(peer: &Peer, scenario: &Scenario, dir: &Path, work_root: &Path) -> Result<Recorded> {
    let work = work_root.join(scenario.name);
    if work.exists() {
        fs::remove_dir_all(&work).map_err(|err| format!("removing {}: {err}", work.display()))?;
    }
    fs::create_dir_all(&work).map_err(|err| format!("creating {}: {err}", work.display()))?;

    let daemon = Daemon::try_start(peer, DaemonOptions::new())?;
    let source = if scenario.needs_source {
        Some(Daemon::try_start(peer, DaemonOptions::new())?)
    } else {
        None
    };
    let capture_path = dir.join(format!("{}.nixcap", scenario.name));
    let recorder = start_recorder(
        peer,
        scenario,
        &daemon,
        &capture_path,
        recorded_side(scenario),
    )?;
    // The source store is recorded too, through a second recorder, so that a replay needs no
    // daemon for either side of `nix copy`.
    let source_capture_path = dir.join(source_capture_name(scenario.name));
    let source_recorder = match &source {
        Some(source) => Some(start_recorder(
            peer,
            scenario,
            source,
            &source_capture_path,
            SOURCE_RECORDED,
        )?),
        None => None,
    };
    let main = StoreAccess::via(&daemon, recorder.socket_path());
    let stores = match (&source, &source_recorder) {
        (Some(source), Some(source_recorder)) => Stores::with_source(
            main,
            StoreAccess::via(source, source_recorder.socket_path()),
        ),
        _ => Stores::main(main),
    };
    let run = scenario.run(peer, &work, &stores);
    let report = recorder.finish()?;
    let source_report = source_recorder
        .map(BackgroundRecorder::finish)
        .transpose()?;
    let run = run?;
    let unexpected = run.unexpected_outcomes();
    if !unexpected.is_empty() {
        return Err(unexpected.join("\n").into());
    }
    for report in std::iter::once(&report).chain(&source_report) {
        if !report.capture_complete() {
            return Err(format!("the capture is incomplete: {:?}", report.capture_problems).into());
        }
    }
    drop(source);
    drop(daemon);

    let capture = read_capture_file(&capture_path)?;
    check_capture(&capture)?;
    let ops = decoded_ops(peer, scenario.name, &capture);
    let source_record = match source_report {
        Some(_) => {
            let source_capture = read_capture_file(&source_capture_path)?;
            check_capture(&source_capture).map_err(|err| format!("the source capture: {err}"))?;
            Some(SourceCaptureRecord {
                capture: source_capture_name(scenario.name),
                recorded: SOURCE_RECORDED.to_owned(),
                connections: source_capture.connections.len(),
                ops: decoded_ops(peer, &format!("{}.source", scenario.name), &source_capture),
            })
        }
        None => None,
    };
    let first = capture
        .connections
        .first()
        .ok_or("the capture holds no connection")?;
    let record = FixtureRecord {
        format: FIXTURE_RECORD_FORMAT,
        scenario: scenario.name.to_owned(),
        summary: scenario.summary.to_owned(),
        daemon_nix_version: peer.nix_version().to_owned(),
        client_protocol: protocol_version(&first.stream(Direction::ClientToServer), 8)
            .ok_or("no client protocol version in the capture")?,
        daemon_protocol: protocol_version(&first.stream(Direction::ServerToClient), 8)
            .ok_or("no daemon protocol version in the capture")?,
        recorded: recorded_side(scenario).to_owned(),
        work_dir: work.display().to_string(),
        connections: capture.connections.len(),
        ops,
        source: source_record,
        run,
    };
    let json_path = dir.join(format!("{}.json", scenario.name));
    let mut json = serde_json::to_string_pretty(&record)?;
    json.push('\n');
    fs::write(&json_path, json).map_err(|err| format!("writing {}: {err}", json_path.display()))?;
    let _ = fs::remove_dir_all(&work);
    let file_bytes = fs::metadata(&capture_path)?.len();
    Ok(Recorded {
        connections: capture.connections.len(),
        file_bytes,
    })
}

/// What the source capture of a scenario with a source store holds.
const SOURCE_RECORDED: &str = "the source store (the client's default store in nix copy --to)";

fn recorded_side(scenario: &Scenario) -> &'static str {
    if scenario.needs_source {
        "the destination store (nix copy --to); the source store is in the source capture"
    } else {
        "the only store"
    }
}

/// Starts a recorder in front of `daemon`, writing `capture_path`, with fixed settings and
/// machine-independent header metadata.
fn start_recorder(
    peer: &Peer,
    scenario: &Scenario,
    daemon: &Daemon,
    capture_path: &Path,
    recorded: &str,
) -> Result<BackgroundRecorder<fs::File>> {
    let file = fs::File::create(capture_path)
        .map_err(|err| format!("creating {}: {err}", capture_path.display()))?;
    let mut config = Config::new(None, DaemonAddr::from_path(daemon.socket_path()));
    config.options = Options {
        shutdown_grace: Duration::from_secs(10),
        ..Options::default()
    };
    // One frame per capture (they are far below the 4 MiB frame limit): time-based frame
    // cuts would make the files' layout depend on the machine's speed.
    config.options.writer.zstd_level = 19;
    config.options.writer.frame_max_age_nanos = 3_600 * 1_000_000_000;
    // Machine-specific header fields are replaced, so that only timestamps tell two
    // recordings apart.
    let metadata = [
        ("hostname", "fixtures".to_owned()),
        ("argv", "cargo xtask fixtures".to_owned()),
        ("listen", "@SOCKET@".to_owned()),
        (
            "upstream",
            format!("nix-daemon {} (a fresh store)", peer.nix_version()),
        ),
        ("scenario", scenario.name.to_owned()),
        ("nix-version", peer.nix_version().to_owned()),
        ("recorded", recorded.to_owned()),
    ];
    for (key, value) in metadata {
        config.metadata.insert(key.to_owned(), value);
    }
    Ok(BackgroundRecorder::start(config, file)?)
}

/// The ops of each connection of a fixture capture; what could not be decoded is printed as
/// a warning.
fn decoded_ops(peer: &Peer, name: &str, capture: &Capture) -> Vec<Vec<String>> {
    let Decoded { ops, problems, .. } = decode(capture);
    for problem in &problems {
        eprintln!(
            "warning: nix-{}/{name}.nixcap: {problem}",
            series_name(peer.version())
        );
    }
    ops
}

/// Checks that a fixture capture is intact and that every connection ended cleanly.
fn check_capture(capture: &Capture) -> Result<()> {
    if let Some(damage) = &capture.damage {
        return Err(format!("the capture is damaged: {damage}").into());
    }
    if capture.footer.is_none() {
        return Err("the capture has no footer".into());
    }
    for connection in &capture.connections {
        match &connection.closed {
            Some(closed) if closed.reason == CloseReason::CleanEof => {}
            Some(closed) => {
                return Err(format!(
                    "connection {} closed with {:?}",
                    connection.conn, closed.reason
                )
                .into())
            }
            None => return Err(format!("connection {} was not closed", connection.conn).into()),
        }
    }
    Ok(())
}

/// What the session decoder made of a capture.
struct Decoded {
    /// The ops of each connection, in order.
    ops: Vec<Vec<String>>,
    /// Per connection, every event as (direction, start, end, label), for naming the place
    /// of a differing byte.
    events: Vec<Vec<(WireDirection, u64, u64, String)>>,
    /// Everything that could not be decoded.
    problems: Vec<String>,
}

/// Decodes every connection of a capture with the session decoder.
fn decode(capture: &Capture) -> Decoded {
    let mut decoded = Decoded {
        ops: Vec::new(),
        events: Vec::new(),
        problems: Vec::new(),
    };
    for (index, connection) in capture.connections.iter().enumerate() {
        let mut decoder = SessionDecoder::new();
        let mut names: Vec<String> = Vec::new();
        let mut events = Vec::new();
        let mut look = |decoder: &mut SessionDecoder| {
            while let Some(event) = decoder.next_event() {
                let op_of = |seq: u64| {
                    names
                        .get(usize::try_from(seq).unwrap_or(usize::MAX))
                        .cloned()
                        .unwrap_or_else(|| format!("op {seq}"))
                };
                let mut payload = &[][..];
                let label = match &event.kind {
                    EventKind::Opaque { reason, .. } | EventKind::Truncated { reason, .. } => {
                        decoded.problems.push(format!(
                            "connection {index}: {} undecoded bytes {:?} at {}: {reason}",
                            event.len, event.direction, event.offset
                        ));
                        "undecoded bytes".to_owned()
                    }
                    EventKind::Handshake { .. } => "handshake".to_owned(),
                    EventKind::Request { request, .. } => {
                        let name = request.op().name().to_owned();
                        let label = format!("{name} request");
                        names.push(name);
                        label
                    }
                    EventKind::Reply { seq, .. } => format!("{} reply", op_of(*seq)),
                    EventKind::Stderr { seq, message } => {
                        let what = match message {
                            StderrMessage::Next { .. } => "log line",
                            StderrMessage::StartActivity { .. } => "start-activity message",
                            StderrMessage::StopActivity { .. } => "stop-activity message",
                            StderrMessage::Result { .. } => "activity result",
                            StderrMessage::Error(_) => "error",
                            _ => "log-channel message",
                        };
                        match seq {
                            Some(seq) => format!("{what} of {}", op_of(*seq)),
                            None => what.to_owned(),
                        }
                    }
                    EventKind::FramedData {
                        seq,
                        payload: items,
                        ..
                    }
                    | EventKind::FramedEnd {
                        seq,
                        payload: items,
                    }
                    | EventKind::ReadAnswer {
                        seq,
                        payload: items,
                        ..
                    } => {
                        payload = items.as_slice();
                        format!("upload of {}", op_of(*seq))
                    }
                    EventKind::FramedHeader { seq, .. } => format!("upload of {}", op_of(*seq)),
                    EventKind::NarData { seq, .. } => format!("NAR of {}", op_of(*seq)),
                };
                for item in payload {
                    if let PayloadItem::Undecodable { reason } = item {
                        decoded.problems.push(format!(
                            "connection {index}: undecodable payload at {}: {reason}",
                            event.offset
                        ));
                    }
                }
                events.push((event.direction, event.offset, event.end(), label));
            }
        };
        for chunk in &connection.chunks {
            let direction = match chunk.direction {
                Direction::ClientToServer => WireDirection::ClientToDaemon,
                _ => WireDirection::DaemonToClient,
            };
            decoder.feed(direction, &chunk.bytes);
            look(&mut decoder);
        }
        decoder.finish();
        look(&mut decoder);
        decoded.ops.push(names);
        decoded.events.push(events);
    }
    decoded
}

/// The labels of the events of `events` in `direction` that overlap `start..end`.
fn places(
    events: &[(WireDirection, u64, u64, String)],
    direction: WireDirection,
    start: usize,
    end: usize,
) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for (event_direction, event_start, event_end, label) in events {
        if *event_direction == direction
            && (*event_start as usize) < end
            && (*event_end as usize) > start
            && !labels.contains(label)
        {
            labels.push(label.clone());
        }
    }
    labels
}

/// The protocol version (`major.minor`) in the little-endian word at `offset` of a stream:
/// offset 8 of either direction, right after the magic number.
fn protocol_version(stream: &[u8], offset: usize) -> Option<String> {
    let word: [u8; 8] = stream.get(offset..offset + 8)?.try_into().ok()?;
    let value = u64::from_le_bytes(word);
    Some(format!("{}.{}", value >> 8, value & 0xff))
}

/// The result of comparing two fixture directories.
struct Comparison {
    text: String,
    failures: usize,
}

/// Compares every fixture of `a` with the one of the same name in `b`.
///
/// Failures: a fixture missing from `b`, different client outputs, a different number of
/// connections, or a connection whose streams differ in length. Streams of equal length whose
/// bytes differ are listed as differing ranges, for a human to judge.
fn compare_dirs(a: &Path, b: &Path) -> Result<Comparison> {
    let mut text = String::new();
    let mut failures = 0;
    // How many differing byte ranges fell into each kind of event, over all fixtures.
    let mut differing_places: BTreeMap<String, usize> = BTreeMap::new();
    for (name, path_a) in fixture_files(a)? {
        let path_b = b.join(&name);
        let Some(stem) = name.strip_suffix(".nixcap") else {
            continue;
        };
        if !path_b.is_file() {
            let _ = writeln!(text, "FAIL {name}: missing from {}", b.display());
            failures += 1;
            continue;
        }
        let mut lines = Vec::new();
        let mut failed = false;
        // A source capture (`<scenario>.source.nixcap`) shares its scenario's sidecar.
        let sidecar_stem = stem.strip_suffix(".source").unwrap_or(stem);
        let sidecar = |dir: &Path| -> Result<FixtureRecord> {
            let path = dir.join(format!("{sidecar_stem}.json"));
            let text = fs::read_to_string(&path)
                .map_err(|err| format!("reading {}: {err}", path.display()))?;
            Ok(serde_json::from_str(&text)?)
        };
        let (record_a, record_b) = (sidecar(a)?, sidecar(b)?);
        if record_a.daemon_nix_version != record_b.daemon_nix_version {
            lines.push(format!(
                "Nix version {} versus {}",
                record_a.daemon_nix_version, record_b.daemon_nix_version
            ));
            failed = true;
        }
        for difference in record_a.run.differences(&record_b.run) {
            lines.push(format!("client output: {difference}"));
            failed = true;
        }
        let capture_a = read_capture_file(&path_a)?;
        let capture_b = read_capture_file(&path_b)?;
        for (label, capture) in [("first", &capture_a), ("second", &capture_b)] {
            if let Err(err) = check_capture(capture) {
                lines.push(format!("{label} capture: {err}"));
                failed = true;
            }
        }
        let decoded_a = decode(&capture_a);
        let decoded_b = decode(&capture_b);
        let (ops_a, ops_b) = (&decoded_a.ops, &decoded_b.ops);
        for (label, undecoded) in [
            ("first", &decoded_a.problems),
            ("second", &decoded_b.problems),
        ] {
            for problem in undecoded {
                lines.push(format!("{label} capture: {problem}"));
                failed = true;
            }
        }
        for (index, (a, b)) in ops_a.iter().zip(ops_b).enumerate() {
            if a != b {
                lines.push(format!(
                    "connection {index}: ops {} versus {}",
                    a.join(" "),
                    b.join(" ")
                ));
                failed = true;
            }
        }
        if capture_a.connections.len() != capture_b.connections.len() {
            lines.push(format!(
                "{} connections versus {}",
                capture_a.connections.len(),
                capture_b.connections.len()
            ));
            failed = true;
        }
        for (index, (conn_a, conn_b)) in capture_a
            .connections
            .iter()
            .zip(&capture_b.connections)
            .enumerate()
        {
            for direction in Direction::BOTH {
                let stream_a = conn_a.stream(direction);
                let stream_b = conn_b.stream(direction);
                let (arrow, wire_direction) = match direction {
                    Direction::ClientToServer => ("client->daemon", WireDirection::ClientToDaemon),
                    _ => ("daemon->client", WireDirection::DaemonToClient),
                };
                if stream_a.len() != stream_b.len() {
                    lines.push(format!(
                        "connection {index} {arrow}: {} bytes versus {}",
                        stream_a.len(),
                        stream_b.len()
                    ));
                    failed = true;
                    continue;
                }
                let ranges = differing_ranges(&stream_a, &stream_b);
                if !ranges.is_empty() {
                    let events = decoded_a.events.get(index).map_or(&[][..], Vec::as_slice);
                    let shown: Vec<String> = ranges
                        .iter()
                        .take(MAX_RANGES_SHOWN)
                        .map(|&(start, end)| {
                            let labels = places(events, wire_direction, start, end);
                            format!("{start:#x}..{end:#x} ({})", labels.join(", "))
                        })
                        .collect();
                    for &(start, end) in &ranges {
                        for label in places(events, wire_direction, start, end) {
                            *differing_places.entry(label).or_insert(0usize) += 1;
                        }
                    }
                    let more = ranges.len().saturating_sub(MAX_RANGES_SHOWN);
                    lines.push(format!(
                        "connection {index} {arrow}: {} bytes, {} differing ranges: {}{}",
                        stream_a.len(),
                        ranges.len(),
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    ));
                }
            }
        }
        let status = if failed {
            failures += 1;
            "FAIL"
        } else if lines.is_empty() {
            "same"
        } else {
            "ok  "
        };
        let _ = writeln!(
            text,
            "{status} {name}: {} connections, {} ops",
            capture_a.connections.len(),
            ops_a.iter().map(Vec::len).sum::<usize>()
        );
        for line in lines {
            let _ = writeln!(text, "       {line}");
        }
    }
    if !differing_places.is_empty() {
        let _ = writeln!(text, "differing byte ranges by place:");
        for (label, count) in &differing_places {
            let _ = writeln!(text, "  {count:>5}  {label}");
        }
    }
    let _ = writeln!(
        text,
        "{failures} fixture(s) differ in more than timestamps, pids and ids"
    );
    Ok(Comparison { text, failures })
}

/// The byte ranges where two equally long streams differ; ranges closer than 8 bytes merge.
fn differing_ranges(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (offset, (x, y)) in a.iter().zip(b).enumerate() {
        if x == y {
            continue;
        }
        match ranges.last_mut() {
            Some((_, end)) if offset < *end + 8 => *end = offset + 1,
            _ => ranges.push((offset, offset + 1)),
        }
    }
    ranges
}

/// `nix-<series>/<scenario>.nixcap` and `.json` files of a fixture directory, by relative
/// name, sorted.
fn fixture_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut files = BTreeMap::new();
    let entries = fs::read_dir(dir).map_err(|err| format!("reading {}: {err}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type()?.is_dir() || !name.starts_with("nix-") {
            continue;
        }
        for file in fs::read_dir(entry.path())? {
            let file = file?;
            let file_name = file.file_name().to_string_lossy().into_owned();
            if file_name.ends_with(".nixcap") || file_name.ends_with(".json") {
                files.insert(format!("{name}/{file_name}"), file.path());
            }
        }
    }
    Ok(files)
}

/// Every file the manifest covers: the fixtures and the README.
fn manifest_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut files = fixture_files(dir)?;
    let readme = dir.join(README);
    if readme.is_file() {
        files.insert(README.to_owned(), readme);
    }
    Ok(files)
}

/// Writes `MANIFEST.sha256` in the format of `sha256sum`, so `sha256sum -c` verifies it.
fn write_manifest(dir: &Path) -> Result<()> {
    let mut text = String::new();
    for (name, path) in manifest_files(dir)? {
        let bytes = fs::read(&path)?;
        let _ = writeln!(text, "{}  {name}", sha256_hex(&bytes));
    }
    fs::write(dir.join(MANIFEST), text)?;
    Ok(())
}

/// Checks `MANIFEST.sha256` against the files; returns the problems found.
fn verify_manifest(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(MANIFEST);
    let text =
        fs::read_to_string(&path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    let mut problems = Vec::new();
    let mut listed = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let Some((hash, name)) = line.split_once("  ") else {
            problems.push(format!("malformed line `{line}`"));
            continue;
        };
        listed.insert(name.to_owned(), hash.to_owned());
    }
    let present = manifest_files(dir)?;
    for (name, hash) in &listed {
        match present.get(name) {
            None => problems.push(format!("{name} is listed but missing")),
            Some(path) => {
                let actual = sha256_hex(&fs::read(path)?);
                if &actual != hash {
                    problems.push(format!(
                        "{name} has SHA-256 {actual}, the manifest says {hash}"
                    ));
                }
            }
        }
    }
    for name in present.keys() {
        if !listed.contains_key(name) {
            problems.push(format!("{name} is not listed"));
        }
    }
    Ok(problems)
}

/// Verifies the committed manifest, records again and compares with the committed fixtures.
fn check(committed: &Path, keep: Option<&Path>, selection: &Selection) -> Result<bool> {
    let problems = verify_manifest(committed)?;
    for problem in &problems {
        println!("manifest: {problem}");
    }
    if problems.is_empty() {
        println!("manifest: every file matches");
    }
    let temp;
    let fresh = match keep {
        Some(dir) => dir.to_path_buf(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    record_all(&fresh, selection)?;
    // Compare only what was recorded again.
    let comparison = compare_dirs(&fresh, committed)?;
    print!("{}", comparison.text);
    Ok(problems.is_empty() && comparison.failures == 0)
}

/// Writes the README of a fixture directory from its sidecars.
fn write_readme(dir: &Path) -> Result<()> {
    let mut records: BTreeMap<String, Vec<FixtureRecord>> = BTreeMap::new();
    for (name, path) in fixture_files(dir)? {
        if !name.ends_with(".json") {
            continue;
        }
        let series = name.split('/').next().unwrap_or_default().to_owned();
        let record: FixtureRecord = serde_json::from_str(&fs::read_to_string(&path)?)?;
        records.entry(series).or_default().push(record);
    }
    let order = |series: &str| -> (u32, u32) {
        let version = series.trim_start_matches("nix-");
        let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let mut series: Vec<&String> = records.keys().collect();
    series.sort_by_key(|name| order(name));

    let mut text = String::new();
    text.push_str(README_INTRO);
    text.push_str("\n## Series\n\n");
    text.push_str(
        "| Directory | Nix (client and daemon) | Protocol (client / daemon) | Source |\n",
    );
    text.push_str("|---|---|---|---|\n");
    for name in &series {
        let list = &records[*name];
        let Some(first) = list.first() else { continue };
        let source = match name.as_str() {
            "nix-2.8" => "Debian 12 `nix-bin`, on the host",
            "nix-2.26" => "Debian trixie `nix-bin`, in a chroot",
            _ => "Debian sid `nix-bin`, in a chroot (sid moves)",
        };
        let _ = writeln!(
            text,
            "| `{name}/` | {} | {} / {} | {source} |",
            first.daemon_nix_version, first.client_protocol, first.daemon_protocol
        );
    }
    text.push_str("\n## Scenarios\n\n");
    text.push_str(
        "Each scenario writes fixed inputs into an empty working directory (`@WORK@`) and runs \
         these commands in it, each with `NIX_REMOTE` set to the recorder's socket \
         (`@STORE@`), except where noted.\n\
         Input paths are relative; `$FILE` and `$OUT` are store paths printed by an earlier step.\n",
    );
    for scenario in SCENARIOS {
        let _ = writeln!(text, "\n### `{}`\n\n{}\n", scenario.name, scenario.summary);
        // The commands of every series, listed once when they agree.
        let mut variants: Vec<(Vec<String>, Vec<&str>)> = Vec::new();
        for name in &series {
            let Some(record) = records[*name].iter().find(|r| r.scenario == scenario.name) else {
                continue;
            };
            let lines: Vec<String> = record
                .run
                .steps
                .iter()
                .map(|step| {
                    let mut line = step.command_line();
                    if let Some(file) = &step.stdin_file {
                        let _ = write!(line, " < {file}");
                    }
                    if let Some(file) = &step.stdout_file {
                        let _ = write!(line, " > {}", file.path);
                    }
                    if step.store == nixcap_test_support::scenarios::StoreRole::Source {
                        line.push_str("    # against the source store");
                    }
                    if step.expect == nixcap_test_support::scenarios::Expect::Failure {
                        line.push_str("    # fails");
                    }
                    line
                })
                .collect();
            match variants.iter_mut().find(|(known, _)| *known == lines) {
                Some((_, names)) => names.push(name.as_str()),
                None => variants.push((lines, vec![name.as_str()])),
            }
        }
        for (lines, names) in variants {
            if series.len() > 1 && names.len() < series.len() {
                let _ = writeln!(text, "{}:\n", names.join(", "));
            }
            text.push_str("```sh\n");
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
            text.push_str("```\n\n");
        }
        // The ops of each connection, as the session decoder names them.
        let mut op_variants: Vec<(String, Vec<&str>)> = Vec::new();
        for name in &series {
            let Some(record) = records[*name].iter().find(|r| r.scenario == scenario.name) else {
                continue;
            };
            let join = |ops: &[Vec<String>]| {
                ops.iter()
                    .map(|ops| ops.join(" "))
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            let mut line = join(&record.ops);
            if let Some(source) = &record.source {
                let _ = write!(line, "; source store: {}", join(&source.ops));
            }
            match op_variants.iter_mut().find(|(known, _)| *known == line) {
                Some((_, names)) => names.push(name.as_str()),
                None => op_variants.push((line, vec![name.as_str()])),
            }
        }
        text.push_str("Ops per connection (connections separated by `|`):\n\n");
        for (line, names) in op_variants {
            let _ = writeln!(text, "- {}: {line}", names.join(", "));
        }
    }
    text.push_str("\n## Files\n\n");
    text.push_str(
        "| Capture | Connections | Ops | Bytes client→daemon / daemon→client | File size |\n",
    );
    text.push_str("|---|---|---|---|---|\n");
    for name in &series {
        for record in &records[*name] {
            let mut files = vec![(
                format!("{}.nixcap", record.scenario),
                record.connections,
                &record.ops,
            )];
            if let Some(source) = &record.source {
                files.push((source.capture.clone(), source.connections, &source.ops));
            }
            for (file, connections, ops) in files {
                let path = dir.join(name).join(&file);
                let file_size = fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
                let (up, down) = read_capture_file(&path)
                    .map(|capture| {
                        capture.connections.iter().fold((0, 0), |(up, down), c| {
                            (
                                up + c.byte_count(Direction::ClientToServer),
                                down + c.byte_count(Direction::ServerToClient),
                            )
                        })
                    })
                    .unwrap_or((0, 0));
                let _ = writeln!(
                    text,
                    "| `{name}/{file}` | {connections} | {} | {up} / {down} | {file_size} |",
                    ops.iter().map(Vec::len).sum::<usize>()
                );
            }
        }
    }
    text.push('\n');
    text.push_str(README_OUTRO);
    fs::write(dir.join(README), text)?;
    Ok(())
}

const README_INTRO: &str = "\
# Recorded captures of real Nix clients and daemons

Generated by `cargo xtask fixtures`; do not edit by hand.

Each `nix-<series>/<scenario>.nixcap` is a capture recorded by `nixcap-record` in front of a \
fresh `nix-daemon` with an empty store, while a client of the same Nix version ran the \
scenario through it.
Next to it, `<scenario>.json` (a `FixtureRecord` of `nixcap_test_support::scenarios`) holds \
the commands that ran, with placeholders for machine-specific paths, and each client's \
standard output, standard error and exit status: a replay test runs the same commands \
against the replayed capture and compares.
The `copy` scenario uses two daemons, each behind its own recorder: `copy.nixcap` holds the \
destination store of `nix copy --to`, `copy.source.nixcap` the source store (the client's \
default store); its sidecar `copy.json` describes both.
`MANIFEST.sha256` lists the SHA-256 of every file here (`sha256sum -c MANIFEST.sha256`).

Daemons run with the harness's `nix.conf` (no substituters, `sandbox = false`, \
`require-sigs = false`, `max-jobs = 1`); clients get an empty environment apart from \
`NIX_REMOTE` and a `NIX_CONFIG` enabling `nix-command`.
The inputs and derivations are fixed, so store paths are the same in every series and on \
every run.
Derivations use `builtins.currentSystem`, so their store paths are those of `x86_64-linux`, \
the system these captures were recorded on.
";

const README_OUTRO: &str = "\
## What varies between recordings

Recording twice gives the same ops and the same number of bytes on every connection, in each \
direction. The bytes that differ, as `cargo xtask fixtures --check` lists them:

- registration times (seconds) in the path infos of `AddToStore` and `QueryPathInfo` replies, \
and in the path infos `nix copy` uploads with `AddMultipleToStore` (they come from the source \
store);
- activity ids in start-activity, stop-activity and result messages: the daemon worker's pid \
is their high 32 bits;
- the `AddIndirectRoot` of `nix-build --no-out-link`, which names a temporary directory of the \
client: `/tmp/nix-build-<pid>-0/result` up to Nix 2.26, `/tmp/nix-build-<pid>-<random \
number>/result` in 2.34;
- Nix 2.34's `CollectGarbage` log line `removing stale temporary roots file \
\"/nix/var/nix/temproots/<pid>\"`, naming the daemon worker that served the earlier `--add`;
- the capture's own timestamps (header and blocks).

The sidecars differ only in the same registration times (`nix path-info --json`) and the \
temporary-roots pid; `nixcap_test_support::scenarios::mask_volatile` masks both when \
outputs are compared.

`cargo xtask fixtures --check` records everything again into a temporary directory and \
compares: the manifest must match, client outputs must be the same after masking, and every \
connection must hold the same ops and carry the same number of bytes each way, all decoded \
without opaque bytes; differing bytes inside equally long streams are listed with the events \
they fall in.

The header metadata of each capture names the scenario and Nix version; the host name, \
command line and socket paths are replaced by fixed values.
The working directory is a fixed path under the temporary directory (`work_dir` in each \
sidecar), because `nix-build` sends the path of its `result` link to the daemon.
Each capture is a single compressed frame, so its layout does not depend on timing.

## Regenerating

As root, with the Nix versions installed (`cargo xtask nix-peers install`, see \
`docs/REAL-NIX.md`):

```sh
cargo xtask fixtures            # re-record everything here, then README.md and MANIFEST.sha256
cargo xtask fixtures --check    # verify the manifest, re-record into a temporary directory, compare
```

Sid moves: re-recording may pick up a newer Nix for `nix-2.34/`; the table above then \
changes, and `--check` reports the version difference.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_ranges_merge_nearby_bytes() {
        let a = [0u8; 40];
        let mut b = a;
        b[3] = 1;
        b[9] = 1;
        b[30] = 1;
        assert_eq!(differing_ranges(&a, &b), [(3, 10), (30, 31)]);
        assert!(differing_ranges(&a, &a).is_empty());
    }

    #[test]
    fn protocol_versions_are_read_after_the_magic() {
        let mut stream = 0x6478_696f_u64.to_le_bytes().to_vec();
        stream.extend_from_slice(&0x126_u64.to_le_bytes());
        assert_eq!(protocol_version(&stream, 8).as_deref(), Some("1.38"));
        assert_eq!(protocol_version(&stream[..12], 8), None);
    }

    #[test]
    fn series_names_round_trip() {
        for version in NixVersion::ALL {
            assert_eq!(parse_series(series_name(version)).unwrap(), version);
        }
        assert_eq!(parse_series("nix-2.26").unwrap(), NixVersion::V2_26);
        assert!(parse_series("2.9").is_err());
    }

    #[test]
    fn the_manifest_verifies_and_catches_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("nix-2.8")).unwrap();
        fs::write(dir.path().join("nix-2.8/add.nixcap"), b"capture").unwrap();
        fs::write(dir.path().join("nix-2.8/add.json"), b"{}").unwrap();
        fs::write(dir.path().join(README), b"readme").unwrap();
        write_manifest(dir.path()).unwrap();
        assert!(verify_manifest(dir.path()).unwrap().is_empty());

        fs::write(dir.path().join("nix-2.8/add.json"), b"{ }").unwrap();
        fs::write(dir.path().join("nix-2.8/copy.json"), b"{}").unwrap();
        let problems = verify_manifest(dir.path()).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("nix-2.8/add.json has SHA-256"));
        assert_eq!(problems[1], "nix-2.8/copy.json is not listed");
    }
}
