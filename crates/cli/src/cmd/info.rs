//! `nixcap info`: summarise a capture, like capinfos.
//!
//! The summary comes from the footer index when the capture was finished, so
//! it costs a few kilobytes of I/O whatever the capture's size. Without a
//! usable footer (the recorder was killed, or the end of the file is
//! damaged) the whole file is scanned instead, and the output says so.
//!
//! The report is built as a [`Report`] value first, then printed as text or
//! JSON. Later sections (for example the Nix protocol versions and the
//! operation histogram of the decoded view) are added as new fields of
//! `Report`, filled in `build_report`, and printed by `print_text`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nixcap_capture::{
    read_index, Block, CloseReason, Direction, FooterStatus, ReadErrorKind, Reader, StoreObjectKind,
};
use serde::Serialize;

use super::input::{list_captures, Input};

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

/// Everything `nixcap info` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file as given on the command line.
    pub file: String,
    /// Its size in bytes.
    pub file_size: u64,
    /// The container format version, `major.minor`.
    pub format_version: String,
    /// The tool that wrote the capture.
    pub tool_version: String,
    /// Where the statistics come from: `footer` or `scan`.
    pub source: &'static str,
    /// Whether the capture was finished (it has an intact footer and trailer).
    pub complete: bool,
    /// Why the capture is not complete or intact, when it is not.
    pub problem: Option<String>,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Wall-clock start, RFC 3339 in UTC.
    pub start_time: String,
    /// Time from start to end, in nanoseconds.
    pub duration_nanos: u64,
    /// Number of connections.
    pub connections: u64,
    /// Connections per close reason (`open` for ones without a close record).
    pub close_reasons: BTreeMap<String, u64>,
    /// Data bytes client to server.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client.
    pub bytes_server_to_client: u64,
    /// Number of block frames.
    pub frames: u64,
    /// Number of blocks.
    pub blocks: u64,
    /// Number of annotations.
    pub annotations: u64,
    /// Size of the blocks, uncompressed.
    pub uncompressed_bytes: u64,
    /// Size of the compressed frame payloads.
    pub compressed_bytes: u64,
    /// `uncompressed_bytes / compressed_bytes`.
    pub compression_ratio: Option<f64>,
    /// The header's free metadata.
    pub metadata: BTreeMap<String, String>,
    /// One entry per connection, in opening order.
    pub connection_list: Vec<ConnectionReport>,
    /// What the decoded protocol says (absent with `--no-decode`).
    pub protocol: Option<ProtocolReport>,
}

/// The protocol-level summary of a capture.
#[derive(Debug, Serialize)]
pub struct ProtocolReport {
    /// The distinct handshakes seen: versions, daemon Nix version, features,
    /// trust, and how many connections had each.
    pub sessions: Vec<SessionReport>,
    /// How many times each operation was sent, by name.
    pub op_histogram: BTreeMap<String, u64>,
    /// Connections with bytes the decoder could not decode.
    pub connections_with_undecoded_bytes: u64,
    /// Store objects: contents the recorder fetched outside the connections.
    pub store_objects: StoreObjectsReport,
}

/// The store objects of a capture (format 1.1).
#[derive(Debug, Default, Serialize)]
pub struct StoreObjectsReport {
    /// NARs present.
    pub nars: u64,
    /// Build logs present.
    pub build_logs: u64,
    /// Objects of kinds this nixcap does not know.
    pub other: u64,
    /// Bytes of contents.
    pub bytes: u64,
    /// Objects recorded as missing: name and why.
    pub missing: Vec<MissingObject>,
}

/// A store object the recorder could not fetch.
#[derive(Debug, Serialize)]
pub struct MissingObject {
    /// `nar` or `build-log`.
    pub kind: String,
    /// The store path or derivation.
    pub name: String,
    /// Why it is missing.
    pub reason: String,
}

/// One distinct handshake.
#[derive(Debug, Serialize)]
pub struct SessionReport {
    /// Connections that had it.
    pub connections: u64,
    /// The handshake.
    #[serde(flatten)]
    pub session: nixcap_view::SessionInfo,
}

/// One connection in the report.
#[derive(Debug, Serialize)]
pub struct ConnectionReport {
    /// The connection id.
    pub conn: u64,
    /// When it was opened, nanoseconds after the start.
    pub opened_nanos: u64,
    /// When it was closed, if it was.
    pub closed_nanos: Option<u64>,
    /// How it was closed (`open` if it was not).
    pub close_reason: String,
    /// Data bytes client to server.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client.
    pub bytes_server_to_client: u64,
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

/// What `nixcap info` reports for a set of captures.
#[derive(Debug, Serialize)]
pub struct SetReport {
    /// The directory or prefix as given.
    pub prefix: String,
    /// Number of captures.
    pub captures: u64,
    /// How many of them are complete.
    pub complete: u64,
    /// Their total size in bytes.
    pub total_size: u64,
    /// Earliest start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Earliest start, RFC 3339 in UTC.
    pub start_time: String,
    /// Latest end, RFC 3339 in UTC.
    pub end_time: String,
    /// Connections, summed.
    pub connections: u64,
    /// Connections per close reason, summed.
    pub close_reasons: BTreeMap<String, u64>,
    /// Data bytes client to server, summed.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client, summed.
    pub bytes_server_to_client: u64,
    /// Operations by name, summed (absent with `--no-decode`).
    pub op_histogram: Option<BTreeMap<String, u64>>,
    /// One entry per capture, in name order.
    pub files: Vec<SetMember>,
}

/// One capture of a set.
#[derive(Debug, Serialize)]
pub struct SetMember {
    /// Its path or URL.
    pub file: String,
    /// Its size in bytes.
    pub file_size: u64,
    /// Its start, RFC 3339 in UTC.
    pub start_time: String,
    /// Its duration in nanoseconds.
    pub duration_nanos: u64,
    /// Its connections.
    pub connections: u64,
    /// Whether it is complete.
    pub complete: bool,
    /// Why not, when it is not.
    pub problem: Option<String>,
}

/// The members when `input` names a set: a local directory, or a URL that
/// ends in `/` or names no object but a non-empty prefix.
fn set_members(input: &Input) -> anyhow::Result<Option<Vec<Input>>> {
    match input {
        Input::Local(path) if path.is_dir() => {
            let mut files = Vec::new();
            let mut dirs = vec![path.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir)
                    .with_context(|| format!("cannot list {}", dir.display()))?
                {
                    let path = entry?.path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_some_and(|e| e == "nixcap") {
                        files.push(path);
                    }
                }
            }
            files.sort();
            Ok(Some(files.into_iter().map(Input::Local).collect()))
        }
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
    let mut set = SetReport {
        prefix: prefix.to_owned(),
        captures: 0,
        complete: 0,
        total_size: 0,
        start_unix_nanos: u64::MAX,
        start_time: String::new(),
        end_time: String::new(),
        connections: 0,
        close_reasons: BTreeMap::new(),
        bytes_client_to_server: 0,
        bytes_server_to_client: 0,
        op_histogram: (!args.no_decode).then(BTreeMap::new),
        files: Vec::new(),
    };
    let mut end = 0u64;
    for member in &members {
        let report = build_report(member)?;
        set.captures += 1;
        set.complete += u64::from(report.complete);
        set.total_size += report.file_size;
        set.start_unix_nanos = set.start_unix_nanos.min(report.start_unix_nanos);
        end = end.max(
            report
                .start_unix_nanos
                .saturating_add(report.duration_nanos),
        );
        set.connections += report.connections;
        for (reason, n) in &report.close_reasons {
            *set.close_reasons.entry(reason.clone()).or_default() += n;
        }
        set.bytes_client_to_server += report.bytes_client_to_server;
        set.bytes_server_to_client += report.bytes_server_to_client;
        if let Some(histogram) = &mut set.op_histogram {
            for (op, n) in protocol_report(member)?.op_histogram {
                *histogram.entry(op).or_default() += n;
            }
        }
        set.files.push(SetMember {
            file: report.file,
            file_size: report.file_size,
            start_time: report.start_time,
            duration_nanos: report.duration_nanos,
            connections: report.connections,
            complete: report.complete,
            problem: report.problem,
        });
    }
    if set.captures == 0 {
        set.start_unix_nanos = 0;
    }
    set.start_time = rfc3339_utc(set.start_unix_nanos);
    set.end_time = rfc3339_utc(end.max(set.start_unix_nanos));
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

/// Builds the report of the capture at `input`.
pub fn build_report(input: &Input) -> anyhow::Result<Report> {
    let name = input.name();
    let open = || input.open().with_context(|| format!("cannot open {name}"));
    let index = read_index(open()?).with_context(|| format!("cannot read {name}"))?;
    let mut report = Report {
        file: name.clone(),
        file_size: index.file_len,
        format_version: index.version.to_string(),
        tool_version: index.header.tool_version.clone(),
        source: "footer",
        complete: true,
        problem: None,
        start_unix_nanos: index.header.start_unix_nanos,
        start_time: rfc3339_utc(index.header.start_unix_nanos),
        duration_nanos: 0,
        connections: 0,
        close_reasons: BTreeMap::new(),
        bytes_client_to_server: 0,
        bytes_server_to_client: 0,
        frames: 0,
        blocks: 0,
        annotations: 0,
        uncompressed_bytes: 0,
        compressed_bytes: 0,
        compression_ratio: None,
        metadata: index.header.metadata.clone(),
        connection_list: Vec::new(),
        protocol: None,
    };
    match index.footer {
        FooterStatus::Present(footer) => {
            report.duration_nanos = footer.end_nanos;
            report.connections = footer.connections.len() as u64;
            for c in &footer.connections {
                *report
                    .close_reasons
                    .entry(reason_label(c.reason_code))
                    .or_default() += 1;
                report.connection_list.push(ConnectionReport {
                    conn: c.conn,
                    opened_nanos: c.opened_nanos,
                    closed_nanos: Some(c.closed_nanos),
                    close_reason: reason_label(c.reason_code),
                    bytes_client_to_server: c.bytes_client_to_server,
                    bytes_server_to_client: c.bytes_server_to_client,
                });
            }
            if !footer.connections_complete {
                report.problem = Some(format!(
                    "the footer lists only the first {} connections",
                    footer.connections.len()
                ));
            }
            report.bytes_client_to_server = footer.bytes_client_to_server;
            report.bytes_server_to_client = footer.bytes_server_to_client;
            report.frames = footer.frames;
            report.blocks = footer.blocks;
            report.annotations = footer.annotations;
            report.uncompressed_bytes = footer.uncompressed_bytes;
            report.compressed_bytes = footer.compressed_bytes;
        }
        other => {
            let footer_damaged = matches!(other, FooterStatus::Damaged(_));
            scan(open()?, &mut report, footer_damaged)?;
        }
    }
    if report.compressed_bytes > 0 {
        report.compression_ratio =
            Some(report.uncompressed_bytes as f64 / report.compressed_bytes as f64);
    }
    Ok(report)
}

/// Decodes the capture at `input` and summarises its protocol: what damage
/// the container has is already in the main report, so whatever is readable
/// is decoded here.
pub fn protocol_report(input: &Input) -> anyhow::Result<ProtocolReport> {
    let capture = input
        .read_capture()
        .with_context(|| format!("cannot read {}", input.name()))?;
    let mut store_objects = StoreObjectsReport::default();
    for stored in &capture.store_objects {
        let object = &stored.object;
        if !object.is_present() {
            store_objects.missing.push(MissingObject {
                kind: object.kind.name(),
                name: object.name.clone(),
                reason: object.missing.clone(),
            });
            continue;
        }
        store_objects.bytes += stored.contents.len() as u64;
        match object.kind {
            StoreObjectKind::Nar => store_objects.nars += 1,
            StoreObjectKind::BuildLog => store_objects.build_logs += 1,
            _ => store_objects.other += 1,
        }
    }
    let decoded = nixcap_view::DecodedCapture::new(capture);
    let mut sessions: Vec<SessionReport> = Vec::new();
    for connection in &decoded.connections {
        match sessions
            .iter_mut()
            .find(|s| s.session == connection.session)
        {
            Some(existing) => existing.connections += 1,
            None => sessions.push(SessionReport {
                connections: 1,
                session: connection.session.clone(),
            }),
        }
    }
    Ok(ProtocolReport {
        sessions,
        op_histogram: decoded.op_histogram(),
        connections_with_undecoded_bytes: decoded
            .connections
            .iter()
            .filter(|c| !c.fully_decoded())
            .count() as u64,
        store_objects,
    })
}

/// Fills `report` by reading every block of the capture; `footer_damaged`
/// says whether the file ends with a damaged trailer or footer (rather than
/// with none).
fn scan(input: impl io::Read, report: &mut Report, footer_damaged: bool) -> anyhow::Result<()> {
    report.source = "scan";
    let mut reader = Reader::new(input).context("cannot read the capture")?;
    let mut positions: BTreeMap<u64, usize> = BTreeMap::new();
    let mut problem = None;
    for item in reader.by_ref() {
        let block = match item {
            Ok(block) => block,
            Err(err) => {
                problem = Some(err);
                break;
            }
        };
        match block {
            Block::ConnectionOpened(b) => {
                positions.insert(b.conn, report.connection_list.len());
                report.connection_list.push(ConnectionReport {
                    conn: b.conn,
                    opened_nanos: b.t_nanos,
                    closed_nanos: None,
                    close_reason: "open".to_owned(),
                    bytes_client_to_server: 0,
                    bytes_server_to_client: 0,
                });
            }
            Block::Data(b) => {
                if let Some(c) = positions
                    .get(&b.conn)
                    .and_then(|&i| report.connection_list.get_mut(i))
                {
                    match b.direction {
                        Direction::ClientToServer => {
                            c.bytes_client_to_server += b.bytes.len() as u64;
                        }
                        Direction::ServerToClient => {
                            c.bytes_server_to_client += b.bytes.len() as u64;
                        }
                    }
                }
            }
            Block::ConnectionClosed(b) => {
                if let Some(c) = positions
                    .get(&b.conn)
                    .and_then(|&i| report.connection_list.get_mut(i))
                {
                    c.closed_nanos = Some(b.t_nanos);
                    c.close_reason = reason_label(b.reason.code());
                }
            }
            _ => {}
        }
    }
    let stats = reader.stats();
    report.duration_nanos = reader
        .footer()
        .map_or(stats.last_t_nanos.unwrap_or(0), |f| f.end_nanos);
    report.connections = stats.connections;
    for c in &report.connection_list {
        *report
            .close_reasons
            .entry(c.close_reason.clone())
            .or_default() += 1;
    }
    report.bytes_client_to_server = stats.bytes_client_to_server;
    report.bytes_server_to_client = stats.bytes_server_to_client;
    report.frames = stats.frames;
    report.blocks = stats.blocks;
    report.annotations = stats.annotations;
    report.uncompressed_bytes = stats.uncompressed_bytes;
    report.compressed_bytes = stats.compressed_bytes;
    report.complete = stats.trailer;
    report.problem = Some(match problem {
        Some(err) if matches!(err.kind, ReadErrorKind::MissingFooter { .. }) => {
            format!("{err}; the recorder was killed or is still running; statistics cover every intact frame")
        }
        Some(err) => format!("scan stopped at damage: {err}; statistics cover what precedes it"),
        None if footer_damaged => {
            "the footer could not be read, but a full scan found no damage".to_owned()
        }
        None => "the footer could not be found, but a full scan found no damage".to_owned(),
    });
    Ok(())
}

/// A short name for a close reason code.
fn reason_label(code: u32) -> String {
    match CloseReason::from_code(code, String::new()) {
        CloseReason::CleanEof => "clean EOF".to_owned(),
        CloseReason::Reset => "reset".to_owned(),
        CloseReason::UpstreamUnreachable { .. } => "upstream unreachable".to_owned(),
        CloseReason::Error { .. } => "error".to_owned(),
        CloseReason::Shutdown => "recorder shutdown".to_owned(),
        CloseReason::Continued => "continued in the next file".to_owned(),
        _ => format!("reason {code}"),
    }
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

/// Formats a Unix time in nanoseconds as RFC 3339 in UTC, with nanoseconds.
pub fn rfc3339_utc(unix_nanos: u64) -> String {
    nixcap_capture::utc::UtcTime::from_unix_nanos(unix_nanos).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_utc(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339_utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_utc(4_102_444_799_999_999_999),
            "2099-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn groups_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1 000");
        assert_eq!(group(1_234_567), "1 234 567");
    }
}
