//! The replay case: live builds against fresh stores versus replays of a
//! recording of the same build, interleaved.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_test_support::{Daemon, DaemonOptions, Peer};

use nixcap_test_support::scenarios::scenario;

use super::{Outcome, Plan, Samples};
use crate::error::{Error, IoContext, Result};
use crate::relay::{Relay, Variant};
use crate::report::{Row, Unit};

/// How long `nixcap replay` may take to start listening.
const REPLAY_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A derivation whose builder does about a second of work in the daemon's
/// shell (no tools needed), so that the live build costs what real builds
/// cost rather than only the client's start-up.
const BUSY_BUILD_NIX: &str = r#"derivation {
  name = "busy";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "i=0; while [ $i -lt 400000 ]; do i=$((i + 1)); done; echo $i > $out" ];
}
"#;

pub(super) fn replay_case(
    plan: &Plan,
    outcome: &mut Outcome,
    peer: &Peer,
    nixcap: &Path,
) -> Result<()> {
    replay_build_case(
        plan,
        outcome,
        peer,
        nixcap,
        None,
        "replay: nix-build of a trivial derivation (direct = live build, nixcap = `nixcap replay`)",
    )?;
    replay_build_case(
        plan,
        outcome,
        peer,
        nixcap,
        Some(BUSY_BUILD_NIX),
        "replay: nix-build of a derivation doing ~1 s of work (direct = live build, nixcap = `nixcap replay`)",
    )
}

/// Records `nix-build build.nix` once, then times live builds against fresh
/// stores and replays of the recording, interleaved. `build_nix` replaces
/// the `build` scenario's expression when given.
fn replay_build_case(
    plan: &Plan,
    outcome: &mut Outcome,
    peer: &Peer,
    nixcap: &Path,
    build_nix: Option<&str>,
    label: &str,
) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("nixcap-bench-build")
        .tempdir()
        .doing(|| "creating a work directory".to_owned())?;
    let Some(build) = scenario("build") else {
        outcome.skip("replay", "the `build` scenario is not defined");
        return Ok(());
    };
    build
        .write_inputs(work.path())
        .map_err(|e| Error::Program {
            program: "scenario build".to_owned(),
            message: e.to_string(),
        })?;
    if let Some(text) = build_nix {
        std::fs::write(work.path().join("build.nix"), text)
            .doing(|| "writing build.nix".to_owned())?;
    }
    let nix_build = |uri: String| -> Result<Duration> {
        let start = Instant::now();
        let output = peer
            .command("nix-build")
            .args(["--no-out-link", "build.nix"])
            .current_dir(work.path())
            .remote(uri)
            .output()?;
        let elapsed = start.elapsed();
        if output.status.success() {
            Ok(elapsed)
        } else {
            Err(Error::Program {
                program: "nix-build".to_owned(),
                message: format!(
                    "failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    };
    // Record the build once, through the recorder, against a fresh store.
    let capture = plan.capture_path(if build_nix.is_some() {
        "busy-build.nixcap"
    } else {
        "build.nixcap"
    });
    {
        let daemon = Daemon::try_start(peer, DaemonOptions::new())?;
        let relay = Relay::start(Variant::Nixcap, daemon.socket_path(), &plan.tools, &capture)?;
        nix_build(daemon.uri_via(relay.socket()))?;
        relay.stop()?;
    }
    let mut live = Vec::new();
    let mut replayed = Vec::new();
    let mut replay_failure = None;
    for round in 0..plan.runs {
        for replay_first in [round % 2 == 1, round % 2 == 0] {
            if replay_first {
                match replay_once(nixcap, &capture, &nix_build) {
                    Ok(elapsed) => replayed.push(elapsed.as_secs_f64()),
                    Err(error) => replay_failure = Some(error.to_string()),
                }
            } else {
                // A fresh store every time, so that the build really runs.
                let daemon = Daemon::try_start(peer, DaemonOptions::new())?;
                live.push(nix_build(daemon.store_uri())?.as_secs_f64());
            }
        }
    }
    if let Some(failure) = replay_failure {
        outcome.skip(
            "replay",
            format!("`nixcap replay` did not serve the build: {failure}"),
        );
        return Ok(());
    }
    let mut samples = Samples::new();
    samples.insert(Variant::Direct, live);
    samples.insert(Variant::Nixcap, replayed);
    let mut row = Row::new(label, Unit::Seconds, samples);
    if let (Some(live), Some(replay)) = (row.value(Variant::Direct), row.value(Variant::Nixcap)) {
        let speedup = live / replay;
        row.ratio = Some(speedup);
        row.ratio_text = format!("{speedup:.1}× faster");
        row.met = Some(speedup >= 10.0);
    }
    row.target = "replay ≥ 10× faster".to_owned();
    outcome.rows.push(row);
    Ok(())
}

/// Serves `capture` with `nixcap replay` and times one client build against it.
fn replay_once(
    nixcap: &Path,
    capture: &Path,
    nix_build: &dyn Fn(String) -> Result<Duration>,
) -> Result<Duration> {
    let dir = tempfile::Builder::new()
        .prefix("nxr")
        .tempdir()
        .doing(|| "creating a replay directory".to_owned())?;
    let socket = dir.path().join("s");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).doing(|| format!("creating {}", root.display()))?;
    let mut child = Command::new(nixcap)
        .arg("replay")
        .arg(capture)
        .arg("--listen")
        .arg(&socket)
        .arg("--store-root")
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .doing(|| "starting nixcap replay".to_owned())?;
    let deadline = Instant::now() + REPLAY_START_TIMEOUT;
    while !socket.exists() {
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Program {
                program: "nixcap replay".to_owned(),
                message: "did not start listening".to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let result = nix_build(format!(
        "unix://{}?root={}",
        socket.display(),
        root.display()
    ));
    // Stop the replayer we started (by its pid) and reap it.
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(child.try_wait(), Ok(Some(_))) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    result
}
