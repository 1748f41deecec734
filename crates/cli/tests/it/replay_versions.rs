//! Replaying a capture to a client of another Nix version (`--version-policy translate`).
//!
//! Each committed fixture of one Nix version is served to real clients of another: the 2.8
//! captures (protocol 1.34) to 2.26 and 2.34 clients (1.38), the 2.34 captures (1.38) to 2.8
//! clients. The reference is a live run in the same test: the same client version runs the
//! scenario against a fresh real daemon of the recording's version. The replayed client must
//! print the same standard output and standard error (after placeholders and masking of
//! registration times and pids) and exit with the same status.
//!
//! Where Nix itself behaves differently across versions, so that the capture cannot hold what
//! the other client asks, the test names the op in [`CLIENT_DIFFERENCES`] and asserts that the
//! divergence report names it as not in the capture; every step before the first difference
//! must still match the live run.
//!
//! Tests need real Nix; without `NIXCAP_REQUIRE_NIX=1` they skip when it is missing.

use std::fs;
use std::path::{Path, PathBuf};

use nixcap_replay::{store_root, DivergenceReport, Options, Server, VersionPolicy};
use nixcap_test_support::scenarios::{
    mask_volatile, scenario, FixtureRecord, Scenario, StepRecord, StoreAccess, Stores,
    REMOTE_SCENARIOS,
};
use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion, Peer};
use nixcap_view::DecodedCapture;
use nixcap_wire::translate::Action;

use super::replay::{replay_steps_on, Replayed};

/// A place where a client of one version asks what a client of the recording's version did
/// not, so that the capture holds no answer: (recording series, client series, scenario, the
/// op asked, why).
const CLIENT_DIFFERENCES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "2.8",
        "2.26",
        "copy",
        "QueryMissing",
        "`nix copy` of Nix 2.26 and later asks the source store QueryMissing before \
         BuildPathsWithResults; Nix 2.8's did not, and the 2.8 capture's only QueryMissing \
         of that output was asked before it was built (willBuild 1), a different answer",
    ),
    (
        "2.8",
        "2.34",
        "copy",
        "QueryMissing",
        "`nix copy` of Nix 2.26 and later asks the source store QueryMissing before \
         BuildPathsWithResults; Nix 2.8's did not, and the 2.8 capture's only QueryMissing \
         of that output was asked before it was built (willBuild 1), a different answer",
    ),
];

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
        // The remote scenarios' main store is an SSH store whose remote program is
        // `nixcap replay --stdio`; crossing versions is tested for the daemon socket only.
        .filter(|(_, sidecar)| {
            !REMOTE_SCENARIOS
                .iter()
                .any(|remote| remote.name == sidecar.scenario)
        })
        .collect()
}

/// The scenario run live: `client` against fresh daemons of `daemon`'s version.
fn live_run(client: &Peer, daemon: &Peer, scenario: &Scenario) -> Vec<StepRecord> {
    let main = Daemon::start(daemon, DaemonOptions::new());
    let source = scenario
        .needs_source
        .then(|| Daemon::start(daemon, DaemonOptions::new()));
    let stores = match &source {
        Some(source) => {
            Stores::with_source(StoreAccess::direct(&main), StoreAccess::direct(source))
        }
        None => Stores::main(StoreAccess::direct(&main)),
    };
    let work = tempfile::tempdir().unwrap();
    scenario
        .run(client, work.path(), &stores)
        .unwrap_or_else(|err| panic!("{err}"))
        .steps
}

/// Replays `file` (and its source capture) to `client`, running the steps of the live run.
fn replay_run(
    client: &Peer,
    scenario: &Scenario,
    file: &Path,
    sidecar: &FixtureRecord,
    steps: &[StepRecord],
) -> (
    Vec<(usize, Replayed)>,
    DivergenceReport,
    Option<DivergenceReport>,
) {
    let options = || Options::default().version_policy(VersionPolicy::Translate);
    let source = sidecar.source.as_ref().map(|record| {
        let source = Server::start_file(file.with_file_name(&record.capture), options()).unwrap();
        // As in the same-version replay: the output `nix copy` reads from the source's root
        // crossed only the destination's socket.
        let destination = DecodedCapture::new(nixcap_capture::read_capture_file(file).unwrap());
        store_root::materialise(&destination, source.store_root().unwrap()).unwrap();
        source
    });
    let server = Server::start_file(file, options()).unwrap();
    let replayed = replay_steps_on(client, scenario, steps, &server, source.as_ref());
    (replayed, server.finish(), source.map(Server::finish))
}

fn same(live: &StepRecord, got: &Replayed) -> bool {
    live.exit_code == got.exit_code
        && mask_volatile(&live.stdout) == mask_volatile(&got.stdout)
        && mask_volatile(&live.stderr) == mask_volatile(&got.stderr)
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
        let (replayed, report, source_report) =
            replay_run(&client, scenario, &file, &sidecar, &live);
        let reports: Vec<&DivergenceReport> = std::iter::once(&report)
            .chain(source_report.as_ref())
            .collect();
        let expected = CLIENT_DIFFERENCES
            .iter()
            .find(|(r, c, s, _, _)| *r == rec && *c == cli && *s == sidecar.scenario);
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
        let translations: u64 = reports
            .iter()
            .flat_map(|r| &r.translations)
            .map(|t| t.count)
            .sum();
        summary.push(format!(
            "{label}: {} step(s), {} request(s) served, {} translation(s), {}",
            replayed.len(),
            reports.iter().map(|r| r.served).sum::<u64>(),
            translations,
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
        match expected {
            None => {
                problems.extend(differing.into_iter().map(|d| format!("{label}: {d}")));
                for report in &reports {
                    if report.diverged() {
                        problems.push(format!("{label}: diverged:\n{}", report.render()));
                    }
                }
            }
            Some((_, _, _, op, why)) => {
                let named = reports
                    .iter()
                    .any(|r| r.unmatched.iter().any(|u| u.op == *op));
                if !named {
                    problems.push(format!(
                        "{label}: expected the report to name {op} ({why}) as not in the \
                         capture:\n{}",
                        reports
                            .iter()
                            .map(|r| r.render())
                            .collect::<Vec<_>>()
                            .join("\n")
                    ));
                }
                if differing.is_empty() {
                    problems.push(format!(
                        "{label}: listed as differing ({op}: {why}) but the replay matched the \
                         live run; remove it from CLIENT_DIFFERENCES"
                    ));
                }
            }
        }
        // A replay across versions says so.
        let translated = reports.iter().any(|r| !r.translated.is_empty());
        if !translated {
            problems.push(format!(
                "{label}: the report lists no translated connection:\n{}",
                report.render()
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
    let (replayed, report, _) =
        replay_run(&client, scenario, &file, &sidecar, &sidecar_steps(&sidecar));
    assert_eq!(replayed[0].1.exit_code, Some(0), "{}", replayed[0].1.stderr);
    assert!(!report.diverged(), "{}", report.render());
    assert_eq!(report.translated.len(), 1, "{}", report.render());
    assert_eq!(report.translated[0].negotiated, "1.34");
    let trust = report
        .translations
        .iter()
        .find(|t| t.subject == "handshake" && t.field == "trust")
        .unwrap_or_else(|| panic!("{}", report.render()));
    assert_eq!(trust.action, Action::Dropped);
    assert!(report
        .render()
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
