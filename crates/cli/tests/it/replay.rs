//! End-to-end tests of the replayer: real Nix clients against `nixcap replay` (the library
//! `Server` and the `nixcap replay -- CMD` wrapper), with no daemon running.
//!
//! Each scenario is recorded once against a real daemon through the recorder; the daemon is
//! stopped, and the same client steps run against the replayed capture must print the same
//! standard output, exit with the same status, and show the same build error. Committed
//! fixtures under `testdata/captures/nix-<series>/` are replayed the same way when present;
//! `copy`, recorded from two daemons, replays with two replayers, one per capture; the remote
//! scenarios (`copy-ssh-ng`, `copy-ssh`) replay their main store through an SSH store on
//! `localhost` whose remote program is `nixcap replay --stdio` of the capture.
//! Tests need real Nix; without `NIXCAP_REQUIRE_NIX=1` they skip when it is missing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_capture::{read_capture_file, Capture, Direction};
use nixcap_client::ClientOptions;
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr};
use nixcap_replay::{fetch_for_capture_file, store_root, MatchMode, Options, Server};
use nixcap_test_support::scenarios::{
    scenario, FixtureRecord, Remote, Scenario, StepRecord, StoreAccess, StoreRole, Stores,
    SCENARIOS,
};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;

const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

/// Records `scenario` with `peer` (client and daemon) through the library recorder, adding
/// the store objects a replay needs before the capture is finished, as `nixcap record` does.
fn record(peer: &Peer, scenario: &Scenario) -> (Vec<StepRecord>, Capture) {
    let daemon = Daemon::start(peer, DaemonOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.nixcap");
    let mut config = Config::new(None, DaemonAddr::from_path(daemon.socket_path()));
    config.capture_path = Some(path.clone());
    let mut recorder = BackgroundRecorder::start(config, fs::File::create(&path).unwrap()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let stores = Stores::main(StoreAccess::via(&daemon, recorder.socket_path()));
    let run = scenario
        .run(peer, work.path(), &stores)
        .unwrap_or_else(|err| panic!("{err}"));
    recorder.drain();
    fetch_for_capture_file(
        &path,
        daemon.socket_path(),
        &ClientOptions::default(),
        |fetched| recorder.store_object(fetched.kind, &fetched.name, fetched.contents),
    )
    .unwrap();
    let report = recorder.finish().unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    (run.steps, read_capture_file(&path).unwrap())
}

/// What a client step printed against the replayer, with the same placeholders as the
/// recorded run.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) exit_code: Option<i32>,
}

/// Runs the main-store steps of a recorded run against `server`, in a fresh working
/// directory holding the scenario's inputs.
pub(crate) fn replay_steps(
    peer: &Peer,
    scenario: &Scenario,
    steps: &[StepRecord],
    server: &Server,
) -> Vec<(usize, Replayed)> {
    replay_steps_on(peer, scenario, steps, server, None)
}

/// Runs the steps of a recorded run against `server` (the main store) and `source` (the
/// source store, when there is one), in a fresh working directory holding the scenario's
/// inputs. Steps against a store without a replayer are skipped.
pub(super) fn replay_steps_on(
    peer: &Peer,
    scenario: &Scenario,
    steps: &[StepRecord],
    server: &Server,
    source: Option<&Server>,
) -> Vec<(usize, Replayed)> {
    replay_steps_with(peer, scenario, steps, MainStore::Server(server), source)
}

/// The main store of a replay: a replayer's socket, or an SSH store on `localhost` whose
/// remote program is `nixcap replay --stdio` (its URI, and the directories a chroot client
/// must see for it).
pub(super) enum MainStore<'a> {
    Server(&'a Server),
    Remote { uri: String, dirs: Vec<PathBuf> },
}

pub(super) fn replay_steps_with(
    peer: &Peer,
    scenario: &Scenario,
    steps: &[StepRecord],
    main: MainStore<'_>,
    source: Option<&Server>,
) -> Vec<(usize, Replayed)> {
    let work = tempfile::tempdir().unwrap();
    let work_path = work.path().canonicalize().unwrap();
    scenario.write_inputs(&work_path).unwrap();
    let source_uri = source.map(Server::store_uri);
    let mut placeholders = vec![(work_path.display().to_string(), "@WORK@")];
    let mut dirs = Vec::new();
    let (uri, server) = match main {
        MainStore::Server(server) => (server.store_uri(), Some(server)),
        MainStore::Remote {
            uri,
            dirs: remote_dirs,
        } => {
            placeholders.push((uri.clone(), "@STORE@"));
            dirs.extend(remote_dirs);
            (uri, None)
        }
    };
    for (replayer, store, socket, root) in [
        (server, "@STORE@", "@SOCKET@", "@ROOT@"),
        (source, "@SOURCE_STORE@", "@SOURCE_SOCKET@", "@SOURCE_ROOT@"),
    ] {
        let Some(replayer) = replayer else {
            continue;
        };
        placeholders.push((replayer.store_uri(), store));
        placeholders.push((replayer.socket_path().display().to_string(), socket));
        if let Some(parent) = replayer.socket_path().parent() {
            dirs.push(parent.to_path_buf());
        }
        if let Some(dir) = replayer.store_root() {
            placeholders.push((dir.display().to_string(), root));
            dirs.push(dir.to_path_buf());
        }
    }
    placeholders.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    let normalise = |bytes: &[u8]| {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        for (actual, placeholder) in &placeholders {
            text = text.replace(actual.as_str(), placeholder);
        }
        text
    };
    let mut out = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let remote = match step.store {
            StoreRole::Main => uri.clone(),
            _ => match &source_uri {
                Some(source_uri) => source_uri.clone(),
                None => continue,
            },
        };
        let args: Vec<String> = step.argv[1..]
            .iter()
            .map(|a| match (a.as_str(), &source_uri) {
                ("@STORE@", _) => uri.clone(),
                ("@SOURCE_STORE@", Some(source_uri)) => source_uri.clone(),
                _ => a.clone(),
            })
            .collect();
        let mut command = peer.command(&step.argv[0]);
        command.args(&args).current_dir(&work_path).remote(remote);
        for dir in &dirs {
            command.bind_dir(dir);
        }
        if let Some(file) = &step.stdin_file {
            command.stdin(fs::File::open(work_path.join(file)).unwrap());
        }
        if let Some(file) = &step.stdout_file {
            command.stdout(fs::File::create(work_path.join(&file.path)).unwrap());
        }
        let output = command.output().unwrap();
        out.push((
            index,
            Replayed {
                stdout: normalise(&output.stdout),
                stderr: normalise(&output.stderr),
                exit_code: output.status.code(),
            },
        ));
    }
    out
}

/// The lists of a JSON replay report (`nixcap replay --report`) that are empty when every
/// client got the recorded answers (as `DivergenceReport::diverged` counts them).
pub(super) const DIVERGED_LISTS: &[&str] = &[
    "unmatched",
    "uploadMismatches",
    "hangs",
    "refused",
    "problems",
    "untranslatable",
];

/// The main store of a remote scenario's replay: an SSH store of kind `remote` on `localhost`
/// whose remote program, written into `dir`, is `nixcap replay --stdio` of `capture` with
/// `args`, writing its report to `dir/report.json` ([`stdio_report`]). `capture` must be
/// canonical: its directory is bound into chroot clients.
pub(super) fn stdio_replayer(
    remote: Remote,
    capture: &Path,
    args: &[&str],
    dir: &Path,
) -> MainStore<'static> {
    let program = dir.join("remote-program");
    let args: String = args.iter().map(|a| format!(" '{a}'")).collect();
    fs::write(
        &program,
        format!(
            "#!/bin/sh\nexec '{NIXCAP}' replay --stdio{args} --report '{}' '{}'\n",
            dir.join("report.json").display(),
            capture.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let uri = format!(
        "{}://localhost?remote-program={}",
        remote.scheme(),
        program.display()
    );
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(Path::new(NIXCAP).parent().map(Path::to_path_buf));
    dirs.extend(capture.parent().map(Path::to_path_buf));
    MainStore::Remote { uri, dirs }
}

/// The JSON report a stdio replayer wrote to `path` (`dir/report.json` for
/// [`stdio_replayer`]), or why there is none (the client never started a session, or the
/// replayer did not finish it). The replayer writes it just after its client is done (whole,
/// by a rename), so this waits a little.
pub(super) fn stdio_report(path: &Path) -> Result<serde_json::Value, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let json = loop {
        match fs::read(path) {
            Ok(json) => break json,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => return Err(format!("no stdio replay report: {err}")),
        }
    };
    serde_json::from_slice(&json).map_err(|err| format!("{}: {err}", path.display()))
}

/// The non-empty [`DIVERGED_LISTS`] of a JSON replay report, each as `name: entries` (a list
/// the report does not have counts as empty).
pub(super) fn stdio_divergences(report: &serde_json::Value) -> Vec<String> {
    DIVERGED_LISTS
        .iter()
        .filter_map(|list| match &report[*list] {
            serde_json::Value::Null => None,
            serde_json::Value::Array(items) if items.is_empty() => None,
            other => Some(format!("{list}: {other}")),
        })
        .collect()
}

/// The lines of a failing build's stderr that carry the error (not progress lines).
fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("error") || l.contains("about to fail") || l.contains("failed"))
        .map(str::to_owned)
        .collect()
}

/// Compares the replayed steps with the recorded ones; returns the differences.
fn compare(label: &str, recorded: &[StepRecord], replayed: &[(usize, Replayed)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, got) in replayed {
        let want = &recorded[*index];
        let line = want.command_line();
        if want.exit_code != got.exit_code {
            problems.push(format!(
                "{label} step {index} `{line}`: exit {:?} recorded, {:?} replayed; stderr:\n{}",
                want.exit_code, got.exit_code, got.stderr
            ));
        }
        if want.stdout != got.stdout {
            problems.push(format!(
                "{label} step {index} `{line}`: stdout differs:\n--- recorded\n{}--- replayed\n{}--- stderr\n{}",
                want.stdout, got.stdout, got.stderr
            ));
        }
        if want.exit_code != Some(0) && error_lines(&want.stderr) != error_lines(&got.stderr) {
            problems.push(format!(
                "{label} step {index} `{line}`: error text differs:\n--- recorded\n{}--- replayed\n{}",
                want.stderr, got.stderr
            ));
        }
    }
    problems
}

fn replay_all_scenarios(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for scenario in SCENARIOS.iter().filter(|s| !s.needs_source) {
        let (steps, capture) = record(&peer, scenario);
        let started = Instant::now();
        let server = Server::start(DecodedCapture::new(capture), Options::default()).unwrap();
        let replayed = replay_steps(&peer, scenario, &steps, &server);
        let report = server.finish();
        let label = format!("nix {} {}", version.series(), scenario.name);
        let found = compare(&label, &steps, &replayed);
        summary.push(format!(
            "{label}: {} step(s), {} request(s) served, {} unmatched, {} hang(s), {:.2}s, {}",
            replayed.len(),
            report.served,
            report.unmatched.len(),
            report.hangs.len(),
            started.elapsed().as_secs_f64(),
            if found.is_empty() {
                "same"
            } else {
                "DIFFERENT"
            }
        ));
        if report.diverged() {
            problems.push(format!(
                "{label}: the replay diverged:\n{}",
                report.render()
            ));
        }
        problems.extend(found);
    }
    eprintln!("{}", summary.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn nix_2_8_scenarios_replay_like_the_live_daemon() {
    replay_all_scenarios(NixVersion::V2_8);
}

#[test]
fn nix_2_26_scenarios_replay_like_the_live_daemon() {
    replay_all_scenarios(NixVersion::V2_26);
}

#[test]
fn nix_2_34_scenarios_replay_like_the_live_daemon() {
    replay_all_scenarios(NixVersion::V2_34);
}

/// Replays every committed fixture (`testdata/captures/nix-<series>/<scenario>.nixcap` with its
/// `<scenario>.json` sidecar) with a client of the fixture's version.
#[test]
fn committed_fixtures_replay_like_the_live_daemon() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures");
    let Ok(dirs) = fs::read_dir(&root) else {
        eprintln!("skipping: no committed captures under {}", root.display());
        return;
    };
    let mut problems = Vec::new();
    let mut replayed_count = 0;
    for dir in dirs.flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let version = match name.as_str() {
            "nix-2.8" => NixVersion::V2_8,
            "nix-2.26" => NixVersion::V2_26,
            "nix-2.34" => NixVersion::V2_34,
            _ => continue,
        };
        let Some(peer) = peer_or_skip(version) else {
            continue;
        };
        // A source capture (`<scenario>.source.nixcap`) is replayed with its scenario's.
        let mut files: Vec<PathBuf> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "nixcap"))
            .filter(|p| {
                !p.file_stem()
                    .is_some_and(|s| s.to_string_lossy().ends_with(".source"))
            })
            .collect();
        files.sort();
        for file in files {
            let sidecar: FixtureRecord =
                serde_json::from_str(&fs::read_to_string(file.with_extension("json")).unwrap())
                    .unwrap();
            let Some(scenario) = scenario(&sidecar.scenario) else {
                continue;
            };
            let label = format!("{name}/{}", sidecar.scenario);
            // The source store of `copy` was recorded into a second capture, named in the
            // sidecar; it gets a replayer of its own.
            let source = match &sidecar.source {
                Some(record) => {
                    let path = file.with_file_name(&record.capture);
                    let source = Server::start_file(&path, Options::default()).unwrap();
                    // `nix copy` reads the source's files from its store root (`?root=`).
                    // The sources it added crossed the source's socket, but the output the
                    // source daemon built did not: its NAR crossed only the destination's
                    // socket, in the upload of the copy. So the source root gets the objects
                    // of the destination capture too (paths already there are kept).
                    // (The remote scenarios copy a file the source added itself.)
                    if scenario.remote.is_none() {
                        let destination = DecodedCapture::new(read_capture_file(&file).unwrap());
                        let root = source.store_root().unwrap();
                        let written = store_root::materialise(&destination, root).unwrap();
                        assert!(written.skipped.is_empty(), "{label}: {:?}", written.skipped);
                    }
                    Some(source)
                }
                None if scenario.needs_source => {
                    problems.push(format!("{label}: the sidecar names no source capture"));
                    continue;
                }
                None => None,
            };
            // The main store of a remote scenario is an SSH store whose remote program is
            // `nixcap replay --stdio` of the capture; its report is read from a file.
            let remote_dir = tempfile::tempdir().unwrap();
            // Canonical, since the capture's directory is bound into chroot clients.
            let file = file.canonicalize().unwrap();
            let server = match scenario.remote {
                Some(_) => None,
                None => Some(Server::start_file(&file, Options::default()).unwrap()),
            };
            let main = match (&server, scenario.remote) {
                (Some(server), _) => MainStore::Server(server),
                (None, remote) => {
                    let remote = remote.expect("a scenario without a server is remote");
                    stdio_replayer(remote, &file, &[], remote_dir.path())
                }
            };
            let replayed =
                replay_steps_with(&peer, scenario, &sidecar.run.steps, main, source.as_ref());
            let mut reports = Vec::new();
            match server {
                Some(server) => reports.push(("", server.finish())),
                None => match stdio_report(&remote_dir.path().join("report.json")) {
                    Ok(report) => {
                        if !stdio_divergences(&report).is_empty() {
                            problems
                                .push(format!("{label}: the stdio replay diverged: {report:#}"));
                        }
                    }
                    Err(err) => problems.push(format!("{label}: {err}")),
                },
            }
            if let Some(source) = source {
                reports.push((" (source store)", source.finish()));
            }
            for (which, report) in reports {
                if report.diverged() {
                    problems.push(format!(
                        "{label}{which}: the replay diverged:\n{}",
                        report.render()
                    ));
                }
            }
            if replayed.len() != sidecar.run.steps.len() {
                problems.push(format!(
                    "{label}: {} of {} step(s) replayed",
                    replayed.len(),
                    sidecar.run.steps.len()
                ));
            }
            problems.extend(compare(&label, &sidecar.run.steps, &replayed));
            replayed_count += 1;
        }
    }
    eprintln!("replayed {replayed_count} committed capture(s)");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn concurrent_clients_get_their_recorded_answers() {
    let Some(peer) = peer_or_skip(NixVersion::V2_26) else {
        return;
    };
    let query = scenario("query").unwrap();
    let (steps, capture) = record(&peer, query);
    let server = Server::start(DecodedCapture::new(capture), Options::default()).unwrap();
    // The add and the build run first, as recorded: the answers after them differ from the
    // answers before (the output is valid only once built).
    let first = replay_steps(&peer, query, &steps[..2], &server);
    assert!(compare("query", &steps, &first).is_empty());
    // Then the seven queries all at once, each on its own connection.
    let uri = server.store_uri();
    let socket_dir = server.socket_path().parent().unwrap().to_path_buf();
    let picked: Vec<&StepRecord> = steps[2..].iter().collect();
    let mut children = Vec::new();
    for step in &picked {
        let mut command = peer.command(&step.argv[0]);
        command
            .args(&step.argv[1..])
            .remote(uri.clone())
            .bind_dir(&socket_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push(command.spawn().unwrap());
    }
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let report = server.finish();
    for (step, output) in picked.iter().zip(&outputs) {
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            step.stdout,
            "`{}`; stderr: {}",
            step.command_line(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(0));
    }
    assert!(!report.diverged(), "{}", report.render());
    assert!(report.connections as usize >= steps.len());
}

#[test]
fn an_unmatched_request_fails_the_client_clearly_and_is_reported() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    // A capture of `nix-store` commands, so that the client's SetOptions is recorded.
    let (_, capture) = record(&peer, scenario("add").unwrap());
    let server = Server::start(DecodedCapture::new(capture), Options::default()).unwrap();
    let missing = "/nix/store/00000000000000000000000000000000-not-recorded";
    let output = peer
        .command("nix-store")
        .args(["-q", "--hash", missing])
        .remote(server.store_uri())
        .bind_dir(server.socket_path().parent().unwrap())
        .output()
        .unwrap();
    let report = server.finish();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr.contains("not in capture: QueryPathInfo"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains(missing), "stderr: {stderr}");
    assert!(report.diverged());
    assert!(
        report
            .unmatched
            .iter()
            .any(|u| u.op == "QueryPathInfo" && u.key_argument.as_deref() == Some(missing)),
        "{}",
        report.render()
    );
}

/// Cuts the daemon stream of the connection whose op `op` was recorded in the middle of that
/// op's reply, and drops the connection's close record.
fn truncate_in_op(capture: &mut Capture, op: &str) -> String {
    for ci in 0..capture.connections.len() {
        let connection = nixcap_view::decode_connection(&capture.connections[ci]);
        for exchange in &connection.exchanges {
            if exchange.op_name() != op {
                continue;
            }
            let reply = exchange
                .events
                .iter()
                .map(|&i| connection.events[i].event.clone())
                .find(|e| {
                    matches!(e.kind, nixcap_wire::session::EventKind::Reply { .. }) && e.len > 8
                });
            let Some(reply) = reply else {
                continue;
            };
            let cut = reply.offset + reply.len / 2;
            let raw = &mut capture.connections[ci];
            let mut seen = 0u64;
            let mut chunks = Vec::new();
            for mut chunk in raw.chunks.drain(..) {
                if chunk.direction == Direction::ServerToClient {
                    if seen >= cut {
                        continue;
                    }
                    let len = chunk.bytes.len() as u64;
                    if seen + len > cut {
                        chunk.bytes.truncate((cut - seen) as usize);
                    }
                    seen += len;
                }
                chunks.push(chunk);
            }
            raw.chunks = chunks;
            raw.closed = None;
            return exchange
                .request
                .as_ref()
                .and_then(nixcap_view::display::key_argument)
                .unwrap_or_default();
        }
    }
    panic!("no {op} with a reply in the capture");
}

#[test]
fn a_capture_cut_mid_op_is_reported_as_a_hang_and_the_client_is_released() {
    let Some(peer) = peer_or_skip(NixVersion::V2_26) else {
        return;
    };
    let (steps, mut capture) = record(&peer, scenario("add-large").unwrap());
    let path = truncate_in_op(&mut capture, "QueryPathInfo");
    let server = Server::start(
        DecodedCapture::new(capture),
        Options::default().match_mode(MatchMode::Keyed),
    )
    .unwrap();
    let step = &steps[1];
    let started = Instant::now();
    let output = peer
        .command(&step.argv[0])
        .args(&step.argv[1..])
        .remote(server.store_uri())
        .bind_dir(server.socket_path().parent().unwrap())
        .output()
        .unwrap();
    let report = server.finish();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_ne!(output.status.code(), Some(0));
    assert!(
        report
            .hangs
            .iter()
            .any(|h| h.op == "QueryPathInfo" && h.key_argument.as_deref() == Some(path.as_str())),
        "{}",
        report.render()
    );
}

#[test]
fn nixcap_replay_wraps_a_command_and_writes_a_report() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    if peer.chroot().is_some() {
        eprintln!("skipping: the wrapper test needs a host client");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Record through `nixcap record`, then replay the file with `nixcap replay`.
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    scenario("add").unwrap().write_inputs(&work).unwrap();
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let capture_path = dir.path().join("add.nixcap");
    let recorded = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(&capture_path)
        .arg("--upstream")
        .arg(daemon.socket_path())
        .arg("--")
        .args(["nix-store", "--add", "hello.txt"])
        .current_dir(&work)
        .env("HOME", dir.path())
        .env("NIX_CONF_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    drop(daemon);
    let report_path = dir.path().join("report.json");
    let output = Command::new(NIXCAP)
        .arg("replay")
        .arg(&capture_path)
        .arg("--strict")
        .arg("--report")
        .arg(&report_path)
        .arg("--")
        .args(["nix-store", "--add", "hello.txt"])
        .current_dir(&work)
        .env("HOME", dir.path())
        .env("NIX_CONF_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, recorded.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["unmatched"], serde_json::json!([]));
    // A second run of another command diverges: --strict turns that into status 3.
    let output = Command::new(NIXCAP)
        .arg("replay")
        .arg(&capture_path)
        .arg("--strict")
        .arg("--")
        .args(["nix-store", "--add", "dir"])
        .current_dir(&work)
        .env("HOME", dir.path())
        .env("NIX_CONF_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("not in capture: AddToStore"));
}
