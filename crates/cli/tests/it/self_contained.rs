//! Self-contained captures: what the daemon made and never sent (build outputs, build logs)
//! is fetched when the recording ends and stored as store objects, so that clients that read
//! the store's directory get the same answers from a replay, with no daemon and an empty
//! store root, as from the live daemon.
//!
//! The `inspect` scenario builds a derivation, verifies its output, prints it and its NAR
//! (`nix store dump-path`), prints its build log, and evaluates an expression that imports the
//! output of a derivation it builds (import from derivation). Recorded with real Nix 2.8, 2.26
//! and 2.34 (client and daemon of the same version), then replayed: every step must print the
//! same standard output and standard error and exit with the same status. Without its store
//! objects the same capture fails every step that reads the output from the store's
//! directory. The same goes through `nixcap record -- CMD` (on by default) and
//! `--no-store-objects` (off: the replay then fails with "does not exist"). Real daemons are
//! required under `NIXCAP_REQUIRE_NIX=1`.

use std::fs;
use std::path::Path;

use nixcap_capture::{read_capture_file, Capture, StoreObjectKind};
use nixcap_client::ClientOptions;
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr};
use nixcap_replay::store_root::crossed_paths;
use nixcap_replay::{fetch_for_capture_file, plan_fetch, FetchSummary, Options, Server};
use nixcap_test_support::scenarios::{scenario, StepRecord, StoreAccess, Stores};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;

use crate::replay::{replay_steps, Replayed};

const NIXCAP: &str = env!("CARGO_BIN_EXE_nixcap");

/// Records `inspect` through a library recorder writing to `capture`, fetching the store
/// objects before finishing (as `nixcap record` does); the daemon is stopped on return.
fn record_inspect(peer: &Peer, capture: &Path) -> (Vec<StepRecord>, FetchSummary) {
    let daemon = Daemon::start(peer, DaemonOptions::new());
    let file = fs::File::create(capture).unwrap();
    let mut config = Config::new(None, DaemonAddr::from_path(daemon.socket_path()));
    config.capture_path = Some(capture.to_owned());
    let mut recorder = BackgroundRecorder::start(config, file).unwrap();
    let work = tempfile::tempdir().unwrap();
    let stores = Stores::main(StoreAccess::via(&daemon, recorder.socket_path()));
    let run = scenario("inspect")
        .unwrap()
        .run(peer, work.path(), &stores)
        .unwrap_or_else(|err| panic!("{err}"));
    recorder.drain();
    let (_, summary) = fetch_for_capture_file(
        capture,
        daemon.socket_path(),
        &ClientOptions::default(),
        |fetched| recorder.store_object(fetched.kind, &fetched.name, fetched.contents),
    )
    .unwrap();
    let report = recorder.finish().unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    (run.steps, summary)
}

/// Every difference between the live steps and the replayed ones: stdout, stderr, status.
fn differences(label: &str, live: &[StepRecord], replayed: &[(usize, Replayed)]) -> Vec<String> {
    let mut problems = Vec::new();
    assert_eq!(replayed.len(), live.len(), "{label}: every step replayed");
    for (index, got) in replayed {
        let want = &live[*index];
        let line = want.command_line();
        if (want.exit_code, &want.stdout, &want.stderr) != (got.exit_code, &got.stdout, &got.stderr)
        {
            problems.push(format!(
                "{label} step {index} `{line}`:\n--- live: exit {:?}\n{}\n{}--- replayed: exit {:?}\n{}\n{}",
                want.exit_code, want.stdout, want.stderr, got.exit_code, got.stdout, got.stderr
            ));
        }
    }
    problems
}

fn nar_objects(capture: &Capture) -> Vec<&str> {
    capture
        .store_objects
        .iter()
        .filter(|o| o.object.kind == StoreObjectKind::Nar && o.is_complete())
        .map(|o| o.object.name.as_str())
        .collect()
}

fn inspect_replays_like_the_live_daemon(version: NixVersion) {
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inspect.nixcap");
    let (live, summary) = record_inspect(&peer, &path);
    let label = format!("nix {} inspect", version.series());
    for step in &live {
        assert!(
            step.as_expected(),
            "{label}: live `{}` failed:\n{}",
            step.command_line(),
            step.stderr
        );
    }
    assert!(summary.missing.is_empty(), "{label}: {:?}", summary.missing);
    let capture = read_capture_file(&path).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    // The build output and the generated expression of the evaluation, and both build logs.
    let out = live[0].stdout.trim();
    let nars = nar_objects(&capture);
    assert!(nars.contains(&out), "{label}: {out} not among {nars:?}");
    assert!(
        nars.iter().any(|p| p.ends_with("-generated")),
        "{label}: no generated expression among {nars:?}"
    );
    let logs: Vec<&str> = capture
        .store_objects
        .iter()
        .filter(|o| o.object.kind == StoreObjectKind::BuildLog)
        .map(|o| o.object.name.as_str())
        .collect();
    assert!(
        logs.contains(&live[1].stdout.trim()),
        "{label}: logs {logs:?}"
    );
    // No store object repeats what crossed the wire: the .drv files were uploaded.
    assert!(
        nars.iter().all(|p| !p.ends_with(".drv")),
        "{label}: {nars:?}"
    );
    // Nothing is left to fetch: the store objects count as had.
    let plan = plan_fetch(&DecodedCapture::new(read_capture_file(&path).unwrap()));
    assert!(
        plan.nars.is_empty() && plan.logs.is_empty(),
        "{label}: {plan:?}"
    );

    // Without its store objects the same capture cannot answer the clients that read the
    // store's directory: verify and cat fail (build logs still come from the log stream).
    let mut bare = read_capture_file(&path).unwrap();
    bare.store_objects.clear();
    let server = Server::start(DecodedCapture::new(bare), Options::default()).unwrap();
    let replayed = replay_steps(&peer, scenario("inspect").unwrap(), &live, &server);
    drop(server.finish());
    let failing: Vec<String> = replayed
        .iter()
        .filter(|(_, got)| got.exit_code != Some(0))
        .map(|(index, _)| live[*index].argv[..3].join(" "))
        .collect();
    // Every step that reads the output from the store's directory fails; the logs do not.
    let readers = [
        if version == NixVersion::V2_8 {
            "nix-store --verify-path"
        } else {
            "nix store verify"
        },
        "nix store cat",
        "nix store dump-path",
        "nix eval --file",
    ];
    assert!(
        failing.len() == readers.len()
            && readers
                .iter()
                .all(|r| failing.iter().any(|c| c.starts_with(r))),
        "{label}: without store objects these failed: {failing:?}"
    );
    // `nix store dump-path` printed the output's NAR, live and replayed.
    let dump = live
        .iter()
        .find(|s| s.command_line().starts_with("nix store dump-path"))
        .unwrap();
    assert!(
        dump.stdout.contains("nix-archive-1") && dump.stdout.contains("inspected\n"),
        "{label}: {:?}",
        dump.stdout
    );

    let server = Server::start(DecodedCapture::new(capture), Options::default()).unwrap();
    let replayed = replay_steps(&peer, scenario("inspect").unwrap(), &live, &server);
    let report = server.finish();
    let mut problems = differences(&label, &live, &replayed);
    if report.diverged() {
        problems.push(format!(
            "{label}: the replay diverged:\n{}",
            report.render()
        ));
    }
    eprintln!(
        "{label}: {} step(s); {} NAR(s), {} bytes, {} log(s) fetched",
        replayed.len(),
        summary.nars,
        summary.nar_bytes,
        summary.logs
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn nix_2_8_inspect_replays_like_the_live_daemon() {
    inspect_replays_like_the_live_daemon(NixVersion::V2_8);
}

#[test]
fn nix_2_26_inspect_replays_like_the_live_daemon() {
    inspect_replays_like_the_live_daemon(NixVersion::V2_26);
}

#[test]
fn nix_2_34_inspect_replays_like_the_live_daemon() {
    inspect_replays_like_the_live_daemon(NixVersion::V2_34);
}

/// `nixcap record -- CMD` fetches store objects by default, says so, and `info` and
/// `verify` count them; `--no-store-objects` records only the socket's bytes; `nixcap replay
/// -- CMD` then serves `nix store cat` of the output from the store root (Nix 2.8 on the host).
/// What the wrapper runs, recorded and replayed: a build, then a read of its output.
const SCRIPT: &str =
    "out=$(nix-build --no-out-link inspect.nix) && echo $out && nix store cat $out";

#[test]
fn the_record_wrapper_adds_store_objects_unless_told_not_to() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let work = tempfile::tempdir().unwrap();
    let work_path = work.path().canonicalize().unwrap();
    scenario("inspect")
        .unwrap()
        .write_inputs(&work_path)
        .unwrap();
    let with = work_path.join("with.nixcap");
    let without = work_path.join("without.nixcap");
    let mut outs = Vec::new();
    for (capture, extra) in [(&with, None), (&without, Some("--no-store-objects"))] {
        let mut command = peer.command(NIXCAP);
        command.args(["record", "-w"]).arg(capture);
        if let Some(extra) = extra {
            command.arg(extra);
        }
        let output = command
            .args(["--", "sh", "-c", SCRIPT])
            .store(&daemon)
            .current_dir(&work_path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        outs.push((String::from_utf8_lossy(&output.stdout).into_owned(), stderr));
    }
    let live = outs[0].0.clone();
    let out = live.lines().next().unwrap().to_owned();
    let out = &out;
    assert_eq!(live, format!("{out}\ninspected\n"));
    assert_eq!(outs[1].0, live, "the same output both times");
    assert!(
        outs[0].1.contains("nixcap record: store objects: 1 NAR (")
            && outs[0].1.contains("1 build log, 0 missing"),
        "{}",
        outs[0].1
    );
    assert!(!outs[1].1.contains("store objects"), "{}", outs[1].1);

    let with_capture = read_capture_file(&with).unwrap();
    assert!(with_capture.is_intact(), "{:?}", with_capture.damage);
    assert_eq!(nar_objects(&with_capture), vec![out.as_str()]);
    assert!(read_capture_file(&without)
        .unwrap()
        .store_objects
        .is_empty());

    let info = std::process::Command::new(NIXCAP)
        .arg("info")
        .arg(&with)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        info.contains("Store objects:          2 (1 NAR(s), 1 build log(s))"),
        "{info}"
    );
    let verify = std::process::Command::new(NIXCAP)
        .arg("verify")
        .arg(&with)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("2 store objects"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    drop(daemon);
    for (capture, expect_ok) in [(&with, true), (&without, false)] {
        let output = peer
            .command(NIXCAP)
            .arg("replay")
            .arg(capture)
            .args(["--", "sh", "-c", SCRIPT])
            .current_dir(&work_path)
            .output()
            .unwrap();
        assert_eq!(output.status.success(), expect_ok, "{output:?}");
        if expect_ok {
            assert_eq!(String::from_utf8_lossy(&output.stdout), live);
        } else {
            assert!(
                String::from_utf8_lossy(&output.stderr).contains("does not exist"),
                "{output:?}"
            );
        }
    }
}

/// Runs `nixcap record --listen` in front of `daemon`, builds `inspect.nix` through it, then
/// calls `before_stop` (with the daemon) and stops the recorder with SIGINT. Returns the built
/// output and the recorder's output.
fn record_listening(
    daemon: &mut Daemon,
    work: &Path,
    capture: &Path,
    before_stop: impl FnOnce(&mut Daemon),
) -> (String, std::process::Output) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let socket = work.join("rec.sock");
    let child = Command::new(NIXCAP)
        .args(["record", "-w"])
        .arg(capture)
        .arg("--listen")
        .arg(&socket)
        .arg("--upstream")
        .arg(daemon.socket_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "nixcap record did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    let build = daemon
        .peer()
        .command("nix-build")
        .args(["--no-out-link", "inspect.nix"])
        .remote(daemon.uri_via(&socket))
        .current_dir(work)
        .output()
        .unwrap();
    assert!(build.status.success(), "{build:?}");
    let out = String::from_utf8_lossy(&build.stdout).trim().to_owned();
    before_stop(daemon);
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -INT {}", child.id());
    (out, child.wait_with_output().unwrap())
}

/// `nixcap record --listen` fetches the store objects at shutdown, before it finishes the
/// capture. When the daemon is gone by then, the capture is still finished and says which
/// paths are missing and why; `record` warns, `verify` passes and `info` lists them
/// (Nix 2.8 on the host).
#[test]
fn listen_mode_fetches_at_shutdown_and_names_what_it_could_not_fetch() {
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let mut daemon = Daemon::start(&peer, DaemonOptions::new());
    let work = tempfile::Builder::new()
        .prefix("nixcap-sc")
        .tempdir_in("/tmp")
        .unwrap();
    let work_path = work.path().canonicalize().unwrap();
    scenario("inspect")
        .unwrap()
        .write_inputs(&work_path)
        .unwrap();

    // The daemon still runs at shutdown: the output's NAR is in the capture.
    let fetched = work_path.join("fetched.nixcap");
    let (out, output) = record_listening(&mut daemon, &work_path, &fetched, |_| {});
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr.contains("nixcap record: store objects: 1 NAR (") && stderr.contains("0 missing"),
        "{stderr}"
    );
    let capture = read_capture_file(&fetched).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(nar_objects(&capture), vec![out.as_str()]);

    // The daemon is gone at shutdown: the output is recorded as missing, with the reason.
    let unfetched = work_path.join("unfetched.nixcap");
    let (again, output) = record_listening(&mut daemon, &work_path, &unfetched, |daemon| {
        daemon.stop();
    });
    assert_eq!(again, out);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr.contains(&format!(
            "nixcap record: warning: {out} is missing from the capture: connecting to the daemon"
        )),
        "{stderr}"
    );
    let capture = read_capture_file(&unfetched).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(capture.footer.is_some(), "the capture is finished");
    let missing: Vec<(&str, &str)> = capture
        .store_objects
        .iter()
        .filter(|o| !o.object.is_present())
        .map(|o| (o.object.name.as_str(), o.object.missing.as_str()))
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].0, out);
    assert!(
        missing[0].1.starts_with("connecting to the daemon"),
        "{missing:?}"
    );

    let verify = std::process::Command::new(NIXCAP)
        .arg("verify")
        .arg(&unfetched)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    let info = std::process::Command::new(NIXCAP)
        .arg("info")
        .arg(&unfetched)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        info.contains(&format!("  missing nar {out}: connecting to the daemon")),
        "{info}"
    );
}

/// On every committed capture (Nix 2.8, 2.26 and 2.34), no NAR that crossed the wire (an
/// added source or derivation, an import, a copy's upload, a NarFromPath download) is planned
/// for fetching or stored as a store object, so a capture holds each NAR once; a build's
/// output, which never crossed, is in the capture as a store object.
#[test]
fn the_fetch_plan_leaves_out_what_crossed_the_wire() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures");
    let mut checked = Vec::new();
    for version in ["nix-2.8", "nix-2.26", "nix-2.34"] {
        let mut files: Vec<_> = fs::read_dir(root.join(version))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "nixcap"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no captures for {version}");
        for file in files {
            let name = format!("{version}/{}", file.file_name().unwrap().to_string_lossy());
            let decoded = DecodedCapture::new(read_capture_file(&file).unwrap());
            let crossed = crossed_paths(&decoded);
            let plan = plan_fetch(&decoded);
            let twice: Vec<&String> = plan.nars.iter().filter(|p| crossed.contains(*p)).collect();
            assert!(
                twice.is_empty(),
                "{name}: planned although crossed: {twice:?}"
            );
            if name.ends_with("/export-import.nixcap") || name.ends_with("/add.nixcap") {
                assert!(!crossed.is_empty(), "{name}: nothing crossed");
            }
            // The fixtures were recorded self-contained: the objects a replay needs are in
            // the capture already (each once, none that crossed), so nothing is planned again.
            let objects: Vec<&str> = decoded
                .capture
                .store_objects
                .iter()
                .filter(|o| o.object.kind == StoreObjectKind::Nar)
                .map(|o| o.object.name.as_str())
                .collect();
            let stored_twice: Vec<&&str> =
                objects.iter().filter(|p| crossed.contains(**p)).collect();
            assert!(
                stored_twice.is_empty(),
                "{name}: stored although crossed: {stored_twice:?}"
            );
            assert!(
                plan.nars.is_empty(),
                "{name}: planned although already stored: {plan:?}"
            );
            if name.ends_with("/build.nixcap") {
                assert!(
                    objects.iter().any(|p| p.ends_with("-x")),
                    "{name}: the build output is not a store object: {objects:?}"
                );
            }
            eprintln!(
                "{name}: {} crossed, {} NAR(s) and {} log(s) planned",
                crossed.len(),
                plan.nars.len(),
                plan.logs.len()
            );
            checked.push(name);
        }
    }
    assert!(checked.len() >= 30, "{checked:?}");
}
