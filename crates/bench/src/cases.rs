//! The benchmark cases. Every case runs each variant several times,
//! interleaved (round 1: direct, nixcap, socat, socat -v; round 2 starting
//! one later; …), with a fresh relay process per run, and reports medians.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nixcap_capture::{read_index, FooterStatus};
use nixcap_test_support::scenarios::pseudo_random_bytes;
use nixcap_test_support::{peers, Daemon, DaemonOptions, NixVersion, Peer};

use crate::client::{pump, PumpDirection, WireClient};
use crate::error::{Error, IoContext, Result};
use crate::relay::{RecorderProgram, Relay, Tools, Variant};
use crate::report::{Row, Skipped, Unit};
use crate::stats::quantile;
use crate::upstream::{Kind, Server, RANDOM_BLOCK};

mod replay;
mod rotation;

use replay::replay_case;
use rotation::{flight_case, rotation_case};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

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
    /// Only these cases (names from [`CASES`]); `None` runs them all.
    pub only: Option<Vec<String>>,
}

/// The names `--cases` accepts, in the order the cases run.
pub const CASES: [&str; 9] = [
    "pump",
    "latency-synthetic",
    "rotation",
    "flight",
    "latency-nix",
    "add",
    "ops",
    "decode",
    "replay",
];

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

    /// Paths queried, one QueryPathInfo each, by the many-small-ops case.
    fn ops_paths(&self) -> usize {
        if self.quick {
            200
        } else {
            2_000
        }
    }

    /// Whether case `name` (one of [`CASES`]) is to run.
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|c| c == name))
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
    if plan.wants("pump") {
        pump_case(plan, &mut outcome)?;
    }
    if plan.wants("latency-synthetic") {
        let fake = Server::start(Kind::FakeDaemon)?;
        latency_case(
            plan,
            &mut outcome,
            fake.path(),
            "synthetic daemon",
            (15.0, 100.0),
        )?;
    }
    if plan.wants("rotation") {
        rotation_case(plan, &mut outcome)?;
    }
    if plan.wants("flight") {
        flight_case(plan, &mut outcome)?;
    }
    let nix_cases = ["latency-nix", "add", "ops", "decode", "replay"];
    let wanted: Vec<&str> = nix_cases.into_iter().filter(|c| plan.wants(c)).collect();
    if wanted.is_empty() {
        return Ok(outcome);
    }
    if plan.synthetic_only {
        for case in wanted {
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
            for case in wanted {
                outcome.skip(case, reason.clone());
            }
            return Ok(outcome);
        }
    };
    outcome.nix = Some(peer.nix_version().to_owned());
    let daemon = Daemon::try_start(&peer, DaemonOptions::new())?;
    if plan.wants("latency-nix") {
        latency_case(
            plan,
            &mut outcome,
            daemon.socket_path(),
            "Nix 2.8 daemon",
            (8.0, 50.0),
        )?;
    }
    let add_capture = if plan.wants("add") || plan.wants("decode") {
        add_case(plan, &mut outcome, &peer, &daemon)?
    } else {
        None
    };
    if plan.wants("ops") {
        ops_case(plan, &mut outcome, &peer, &daemon)?;
    }
    drop(daemon);
    if plan.wants("decode") {
        match (&plan.tools.nixcap, add_capture) {
            (Some(nixcap), Some(capture)) => decode_case(plan, &mut outcome, nixcap, &capture)?,
            (None, _) => outcome.skip("decode", "no `nixcap` binary given (--nixcap)"),
            (_, None) => outcome.skip("decode", "no capture of the bulk add was recorded"),
        }
    }
    if plan.wants("replay") {
        match &plan.tools.nixcap {
            Some(nixcap) => replay_case(plan, &mut outcome, &peer, nixcap)?,
            None => outcome.skip("replay", "no `nixcap` binary given (--nixcap)"),
        }
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

/// Fills in a throughput row's ratio (nixcap ÷ direct) and target: at
/// least socat's throughput, and at least `min_of_direct` of direct's.
fn throughput_target(row: &mut Row, min_of_direct: Option<f64>) {
    let (Some(direct), Some(nixcap)) = (row.value(Variant::Direct), row.value(Variant::Nixcap))
    else {
        return;
    };
    let ratio = nixcap / direct;
    row.ratio = Some(ratio);
    let socat = row.value(Variant::Socat);
    row.ratio_text = match socat {
        Some(socat) => format!("{ratio:.3} (÷ socat {:.2})", nixcap / socat),
        None => format!("{ratio:.3}"),
    };
    row.target = match min_of_direct {
        Some(min) => format!("nixcap ≥ socat; nixcap ÷ direct ≥ {min}"),
        None => "nixcap ≥ socat".to_owned(),
    };
    let beats_socat = socat.is_none_or(|socat| nixcap >= socat);
    row.met = Some(beats_socat && min_of_direct.is_none_or(|min| ratio >= min));
}

/// A row of CPU seconds per GiB moved, for the relays that are processes.
fn cpu_row(case: String, samples: Samples) -> Row {
    let mut row = Row::new(case, Unit::Seconds, samples);
    if let (Some(nixcap), Some(socat)) = (row.value(Variant::Nixcap), row.value(Variant::Socat)) {
        row.ratio = Some(nixcap / socat);
        row.ratio_text = format!("{:.2} × socat", nixcap / socat);
    }
    row.target = "(reported)".to_owned();
    row
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

/// A row of the recorder's peak RSS in MiB, with the 32 MiB target.
fn memory_row(case: String, values: Vec<f64>) -> Row {
    let mut row = nixcap_only(case, Unit::Mebibytes, values);
    upper_bound(&mut row, 32.0, "≤ 32 MiB".to_owned());
    row
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
    let mut cpu = Samples::new();
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
                let cpu_before = relay.cpu_seconds();
                let elapsed = pump(relay.socket(), direction, len, 0, &random)?;
                let large = relay.peak_rss_bytes();
                if let (Some(before), Some(after)) = (cpu_before, relay.cpu_seconds()) {
                    push(&mut cpu, variant, (after - before) / (len as f64 / GIB));
                }
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
        throughput_target(&mut row, None);
        outcome.rows.push(row);
    }
    outcome.rows.push(cpu_row(
        "CPU: relay process seconds per GiB, pump (both directions)".to_owned(),
        cpu,
    ));
    outcome.rows.push(memory_row(
        format!("memory: recorder peak RSS after {}", size_name(warmup)),
        rss_small,
    ));
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

/// Round trips of IsValidPath through each variant; `max_added` is the
/// target (p50, p99) for the latency nixcap adds over direct.
fn latency_case(
    plan: &Plan,
    outcome: &mut Outcome,
    upstream: &Path,
    label: &str,
    max_added: (f64, f64),
) -> Result<()> {
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
    latency_target(&mut row, max_added.0);
    outcome.rows.push(row);
    let mut row = Row::new(
        format!("latency p99: {count} × IsValidPath ({label})"),
        Unit::Micros,
        p99,
    );
    latency_target(&mut row, max_added.1);
    outcome.rows.push(row);
    let mut row = nixcap_only(
        format!(
            "capture size: file ÷ raw, handshake + {} × IsValidPath ({label})",
            count + warmup
        ),
        Unit::Ratio,
        ratios,
    );
    upper_bound(&mut row, 0.1, "≤ 0.1".to_owned());
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
    let mut rss_with_stop = Vec::new();
    let mut ratios = Vec::new();
    let mut cpu = Samples::new();
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
            if let Some(seconds) = relay.cpu_seconds() {
                push(&mut cpu, variant, seconds / (len as f64 / GIB));
            }
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
                rss_with_stop.extend(stopped.peak_rss_bytes.map(|b| b as f64 / MIB as f64));
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
    throughput_target(&mut row, Some(0.8));
    outcome.rows.push(row);
    outcome.rows.push(cpu_row(
        format!(
            "CPU: relay process seconds per GiB, nix-store --add {}",
            size_name(len)
        ),
        cpu,
    ));
    outcome.rows.push(memory_row(
        format!(
            "memory: recorder peak RSS, nix-store --add {}",
            size_name(len)
        ),
        rss,
    ));
    // Stopping reads the capture back to fetch the store objects a replay
    // needs; that must not hold what was recorded in memory either.
    outcome.rows.push(memory_row(
        format!(
            "memory: recorder peak RSS including its stop (capture read back), nix-store --add {}",
            size_name(len)
        ),
        rss_with_stop,
    ));
    let mut row = nixcap_only(
        format!("capture size: file ÷ raw, random NAR ({})", size_name(len)),
        Unit::Ratio,
        ratios,
    );
    upper_bound(&mut row, 1.01, "≤ 1.01".to_owned());
    outcome.rows.push(row);
    Ok(kept)
}

/// A whole session of many small operations from a real client: one
/// `nix-store -q --hash` over [`Plan::ops_paths`] store paths, which asks the
/// daemon for each path's info in turn (one QueryPathInfo round trip per
/// path). The added time per operation, over the direct connection, is what
/// a user feels over a session; it includes every wake-up and system call
/// the relay spends per small chunk, not just a median round trip.
fn ops_case(plan: &Plan, outcome: &mut Outcome, peer: &Peer, daemon: &Daemon) -> Result<()> {
    // socat -v takes tens of milliseconds per operation to print its dump.
    let variants: Vec<Variant> = plan
        .tools
        .variants()
        .into_iter()
        .filter(|v| *v != Variant::SocatVerbose)
        .collect();
    let count = plan.ops_paths();
    let work = tempfile::Builder::new()
        .prefix("nixcap-bench-ops")
        .tempdir()
        .doing(|| "creating a work directory".to_owned())?;
    // The paths to query, added once (untimed) in one client session.
    let files: Vec<PathBuf> = (0..count)
        .map(|i| {
            let file = work.path().join(format!("f{i}"));
            std::fs::write(&file, format!("small file {i}\n"))
                .doing(|| format!("writing {}", file.display()))?;
            Ok(file)
        })
        .collect::<Result<_>>()?;
    let added = peer
        .command("nix-store")
        .arg("--add")
        .args(&files)
        .store(daemon)
        .output()?;
    let paths: Vec<String> = String::from_utf8_lossy(&added.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !added.status.success() || paths.len() != count {
        return Err(Error::Program {
            program: "nix-store --add".to_owned(),
            message: format!(
                "adding {count} small files gave {} paths ({}): {}",
                paths.len(),
                added.status,
                String::from_utf8_lossy(&added.stderr)
            ),
        });
    }
    let capture = plan.capture_path("ops.nixcap");
    let mut wall = Samples::new();
    let mut ratios = Vec::new();
    for round in 0..plan.runs {
        for variant in Variant::rotation(round, &variants) {
            let relay = Relay::start(variant, daemon.socket_path(), &plan.tools, &capture)?;
            let start = Instant::now();
            let output = peer
                .command("nix-store")
                .args(["-q", "--hash"])
                .args(&paths)
                .remote(daemon.uri_via(relay.socket()))
                .output()?;
            let elapsed = start.elapsed();
            let stopped = relay.stop()?;
            let hashes = String::from_utf8_lossy(&output.stdout).lines().count();
            if !output.status.success() || hashes != count {
                return Err(Error::Program {
                    program: "nix-store -q --hash".to_owned(),
                    message: format!(
                        "through {} printed {hashes} of {count} hashes ({}): {}",
                        variant.label(),
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    ),
                });
            }
            progress(
                "nix-store -q --hash",
                round,
                plan.runs,
                variant,
                &format!("{:.0} ms", elapsed.as_secs_f64() * 1e3),
            );
            push(&mut wall, variant, elapsed.as_secs_f64());
            if let Some(path) = stopped.capture {
                ratios.push(capture_ratio(&path)?.0);
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let mut row = Row::new(
        format!("session: nix-store -q --hash of {count} paths, one client (Nix 2.8)"),
        Unit::Seconds,
        wall.clone(),
    );
    let direct = row.value(Variant::Direct);
    let added =
        |variant: Variant, row: &Row| Some((row.value(variant)? - direct?) * 1e6 / count as f64);
    if let Some(nixcap) = added(Variant::Nixcap, &row) {
        row.ratio = Some(nixcap);
        row.ratio_text = match added(Variant::Socat, &row) {
            Some(socat) => format!("{nixcap:+.1} µs/op (socat {socat:+.1} µs/op)"),
            None => format!("{nixcap:+.1} µs/op"),
        };
        row.met = Some(added(Variant::Socat, &row).is_none_or(|socat| nixcap <= socat));
    }
    row.target = "added µs per op ≤ socat's".to_owned();
    outcome.rows.push(row);
    let mut row = nixcap_only(
        format!("capture size: file ÷ raw, {count} × QueryPathInfo (Nix 2.8)"),
        Unit::Ratio,
        ratios,
    );
    // Every reply carries a path's own hashes (random to a compressor), so
    // this is reported rather than held to the metadata target.
    row.target = "(reported: replies carry random hashes)".to_owned();
    outcome.rows.push(row);
    Ok(())
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

/// Whether `recorder` is the real CLI (for the notes).
pub fn recorder_is_cli(tools: &Tools) -> bool {
    matches!(tools.recorder, RecorderProgram::Cli(_))
}
