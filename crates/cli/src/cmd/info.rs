//! `nixcap info`: summarise a capture, like capinfos.
//!
//! The summary itself is `nixcap_view::summary`: from the footer index when
//! the capture was finished, from a full scan when it was not. This module
//! parses the arguments, tells a set (a directory, a URL prefix) from one
//! capture, and prints the report as text or JSON.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nixcap_view::summary::{
    build_report, protocol_report, rfc3339_utc, set_report, ProtocolReport, Report, SetReport,
};

use super::input::{list_captures, local_captures, Input};

/// Arguments of `nixcap info`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The summary is read from the capture's footer when it has one (from object storage, by ranged \
reads of the footer alone). A capture whose recorder did not finish has no footer; it is then \
scanned from the start, and the output says so. Given a directory or a URL prefix, info \
summarises the set: captures, total size, time span, connections, bytes, close reasons and the \
op histogram summed, then one line per capture.

Exit status: 0 when a summary was printed (damaged and unfinished captures are flagged in it), \
2 when the file cannot be read as a capture.")]
pub struct Args {
    /// The capture: a file, an object URL (s3://bucket/key, gs://, az://,
    /// file:///), or a directory or URL prefix (ending in `/`) to summarise
    /// every capture (`*.nixcap`) under it.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,

    /// Skip decoding the protocol (no versions or op histogram): only the
    /// container statistics, which come from the footer without
    /// decompressing the capture.
    #[arg(long)]
    pub no_decode: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = Input::parse(&args.file);
    if let Some(members) = set_members(&input)? {
        return run_set(&args, &input.name(), members);
    }
    let mut report = build_report(&input)?;
    if !args.no_decode {
        report.protocol = Some(protocol_report(&input)?);
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The members when `input` names a set: a local directory, or a URL that
/// ends in `/` or names no object but a non-empty prefix.
fn set_members(input: &Input) -> anyhow::Result<Option<Vec<Input>>> {
    match input {
        Input::Local(path) if path.is_dir() => Ok(Some(
            local_captures(path)?
                .into_iter()
                .map(Input::Local)
                .collect(),
        )),
        Input::Local(_) => Ok(None),
        Input::Remote(url) => {
            if !url.ends_with('/') {
                match nixcap_objstore::Store::open(url).and_then(|s| s.size_of(s.prefix())) {
                    Ok(_) => return Ok(None),
                    Err(err) if err.is_not_found() => {}
                    Err(err) => return Err(err).context("cannot open the capture"),
                }
            }
            let prefix = if url.ends_with('/') {
                url.clone()
            } else {
                format!("{url}/")
            };
            let objects = list_captures(&prefix).context("cannot list the captures")?;
            if objects.is_empty() {
                anyhow::bail!("{url}: no such object, and no captures (*.nixcap) under it");
            }
            Ok(Some(
                objects.into_iter().map(|o| Input::Remote(o.url)).collect(),
            ))
        }
    }
}

/// Builds and prints the summary of a set.
fn run_set(args: &Args, prefix: &str, members: Vec<Input>) -> anyhow::Result<ExitCode> {
    let set = set_report(prefix, &members, !args.no_decode)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &set)?;
        writeln!(out)?;
    } else {
        print_set(&mut out, &set)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_set(out: &mut impl Write, s: &SetReport) -> io::Result<()> {
    let row = |out: &mut dyn Write, label: &str, value: &dyn std::fmt::Display| {
        writeln!(out, "{:<24}{}", format!("{label}:"), value)
    };
    row(out, "Captures under", &s.prefix)?;
    row(
        out,
        "Captures",
        &format!("{} ({} complete)", s.captures, s.complete),
    )?;
    row(out, "Total size", &format!("{} bytes", group(s.total_size)))?;
    row(out, "Start time", &s.start_time)?;
    row(out, "End time", &s.end_time)?;
    let reasons: Vec<String> = s
        .close_reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    let connections = if reasons.is_empty() {
        s.connections.to_string()
    } else {
        format!("{} ({})", s.connections, reasons.join(", "))
    };
    row(out, "Connections", &connections)?;
    row(
        out,
        "Bytes client->server",
        &group(s.bytes_client_to_server),
    )?;
    row(
        out,
        "Bytes server->client",
        &group(s.bytes_server_to_client),
    )?;
    if let Some(histogram) = &s.op_histogram {
        writeln!(out, "Operations:")?;
        let mut ops: Vec<(&String, &u64)> = histogram.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (op, n) in ops {
            writeln!(out, "  {op:<30}{n:>8}")?;
        }
    }
    writeln!(out, "Files:")?;
    for f in &s.files {
        let state = match (&f.problem, f.complete) {
            (_, true) => "complete".to_owned(),
            (Some(problem), false) => format!("INCOMPLETE: {problem}"),
            (None, false) => "INCOMPLETE".to_owned(),
        };
        writeln!(
            out,
            "  {}  {} bytes  {}  {:.3} s  {} connection(s)  {}",
            f.file,
            group(f.file_size),
            f.start_time,
            f.duration_nanos as f64 / 1e9,
            f.connections,
            state
        )?;
    }
    Ok(())
}

fn print_text(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let row = |out: &mut dyn Write, label: &str, value: &dyn std::fmt::Display| {
        writeln!(out, "{:<24}{}", format!("{label}:"), value)
    };
    row(out, "File name", &r.file)?;
    row(out, "File size", &format!("{} bytes", group(r.file_size)))?;
    row(out, "Format version", &r.format_version)?;
    row(out, "Written by", &r.tool_version)?;
    let complete = if r.complete { "yes" } else { "no" };
    row(out, "Complete", &complete)?;
    if let Some(problem) = &r.problem {
        row(out, "Note", problem)?;
    }
    let source = match r.source {
        "footer" => "footer index",
        _ => "full scan",
    };
    row(out, "Statistics from", &source)?;
    row(out, "Start time", &r.start_time)?;
    row(
        out,
        "End time",
        &rfc3339_utc(r.start_unix_nanos.saturating_add(r.duration_nanos)),
    )?;
    row(
        out,
        "Duration",
        &format!("{:.6} s", r.duration_nanos as f64 / 1e9),
    )?;
    let reasons: Vec<String> = r
        .close_reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    let connections = if reasons.is_empty() {
        r.connections.to_string()
    } else {
        format!("{} ({})", r.connections, reasons.join(", "))
    };
    row(out, "Connections", &connections)?;
    row(
        out,
        "Bytes client->server",
        &group(r.bytes_client_to_server),
    )?;
    row(
        out,
        "Bytes server->client",
        &group(r.bytes_server_to_client),
    )?;
    row(out, "Frames", &r.frames)?;
    row(out, "Blocks", &r.blocks)?;
    row(out, "Annotations", &r.annotations)?;
    row(
        out,
        "Uncompressed blocks",
        &format!("{} bytes", group(r.uncompressed_bytes)),
    )?;
    row(
        out,
        "Compressed frames",
        &format!("{} bytes", group(r.compressed_bytes)),
    )?;
    match r.compression_ratio {
        Some(ratio) => row(out, "Compression ratio", &format!("{ratio:.2}"))?,
        None => row(out, "Compression ratio", &"n/a (no frames)")?,
    }
    if let Some(protocol) = &r.protocol {
        print_protocol(out, protocol)?;
    }
    if r.metadata.is_empty() {
        row(out, "Metadata", &"none")?;
    } else {
        writeln!(out, "Metadata:")?;
        for (key, value) in &r.metadata {
            writeln!(out, "  {:<22}{}", format!("{key}:"), value)?;
        }
    }
    Ok(())
}

fn print_protocol(out: &mut impl Write, p: &ProtocolReport) -> io::Result<()> {
    let show =
        |v: Option<nixcap_wire::ProtocolVersion>| v.map_or("-".to_string(), |v| v.to_string());
    for s in &p.sessions {
        let info = &s.session;
        let nix = info
            .daemon_nix_version
            .as_ref()
            .map_or("(not sent)".to_string(), |v| v.to_string());
        let trust = match info.trust {
            Some(trust) => format!("{trust:?}").to_lowercase(),
            None => "(not sent)".to_string(),
        };
        let features = match &info.negotiated {
            Some(n) if !n.features.is_empty() => n.features.join(","),
            _ => "none".to_string(),
        };
        writeln!(
            out,
            "{:<24}{} connection(s): protocol {} (client {}, daemon {}), daemon Nix {}, trust {}, features {}",
            "Handshake:",
            s.connections,
            show(info.negotiated.as_ref().map(|n| n.version)),
            show(info.client_version),
            show(info.daemon_version),
            nix,
            trust,
            features,
        )?;
    }
    if p.connections_with_undecoded_bytes > 0 {
        writeln!(
            out,
            "{:<24}{} connection(s) have bytes the decoder could not decode (see `nixcap show`)",
            "Undecoded:", p.connections_with_undecoded_bytes
        )?;
    }
    let objects = &p.store_objects;
    let total = objects.nars + objects.build_logs + objects.other + objects.missing.len() as u64;
    if total > 0 {
        let mut parts = vec![format!("{} NAR(s)", objects.nars)];
        parts.push(format!("{} build log(s)", objects.build_logs));
        if objects.other > 0 {
            parts.push(format!("{} of other kinds", objects.other));
        }
        writeln!(
            out,
            "{:<24}{} ({}), {} bytes, {} missing",
            "Store objects:",
            total,
            parts.join(", "),
            group(objects.bytes),
            objects.missing.len()
        )?;
        for missing in &objects.missing {
            writeln!(
                out,
                "  missing {} {}: {}",
                missing.kind, missing.name, missing.reason
            )?;
        }
    } else {
        writeln!(out, "{:<24}none", "Store objects:")?;
    }
    writeln!(out, "Operations:")?;
    let mut ops: Vec<(&String, &u64)> = p.op_histogram.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (name, count) in ops {
        writeln!(out, "  {:<30}{count:>8}", name)?;
    }
    Ok(())
}

/// Groups digits by thousands: 1234567 becomes `1 234 567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1 000");
        assert_eq!(group(1_234_567), "1 234 567");
    }
}
