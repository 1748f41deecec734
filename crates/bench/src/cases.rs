//! The benchmark cases. Every case runs each variant several times,
//! interleaved (round 1: direct, nixcap, socat, socat -v; round 2 starting
//! one later; …), with a fresh relay process per run, and reports medians.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_capture::{read_index, FooterStatus};
use nixcap_test_support::scenarios::{pseudo_random_bytes, scenario};
use nixcap_test_support::{peers, Daemon, DaemonOptions, NixVersion, Peer};

use crate::client::{pump, PumpDirection, WireClient};
use crate::error::{Error, IoContext, Result};
use crate::relay::{RecorderProgram, Relay, Tools, Variant};
use crate::report::{Row, Skipped, Unit};
use crate::stats::quantile;
use crate::upstream::{Kind, Server, RANDOM_BLOCK};

const MIB: u64 = 1 << 20;

/// The most bytes a bulk case sends through `socat -v` (see [`Plan::variant_len`]).
pub const SOCAT_VERBOSE_BULK: u64 = 32 * MIB;

/// Which cases to run and how big.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Small sizes, for a smoke run.
    pub quick: bool,
    /// Interleaved runs per case.
    pub runs: usize,
    /// Where captures and results go.
    pub out: PathBuf,
    /// Skip the cases that need a real Nix.
    pub synthetic_only: bool,
    /// The programs to run.
    pub tools: Tools,
}

impl Plan {
    fn pump_len(&self) -> u64 {
        if self.quick {
            16 * MIB
        } else {
            1024 * MIB
        }
    }

    fn warmup_len(&self) -> u64 {
        if self.quick {
            MIB
        } else {
            10 * MIB
        }
    }

    fn round_trips(&self) -> usize {
        if self.quick {
            1_000
        } else {
            10_000
        }
    }

    fn add_len(&self) -> u64 {
        if self.quick {
            16 * MIB
        } else {
            256 * MIB
        }
    }

    /// How many bytes a bulk case moves through `variant`: `socat -v` runs
    /// at about 10 MB/s, so it gets at most [`SOCAT_VERBOSE_BULK`] bytes.
    fn variant_len(&self, variant: Variant, len: u64) -> u64 {
        if variant == Variant::SocatVerbose {
            len.min(SOCAT_VERBOSE_BULK)
        } else {
            len
        }
    }

    fn capture_path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

/// What the cases produce, gathered as they run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Table rows.
    pub rows: Vec<Row>,
    /// Cases that did not run.
    pub skipped: Vec<Skipped>,
    /// The Nix version of the real daemon, if one ran.
    pub nix: Option<String>,
}

impl Outcome {
    fn skip(&mut self, case: &str, reason: impl Into<String>) {
        let reason = reason.into();
        eprintln!("nixcap-bench: skipping {case}: {reason}");
        self.skipped.push(Skipped {
            case: case.to_owned(),
            reason,
        });
    }
}

/// Human size for case names: `1 GiB`, `256 MiB`.
fn size_name(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes % (1024 * MIB) == 0 {
        format!("{} GiB", bytes / (1024 * MIB))
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// Runs every case of `plan`.
pub fn run_all(plan: &Plan) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    std::fs::create_dir_all(&plan.out).doing(|| format!("creating {}", plan.out.display()))?;
    pump_case(plan, &mut outcome)?;
    let fake = Server::start(Kind::FakeDaemon)?;
    latency_case(plan, &mut outcome, fake.path(), "synthetic daemon")?;
    drop(fake);
    if plan.synthetic_only {
        for case in [
            "latency (Nix 2.8)",
            "bulk add (Nix 2.8)",
            "decode",
            "replay",
        ] {
            outcome.skip(case, "--synthetic-only");
        }
        return Ok(outcome);
    }
    let peer = match peers().get(NixVersion::V2_8) {
        Ok(peer) => peer.clone(),
        Err(reason) => {
            let reason = format!(
                "Nix 2.8 is not usable ({reason}); `cargo xtask nix-peers install` installs it"
            );
            for case in [
                "latency (Nix 2.8)",
                "bulk add (Nix 2.8)",
                "decode",
                "replay",
            ] {
                outcome.skip(case, reason.clone());
            }
            return Ok(outcome);
        }
    };
    outcome.nix = Some(peer.nix_version().to_owned());
    let daemon = Daemon::try_start(&peer, DaemonOptions::new())?;
    latency_case(plan, &mut outcome, daemon.socket_path(), "Nix 2.8 daemon")?;
    let add_capture = add_case(plan, &mut outcome, &peer, &daemon)?;
    drop(daemon);
    match (&plan.tools.nixcap, add_capture) {
        (Some(nixcap), Some(capture)) => decode_case(plan, &mut outcome, nixcap, &capture)?,
        (None, _) => outcome.skip("decode", "no `nixcap` binary given (--nixcap)"),
        (_, None) => outcome.skip("decode", "no capture of the bulk add was recorded"),
    }
    match &plan.tools.nixcap {
        Some(nixcap) => replay_case(plan, &mut outcome, &peer, nixcap)?,
        None => outcome.skip("replay", "no `nixcap` binary given (--nixcap)"),
    }
    Ok(outcome)
}

/// Reports one measurement on stderr as it is taken.
fn progress(case: &str, round: usize, runs: usize, variant: Variant, value: &str) {
    eprintln!(
        "nixcap-bench: {case}, run {}/{runs}, {}: {value}",
        round + 1,
        variant.label()
    );
}

/// Samples per variant, in run order.
type Samples = BTreeMap<Variant, Vec<f64>>;

fn push(samples: &mut Samples, variant: Variant, value: f64) {
    samples.entry(variant).or_default().push(value);
}

/// The capture's file size divided by the bytes it recorded, from its footer.
fn capture_ratio(path: &Path) -> Result<(f64, u64)> {
    let file = File::open(path).doing(|| format!("opening {}", path.display()))?;
    let index = read_index(file).map_err(|source| Error::Capture {
        path: path.to_path_buf(),
        source,
    })?;
    let FooterStatus::Present(footer) = index.footer else {
        return Err(Error::Program {
            program: "nixcap record".to_owned(),
            message: format!("left {} without a footer", path.display()),
        });
    };
    let raw = footer.bytes_client_to_server + footer.bytes_server_to_client;
    if raw == 0 {
        return Err(Error::Program {
            program: "nixcap record".to_owned(),
            message: format!("recorded no data in {}", path.display()),
        });
    }
    Ok((index.file_len as f64 / raw as f64, raw))
}

/// Fills in a throughput row's ratio (nixcap ÷ direct) and target
/// (≥ 0.95 of direct and at least socat).
fn throughput_target(row: &mut Row) {
    let (Some(direct), Some(nixcap)) = (row.value(Variant::Direct), row.value(Variant::Nixcap))
    else {
        return;
    };
    let ratio = nixcap / direct;
    row.ratio = Some(ratio);
    row.ratio_text = format!("{ratio:.3}");
    row.target = "nixcap ÷ direct ≥ 0.95; nixcap ≥ socat".to_owned();
    let beats_socat = row
        .value(Variant::Socat)
        .is_none_or(|socat| nixcap >= socat);
    row.met = Some(ratio >= 0.95 && beats_socat);
}

/// Fills in a latency row's added latency (nixcap − direct) and target.
fn latency_target(row: &mut Row, max_added: f64) {
    let (Some(direct), Some(nixcap)) = (row.value(Variant::Direct), row.value(Variant::Nixcap))
    else {
        return;
    };
    let added = nixcap - direct;
    row.ratio = Some(added);
    row.ratio_text = format!("{added:+.1} µs");
    row.target = format!("added ≤ {max_added:.0} µs; nixcap ≤ socat");
    let beats_socat = row
        .value(Variant::Socat)
        .is_none_or(|socat| nixcap <= socat);
    row.met = Some(added <= max_added && beats_socat);
}

fn nixcap_only(case: String, unit: Unit, values: Vec<f64>) -> Row {
    let mut samples = Samples::new();
    if !values.is_empty() {
        samples.insert(Variant::Nixcap, values);
    }
    Row::new(case, unit, samples)
}

fn upper_bound(row: &mut Row, max: f64, target: String) {
    row.target = target;
    row.met = row.value(Variant::Nixcap).map(|v| v <= max);
}

fn pump_case(plan: &Plan, outcome: &mut Outcome) -> Result<()> {
    let server = Server::start(Kind::Pump)?;
    let random = pseudo_random_bytes(RANDOM_BLOCK, 0xc0ffee);
    let len = plan.pump_len();
    let warmup = plan.warmup_len();
    let variants = plan.tools.variants();
    let capture = plan.capture_path("pump.nixcap");
    let mut rss_small = Vec::new();
    let mut rss_large = Vec::new();
    let mut ratios = Vec::new();
    for (direction, name) in [
        (PumpDirection::Upload, "client → daemon"),
        (PumpDirection::Download, "daemon → client"),
    ] {
        let mut samples = Samples::new();
        for round in 0..plan.runs {
            for variant in Variant::rotation(round, &variants) {
                let len = plan.variant_len(variant, len);
                let relay = Relay::start(variant, server.path(), &plan.tools, &capture)?;
                // The warm-up starts half-way through the random block, the
                // timed transfer at its start: no bytes repeat within a frame.
                pump(
                    relay.socket(),
                    direction,
                    warmup,
                    RANDOM_BLOCK as u64 / 2,
                    &random,
                )?;
                let small = relay.peak_rss_bytes();
                let elapsed = pump(relay.socket(), direction, len, 0, &random)?;
                let large = relay.peak_rss_bytes();
                let stopped = relay.stop()?;
                let rate = len as f64 / elapsed.as_secs_f64() / 1e6;
                progress(
                    &format!("pump {name}"),
                    round,
                    plan.runs,
                    variant,
                    &format!("{rate:.0} MB/s"),
                );
                push(&mut samples, variant, rate);
                if variant == Variant::Nixcap {
                    rss_small.extend(small.map(|b| b as f64 / MIB as f64));
                    rss_large.extend(large.map(|b| b as f64 / MIB as f64));
                }
                if let Some(path) = stopped.capture {
                    ratios.push(capture_ratio(&path)?.0);
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let mut row = Row::new(
            format!(
                "bulk: pump {} {name} (synthetic upstream; socat -v: {})",
                size_name(len),
                size_name(plan.variant_len(Variant::SocatVerbose, len))
            ),
            Unit::MegabytesPerSecond,
            samples,
        );
        throughput_target(&mut row);
        outcome.rows.push(row);
    }
    let mut row = nixcap_only(
        format!("memory: recorder peak RSS after {}", size_name(warmup)),
        Unit::Mebibytes,
        rss_small,
    );
    upper_bound(&mut row, 32.0, "≤ 32 MiB".to_owned());
    outcome.rows.push(row);
    let small_median = outcome.rows.last().and_then(|r| r.value(Variant::Nixcap));
    let mut row = nixcap_only(
        format!("memory: recorder peak RSS after {} more", size_name(len)),
        Unit::Mebibytes,
        rss_large,
    );
    row.target = "≤ 32 MiB, flat".to_owned();
    if let (Some(small), Some(large)) = (small_median, row.value(Variant::Nixcap)) {
        row.ratio = Some(large / small);
        row.ratio_text = format!("{:.2} × the {} figure", large / small, size_name(warmup));
        row.met = Some(large <= 32.0);
    }
    outcome.rows.push(row);
    let mut row = nixcap_only(
        "capture size: file ÷ raw, random bytes (pump)".to_owned(),
        Unit::Ratio,
        ratios,
    );
    upper_bound(&mut row, 1.01, "≤ 1.01".to_owned());
    outcome.rows.push(row);
    Ok(())
}

fn latency_case(plan: &Plan, outcome: &mut Outcome, upstream: &Path, label: &str) -> Result<()> {
    let variants = plan.tools.variants();
    let count = plan.round_trips();
    let warmup = count / 20;
    let capture = plan.capture_path("latency.nixcap");
    let mut p50 = Samples::new();
    let mut p99 = Samples::new();
    let mut ratios = Vec::new();
    for round in 0..plan.runs {
        for variant in Variant::rotation(round, &variants) {
            let relay = Relay::start(variant, upstream, &plan.tools, &capture)?;
            let mut client = WireClient::connect(relay.socket())?;
            let micros = client.is_valid_path_loop(warmup, count)?;
            drop(client);
            let stopped = relay.stop()?;
            let median = quantile(&micros, 0.50).unwrap_or(f64::NAN);
            progress(
                &format!("latency ({label})"),
                round,
                plan.runs,
                variant,
                &format!("p50 {median:.1} µs"),
            );
            push(&mut p50, variant, median);
            push(
                &mut p99,
                variant,
                quantile(&micros, 0.99).unwrap_or(f64::NAN),
            );
            if let Some(path) = stopped.capture {
                ratios.push(capture_ratio(&path)?.0);
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let mut row = Row::new(
        format!("latency p50: {count} × IsValidPath ({label})"),
        Unit::Micros,
        p50,
    );
    latency_target(&mut row, 15.0);
    outcome.rows.push(row);
    let mut row = Row::new(
        format!("latency p99: {count} × IsValidPath ({label})"),
        Unit::Micros,
        p99,
    );
    latency_target(&mut row, 100.0);
    outcome.rows.push(row);
    let mut row = nixcap_only(
        format!(
            "capture size: file ÷ raw, handshake + {} × IsValidPath ({label})",
            count + warmup
        ),
        Unit::Ratio,
        ratios,
    );
    upper_bound(&mut row, 0.25, "≤ 0.25".to_owned());
    outcome.rows.push(row);
    Ok(())
}

/// Adds a fresh random file per run through each variant; returns a capture
/// of one recorded add, kept for the decode case.
fn add_case(
    plan: &Plan,
    outcome: &mut Outcome,
    peer: &Peer,
    daemon: &Daemon,
) -> Result<Option<PathBuf>> {
    let variants = plan.tools.variants();
    let len = plan.add_len();
    let work = tempfile::Builder::new()
        .prefix("nixcap-bench-add")
        .tempdir()
        .doing(|| "creating a work directory".to_owned())?;
    let capture = plan.capture_path("add.nixcap");
    let mut samples = Samples::new();
    let mut rss = Vec::new();
    let mut ratios = Vec::new();
    let mut kept = None;
    for round in 0..plan.runs {
        for (i, variant) in Variant::rotation(round, &variants).into_iter().enumerate() {
            // Different bytes every run, so that the daemon stores every add.
            let file = work.path().join(format!("blob-{round}-{i}"));
            let seed = 0xadd0_0000 + (round * 16 + i) as u64;
            let len = plan.variant_len(variant, len);
            std::fs::write(&file, pseudo_random_bytes(len as usize, seed))
                .doing(|| format!("writing {}", file.display()))?;
            let relay = Relay::start(variant, daemon.socket_path(), &plan.tools, &capture)?;
            let uri = daemon.uri_via(relay.socket());
            let start = Instant::now();
            let output = peer
                .command("nix-store")
                .arg("--add")
                .arg(&file)
                .remote(uri)
                .output()?;
            let elapsed = start.elapsed();
            let peak = relay.peak_rss_bytes();
            let stopped = relay.stop()?;
            if !output.status.success() {
                return Err(Error::Program {
                    program: "nix-store --add".to_owned(),
                    message: format!(
                        "failed through {} ({}): {}",
                        variant.label(),
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    ),
                });
            }
            let rate = len as f64 / elapsed.as_secs_f64() / 1e6;
            progress(
                "nix-store --add",
                round,
                plan.runs,
                variant,
                &format!("{rate:.0} MB/s"),
            );
            push(&mut samples, variant, rate);
            if variant == Variant::Nixcap {
                rss.extend(peak.map(|b| b as f64 / MIB as f64));
            }
            if let Some(path) = stopped.capture {
                ratios.push(capture_ratio(&path)?.0);
                let keep = plan.capture_path("add-kept.nixcap");
                std::fs::rename(&path, &keep).doing(|| format!("keeping {}", path.display()))?;
                kept = Some(keep);
            }
            let _ = std::fs::remove_file(&file);
            // Free the store again (untimed); the path is deletable once the
            // adding client has disconnected.
            let store_path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let _ = peer
                .command("nix-store")
                .arg("--delete")
                .arg(&store_path)
                .store(daemon)
                .output();
        }
    }
    let mut row = Row::new(
        format!(
            "bulk: nix-store --add {} random (Nix 2.8; socat -v: {})",
            size_name(len),
            size_name(plan.variant_len(Variant::SocatVerbose, len))
        ),
        Unit::MegabytesPerSecond,
        samples,
    );
    throughput_target(&mut row);
    outcome.rows.push(row);
    let mut row = nixcap_only(
        format!(
            "memory: recorder peak RSS, nix-store --add {}",
            size_name(len)
        ),
        Unit::Mebibytes,
        rss,
    );
    upper_bound(&mut row, 32.0, "≤ 32 MiB".to_owned());
    outcome.rows.push(row);
    let mut row = nixcap_only(
        format!("capture size: file ÷ raw, random NAR ({})", size_name(len)),
        Unit::Ratio,
        ratios,
    );
    upper_bound(&mut row, 1.01, "≤ 1.01".to_owned());
    outcome.rows.push(row);
    Ok(kept)
}

fn decode_case(plan: &Plan, outcome: &mut Outcome, nixcap: &Path, capture: &Path) -> Result<()> {
    let (_, raw) = capture_ratio(capture)?;
    let mut rates = Vec::new();
    for _ in 0..plan.runs {
        let start = Instant::now();
        let status = Command::new(nixcap)
            .arg("show")
            .arg("--json")
            .arg(capture)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .doing(|| "running nixcap show --json".to_owned())?;
        let elapsed = start.elapsed();
        if !status.success() {
            return Err(Error::Program {
                program: "nixcap show --json".to_owned(),
                message: format!("failed on {} ({status})", capture.display()),
            });
        }
        rates.push(raw as f64 / elapsed.as_secs_f64() / 1e6);
    }
    let mut row = nixcap_only(
        format!(
            "decode: nixcap show --json, {:.0} MB raw stream → /dev/null",
            raw as f64 / 1e6
        ),
        Unit::MegabytesPerSecond,
        rates,
    );
    row.target = "≥ 500 MB/s".to_owned();
    row.met = row.value(Variant::Nixcap).map(|v| v >= 500.0);
    outcome.rows.push(row);
    Ok(())
}

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

fn replay_case(plan: &Plan, outcome: &mut Outcome, peer: &Peer, nixcap: &Path) -> Result<()> {
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

/// Whether `recorder` is the real CLI (for the notes).
pub fn recorder_is_cli(tools: &Tools) -> bool {
    matches!(tools.recorder, RecorderProgram::Cli(_))
}
