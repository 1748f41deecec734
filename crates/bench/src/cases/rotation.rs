//! The recorder's cost with one of its modes on, against off, interleaved
//! run by run on a synthetic upstream: rotation and upload (`--rotate-size
//! 1M --upload file://…`, case `rotation`) and the flight recorder with its
//! journal (`--keep failed`, case `flight`).

use std::path::Path;

use nixcap_test_support::scenarios::pseudo_random_bytes;

use super::{progress, push, size_name, Outcome, Plan, Samples};
use crate::client::{pump, PumpDirection, WireClient};
use crate::error::Result;
use crate::relay::{RecorderProgram, Relay, Variant, ROTATION_FILE_BYTES};
use crate::report::{Row, Unit};
use crate::stats::quantile;
use crate::upstream::{Kind, Server, RANDOM_BLOCK};

/// Removes what a run left: the capture file or the rotated set and its store.
fn clean(capture: &Path) {
    let _ = std::fs::remove_file(capture);
    let _ = std::fs::remove_dir_all(capture);
    let _ = std::fs::remove_dir_all(Relay::upload_dir(capture));
}

pub(super) fn rotation_case(plan: &Plan, outcome: &mut Outcome) -> Result<()> {
    let rotation = format!(
        "--rotate-size {} --upload file://…",
        size_name_small(ROTATION_FILE_BYTES)
    );
    mode_case(
        plan,
        outcome,
        "rotation",
        Variant::NixcapRotating,
        &rotation,
    )
}

pub(super) fn flight_case(plan: &Plan, outcome: &mut Outcome) -> Result<()> {
    mode_case(
        plan,
        outcome,
        "flight",
        Variant::NixcapFlight,
        "--keep failed",
    )
}

/// `nixcap record` with and without the mode of `variant` (`flags`, for the
/// rows' names): throughput of a bulk upload and the p50 of small round
/// trips.
fn mode_case(
    plan: &Plan,
    outcome: &mut Outcome,
    case: &str,
    variant: Variant,
    flags: &str,
) -> Result<()> {
    if !matches!(plan.tools.recorder, RecorderProgram::Cli(_)) {
        outcome.skip(
            case,
            "the mode is an option of the `nixcap` binary (--nixcap)",
        );
        return Ok(());
    }
    let variants = [Variant::Nixcap, variant];
    let on_variant = variant;
    let capture = plan.capture_path(case);
    // Throughput: the bulk upload, both recorders in turn.
    let pump_server = Server::start(Kind::Pump)?;
    let random = pseudo_random_bytes(RANDOM_BLOCK, 0x5eed);
    let len = plan.pump_len() / 4;
    let mut rates = Samples::new();
    for round in 0..plan.runs {
        for variant in Variant::rotation(round, &variants) {
            clean(&capture);
            let relay = Relay::start(variant, pump_server.path(), &plan.tools, &capture)?;
            pump(
                relay.socket(),
                PumpDirection::Upload,
                plan.warmup_len(),
                RANDOM_BLOCK as u64 / 2,
                &random,
            )?;
            let elapsed = pump(relay.socket(), PumpDirection::Upload, len, 0, &random)?;
            relay.stop()?;
            let rate = len as f64 / elapsed.as_secs_f64() / 1e6;
            progress(
                &format!("{case}: pump"),
                round,
                plan.runs,
                variant,
                &format!("{rate:.0} MB/s"),
            );
            push(&mut rates, variant, rate);
        }
    }
    drop(pump_server);
    // Added time per op: IsValidPath round trips on a synthetic daemon.
    let fake = Server::start(Kind::FakeDaemon)?;
    let count = plan.round_trips();
    let warmup = count / 20;
    let mut p50 = Samples::new();
    for round in 0..plan.runs {
        for variant in Variant::rotation(round, &variants) {
            clean(&capture);
            let relay = Relay::start(variant, fake.path(), &plan.tools, &capture)?;
            let mut client = WireClient::connect(relay.socket())?;
            let micros = client.is_valid_path_loop(warmup, count)?;
            drop(client);
            relay.stop()?;
            let median = quantile(&micros, 0.50).unwrap_or(f64::NAN);
            progress(
                &format!("{case}: latency"),
                round,
                plan.runs,
                variant,
                &format!("p50 {median:.1} µs"),
            );
            push(&mut p50, variant, median);
        }
    }
    clean(&capture);
    let mut row = Row::new(
        format!(
            "{case}: pump {} client → daemon, nixcap with {flags} (nixcap column: without)",
            size_name(len)
        ),
        Unit::MegabytesPerSecond,
        rates,
    );
    if let (Some(off), Some(on)) = (row.value(Variant::Nixcap), row.value(on_variant)) {
        row.ratio = Some(on / off);
        row.ratio_text = format!("{:.3} (on {on:.0} MB/s ÷ off)", on / off);
    }
    row.target = "(reported)".to_owned();
    outcome.rows.push(row);
    let mut row = Row::new(
        format!(
            "{case}: latency p50, {count} × IsValidPath (synthetic daemon), nixcap with \
             {flags} (nixcap column: without)"
        ),
        Unit::Micros,
        p50,
    );
    if let (Some(off), Some(on)) = (row.value(Variant::Nixcap), row.value(on_variant)) {
        row.ratio = Some(on - off);
        row.ratio_text = format!("{:+.1} µs per op (on {on:.1} µs)", on - off);
    }
    row.target = "(reported)".to_owned();
    outcome.rows.push(row);
    Ok(())
}

/// `1 MiB`, `256 KiB`.
fn size_name_small(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}
