//! Replaying a capture to a client of another Nix version (`--version-policy translate`).
//!
//! Each committed fixture of one Nix version is served to real clients of another: the 2.8
//! captures (protocol 1.34) to 2.26 and 2.34 clients (1.38), the 2.34 captures (1.38) to 2.8
//! clients. The reference is a live run in the same test: the same client version runs the
//! scenario against a fresh real daemon of the recording's version. The replayed client must
//! print the same standard output and standard error (after placeholders and masking of
//! registration times and pids) and exit with the same status.
//!
//! The remote scenarios (`copy-ssh-ng`, `copy-ssh`) cross versions too: live, the client's SSH
//! store runs its own version's remote program (`nix-daemon --stdio`, `nix-store --serve
//! --write`) on a store served by a daemon of the recording's version; replayed, the remote
//! program is `nixcap replay --stdio --version-policy translate` of the capture, whose JSON
//! report is checked like the socket replayer's.
//!
//! Where a client of one version asks what the recorded client did not (`nix copy` of 2.26 and
//! later asks QueryMissing, 2.8's did not), the replayer answers from what the capture shows, as
//! the recorded daemon would; [`DERIVED_ANSWERS`] names each such op, and the report must list
//! it under `derived`.
//!
//! Tests need real Nix; without `NIXCAP_REQUIRE_NIX=1` they skip when it is missing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nixcap_replay::{store_root, DivergenceReport, Options, Server, VersionPolicy};
use nixcap_test_support::scenarios::{
    mask_volatile, scenario, FixtureRecord, Scenario, StepRecord, StoreAccess, Stores,
};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;

use super::replay::{
    replay_steps_with, stdio_divergences, stdio_replayer, stdio_report, MainStore, Replayed,
};

/// Where a client of one version asks what the recorded client of another did not, so that
/// the replayer answers from what the capture shows, as the recorded daemon would have: (recording
/// series, client series, scenario, the op asked, why). The report must list these under
/// `derived` (with the read-only queries a 2.34 client asks again, which are not listed here),
/// and the client must still print what it prints live.
const DERIVED_ANSWERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "2.8",
        "2.26",
        "copy",
        "QueryMissing",
        COPY_ASKS_QUERY_MISSING,
    ),
    (
        "2.8",
        "2.34",
        "copy",
        "QueryMissing",
        COPY_ASKS_QUERY_MISSING,
    ),
    (
        "2.8",
        "2.26",
        "copy-ssh-ng",
        "QueryMissing",
        COPY_ASKS_QUERY_MISSING_OF_A_SOURCE,
    ),
    (
        "2.8",
        "2.34",
        "copy-ssh-ng",
        "QueryMissing",
        COPY_ASKS_QUERY_MISSING_OF_A_SOURCE,
    ),
    (
        "2.8",
        "2.26",
        "copy-ssh",
        "QueryMissing",
        COPY_ASKS_QUERY_MISSING_OF_A_SOURCE,
    ),
    (
        "2.8",
        "2.34",
        "copy-ssh",
        "QueryMissing",
        COPY_ASKS_QUERY_MISSING_OF_A_SOURCE,
    ),
    (
        "2.8",
        "2.26",
        "copy-ssh",
        "QueryPathInfos",
        COPY_ASKS_QUERY_PATH_INFOS,
    ),
    (
        "2.8",
        "2.34",
        "copy-ssh",
        "QueryPathInfos",
        COPY_ASKS_QUERY_PATH_INFOS,
    ),
];

const COPY_ASKS_QUERY_MISSING: &str = "`nix copy` of Nix 2.26 and later asks the source store \
     QueryMissing of the built output before BuildPathsWithResults; Nix 2.8's did not. The \
     capture shows the output valid, and a daemon answers QueryMissing of valid paths with \
     nothing to build, substitute or fetch";

const COPY_ASKS_QUERY_PATH_INFOS: &str = "`nix copy --to ssh://` of Nix 2.26 and later asks \
     the serve protocol's QueryPathInfos of the path it is about to upload; Nix 2.8's did not. \
     The capture adds the path later (AddToStoreNar), so it is not valid yet, and the server \
     sends no infos";

const COPY_ASKS_QUERY_MISSING_OF_A_SOURCE: &str = "`nix copy` of Nix 2.26 and later asks its \
     source store QueryMissing of the path to copy; Nix 2.8's did not. The capture shows the \
     path added (AddToStore), and a daemon answers QueryMissing of valid paths with nothing to \
     build, substitute or fetch";

fn fixtures(series: &str) -> Vec<(PathBuf, FixtureRecord)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(format!("nix-{series}"));
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nixcap"))
        .filter(|p| {
            !p.file_stem()
                .is_some_and(|s| s.to_string_lossy().ends_with(".source"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let sidecar: FixtureRecord =
                serde_json::from_str(&fs::read_to_string(file.with_extension("json")).unwrap())
                    .unwrap();
            (file, sidecar)
        })
        .collect()
}

/// The scenario run live: `client` against fresh daemons of `daemon`'s version. The main store
/// of a remote scenario is an SSH store whose remote program is the client's own (`nix-daemon
/// --stdio`, `nix-store --serve --write`) on the main daemon's store.
fn live_run(client: &Peer, daemon: &Peer, scenario: &Scenario) -> Vec<StepRecord> {
    let main = Daemon::start(daemon, DaemonOptions::new());
    let source = scenario
        .needs_source
        .then(|| Daemon::start(daemon, DaemonOptions::new()));
    let remote_dir = tempfile::tempdir().unwrap();
    let main_access = match scenario.remote {
        None => StoreAccess::direct(&main),
        Some(remote) => {
            let program = remote_dir.path().join("remote-program");
            fs::write(
                &program,
                format!(
                    "#!/bin/sh\nNIX_REMOTE='{}' exec {} \"$@\"\n",
                    main.store_uri(),
                    remote.program()
                ),
            )
            .unwrap();
            fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
            StoreAccess::remote(remote, &program, &[main.state_dir().to_path_buf()])
        }
    };
    let stores = match &source {
        Some(source) => Stores::with_source(main_access, StoreAccess::direct(source)),
        None => Stores::main(main_access),
    };
    let work = tempfile::tempdir().unwrap();
    scenario
        .run(client, work.path(), &stores)
        .unwrap_or_else(|err| panic!("{err}"))
        .steps
}

/// One replayer's divergence report, as JSON (a socket replayer's, or the file a stdio
/// replayer wrote), with its text for messages.
struct Report {
    json: serde_json::Value,
    text: String,
    /// False when a stdio replayer wrote no report: its session never started.
    found: bool,
}

impl Report {
    fn of(report: &DivergenceReport) -> Report {
        Report {
            json: serde_json::to_value(report).unwrap(),
            text: report.render(),
            found: true,
        }
    }

    fn stdio(path: &Path) -> Report {
        match stdio_report(path) {
            Ok(json) => Report {
                text: format!("{json:#}"),
                json,
                found: true,
            },
            Err(err) => Report {
                json: serde_json::Value::Null,
                text: err,
                found: false,
            },
        }
    }

    fn diverged(&self) -> bool {
        !self.found || !stdio_divergences(&self.json).is_empty()
    }

    fn list(&self, name: &str) -> &[serde_json::Value] {
        self.json[name].as_array().map_or(&[], Vec::as_slice)
    }

    fn served(&self) -> u64 {
        self.json["served"].as_u64().unwrap_or(0)
    }

    fn translations(&self) -> u64 {
        self.list("translations")
            .iter()
            .filter_map(|t| t["count"].as_u64())
            .sum()
    }
}

/// Replays `file` (and its source capture) to `client`, running the steps of the live run;
/// returns what each step printed and the reports, the main store's first.
fn replay_run(
    client: &Peer,
    scenario: &Scenario,
    file: &Path,
    sidecar: &FixtureRecord,
    steps: &[StepRecord],
) -> (Vec<(usize, Replayed)>, Vec<Report>) {
    let options = || Options::default().version_policy(VersionPolicy::Translate);
    // Canonical, since a stdio replayer's capture directory is bound into chroot clients.
    let file = file.canonicalize().unwrap();
    let source = sidecar.source.as_ref().map(|record| {
        let source = Server::start_file(file.with_file_name(&record.capture), options()).unwrap();
        // As in the same-version replay: the output `nix copy` reads from the source's root
        // crossed only the destination's socket. (The remote scenarios copy a file the source
        // added itself.)
        if scenario.remote.is_none() {
            let destination =
                DecodedCapture::new(nixcap_capture::read_capture_file(&file).unwrap());
            store_root::materialise(&destination, source.store_root().unwrap()).unwrap();
        }
        source
    });
    let remote_dir = tempfile::tempdir().unwrap();
    let server = match scenario.remote {
        None => Some(Server::start_file(&file, options()).unwrap()),
        Some(_) => None,
    };
    let main = match (&server, scenario.remote) {
        (Some(server), _) => MainStore::Server(server),
        (None, remote) => stdio_replayer(
            remote.expect("a scenario without a server is remote"),
            &file,
            &["--version-policy", "translate"],
            remote_dir.path(),
        ),
    };
    let replayed = replay_steps_with(client, scenario, steps, main, source.as_ref());
    let mut reports = vec![match server {
        Some(server) => Report::of(&server.finish()),
        None => Report::stdio(&remote_dir.path().join("report.json")),
    }];
    reports.extend(source.map(|source| Report::of(&source.finish())));
    (replayed, reports)
}

fn same(live: &StepRecord, got: &Replayed) -> bool {
    live.exit_code == got.exit_code
        && mask_volatile(&live.stdout) == mask_volatile(&got.stdout)
        && mask_volatile(&live.stderr) == mask_volatile(&got.stderr)
}

fn render(reports: &[Report]) -> String {
    reports
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn cross(recorded: NixVersion, client_version: NixVersion) {
    let Some(client) = peer_or_skip(client_version) else {
        return;
    };
    let Some(daemon) = peer_or_skip(recorded) else {
        return;
    };
    let dir = |v: NixVersion| match v {
        NixVersion::V2_8 => "2.8",
        NixVersion::V2_26 => "2.26",
        _ => "2.34",
    };
    let (rec, cli) = (dir(recorded), dir(client_version));
    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for (file, sidecar) in fixtures(rec) {
        let Some(scenario) = scenario(&sidecar.scenario) else {
            continue;
        };
        let label = format!("nix-{rec}/{} to a {cli} client", sidecar.scenario);
        let live = live_run(&client, &daemon, scenario);
        let (replayed, reports) = replay_run(&client, scenario, &file, &sidecar, &live);
        let expected: Vec<&str> = DERIVED_ANSWERS
            .iter()
            .filter(|(r, c, s, _, _)| *r == rec && *c == cli && *s == sidecar.scenario)
            .map(|(_, _, _, op, _)| *op)
            .collect();
        let mut differing = Vec::new();
        for (index, got) in &replayed {
            let want = &live[*index];
            if !same(want, got) {
                differing.push(format!(
                    "step {index} `{}`:\n--- live: exit {:?}\n{}{}--- replayed: exit {:?}\n{}{}",
                    want.command_line(),
                    want.exit_code,
                    want.stdout,
                    want.stderr,
                    got.exit_code,
                    got.stdout,
                    got.stderr
                ));
            }
        }
        summary.push(format!(
            "{label}: {} step(s), {} request(s) served, {} translation(s), {}",
            replayed.len(),
            reports.iter().map(Report::served).sum::<u64>(),
            reports.iter().map(Report::translations).sum::<u64>(),
            if differing.is_empty() {
                "same as live"
            } else {
                "DIFFERENT"
            }
        ));
        if replayed.len() != live.len() {
            problems.push(format!(
                "{label}: {} of {} step(s) replayed",
                replayed.len(),
                live.len()
            ));
        }
        problems.extend(differing.iter().map(|d| format!("{label}: {d}")));
        for report in &reports {
            if report.diverged() {
                problems.push(format!("{label}: diverged:\n{}", report.text));
            }
        }
        let derived: Vec<&str> = reports
            .iter()
            .flat_map(|r| r.list("derived"))
            .filter_map(|d| d["op"].as_str())
            .collect();
        if let Some(missing) = expected.iter().find(|op| !derived.contains(op)) {
            problems.push(format!(
                "{label}: expected an answer to {missing} derived from the capture \
                 (DERIVED_ANSWERS), got {derived:?}:\n{}",
                render(&reports)
            ));
        }
        for (_, _, _, op, why) in DERIVED_ANSWERS
            .iter()
            .filter(|(r, c, s, _, _)| *r == rec && *c == cli && *s == sidecar.scenario)
        {
            summary.push(format!("  {op} answered from the capture: {why}"));
        }
        // A replay across versions says so.
        if !reports.iter().any(|r| !r.list("translated").is_empty()) {
            problems.push(format!(
                "{label}: the report lists no translated connection:\n{}",
                render(&reports)
            ));
        }
    }
    eprintln!("{}", summary.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn nix_2_8_captures_replay_to_nix_2_26_clients_like_a_2_8_daemon() {
    cross(NixVersion::V2_8, NixVersion::V2_26);
}

#[test]
fn nix_2_8_captures_replay_to_nix_2_34_clients_like_a_2_8_daemon() {
    cross(NixVersion::V2_8, NixVersion::V2_34);
}

#[test]
fn nix_2_34_captures_replay_to_nix_2_8_clients_like_a_2_34_daemon() {
    cross(NixVersion::V2_34, NixVersion::V2_8);
}

/// Served to a 2.8 client, a 2.34 build's BuildPathsWithResults loses the CPU times of 1.37
/// and the handshake its trust field of 1.35, and the report says so.
#[test]
fn the_report_lists_the_fields_dropped_for_an_older_client() {
    let Some(client) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let (file, sidecar) = fixtures("2.34")
        .into_iter()
        .find(|(_, s)| s.scenario == "build")
        .unwrap();
    let scenario = scenario("build").unwrap();
    let (replayed, reports) =
        replay_run(&client, scenario, &file, &sidecar, &sidecar_steps(&sidecar));
    let report = &reports[0];
    assert_eq!(replayed[0].1.exit_code, Some(0), "{}", replayed[0].1.stderr);
    assert!(!report.diverged(), "{}", report.text);
    let translated = report.list("translated");
    assert_eq!(translated.len(), 1, "{}", report.text);
    assert_eq!(translated[0]["negotiated"], "1.34");
    let trust = report
        .list("translations")
        .iter()
        .find(|t| t["subject"] == "handshake" && t["field"] == "trust")
        .unwrap_or_else(|| panic!("{}", report.text));
    assert_eq!(trust["action"], "dropped");
    assert!(report
        .text
        .contains("1.38 → 1.34: handshake trust: dropped"));
}

/// The main-store steps of a sidecar as a 2.8 client runs them (same command lines).
fn sidecar_steps(sidecar: &FixtureRecord) -> Vec<StepRecord> {
    sidecar.run.steps.clone()
}

/// The default policy still refuses a client of another version, naming the recorded one.
#[test]
fn the_default_policy_refuses_another_version() {
    let Some(client) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    let (file, _) = fixtures("2.34")
        .into_iter()
        .find(|(_, s)| s.scenario == "add")
        .unwrap();
    let server = Server::start_file(&file, Options::default()).unwrap();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("hello.txt"), "hello\n").unwrap();
    let output = client
        .command("nix-store")
        .args(["--add", "hello.txt"])
        .current_dir(work.path())
        .remote(server.store_uri())
        .bind_dir(server.socket_path().parent().unwrap())
        .output()
        .unwrap();
    let report = server.finish();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0));
    assert!(stderr.contains("protocol 1.38"), "{stderr}");
    assert_eq!(report.refused.len(), 1, "{}", report.render());
}
