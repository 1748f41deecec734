//! `nixcap export`: write a capture as pcapng for Wireshark and tshark or as
//! a Chrome trace for trace viewers, or captures as a Parquet op table for
//! DuckDB, Spark or Trino.
//!
//! pcapng: each connection becomes a synthetic TCP connection on loopback,
//! with the original timestamps and op names in packet comments; see
//! `nixcap_export` for the layout. Chrome trace: one track per connection,
//! ops and daemon activities as slices, written as the capture is read with
//! a progress bar on stderr when it is a terminal; see
//! `nixcap_export::chrome`. Parquet: one row per operation, see
//! `nixcap_export::optable` and `nixcap_export::parquet`.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use nixcap_export::chrome::export_chrome_trace;
use nixcap_export::optable::op_rows;
use nixcap_export::parquet::{
    part_name, partition_files, write_parquet, write_parquet_file, write_partitioned,
};
use nixcap_export::{export_pcapng, ExportOptions};
use nixcap_objstore::{is_store_url, Store};
use nixcap_view::stream::EventStream;
use nixcap_view::text::damage_report;
use nixcap_view::DecodedCapture;

use super::input::{list_captures, Input};
use super::progress::Progress;

/// What `nixcap export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// pcapng for Wireshark and tshark (one capture in, one file out).
    Pcapng,
    /// A Parquet table with one row per operation (any number of captures).
    Parquet,
    /// A Chrome trace (Trace Event format JSON) for Perfetto UI, Chromium's
    /// DevTools and other trace viewers (one capture in, one file out).
    #[value(alias = "perfetto")]
    ChromeTrace,
}

/// Arguments of `nixcap export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
pcapng (the default): each connection becomes a TCP connection from 127.0.0.1:<port> (one port \
per connection, counting up from --first-client-port in the order they were opened) to \
127.0.0.1:<server-port>, with a three-way handshake at its open time, its data at the recorded \
times, and FIN at its close. \"Follow TCP stream\" in Wireshark shows each connection's exact \
bytes. The packet carrying each request has the op name as a comment (tshark: -T fields -e \
frame.comment).

--format parquet: one row per operation of every capture given: capture, host, conn, seq, \
client_protocol, daemon_protocol, protocol, daemon_nix_version, client_nix_version, op, \
start_time (UTC), duration_ns, bytes_client_to_daemon, bytes_daemon_to_client, status (ok, error, \
unfinished), result, error, paths. OUT is one file, or with --partitioned a directory of \
Hive-style partitions OUT/date=YYYY-MM-DD/host=HOST/<capture>-<hash>.parquet (date and host then \
come from the directory names). OUT may be an object URL (s3://bucket/prefix/, gs://, az://, \
file:///): a URL ending in / (or any URL with --partitioned) receives the partitions under that \
prefix, another URL names the one object to write; each object is confirmed by the store (size \
and checksum) before the next.

--format chrome-trace (alias perfetto): a JSON trace for ui.perfetto.dev, Chromium's DevTools or \
any reader of the Trace Event format. Each connection is a process with one thread of ops, each op \
a slice from request to reply, each daemon activity an async slice nested by its parent and named \
by its text (type, fields and results as args), each log line an instant, and the connection's \
open, handshake and close instants too. It is written as the capture is read, with a progress \
bar when stderr is a terminal. See docs/TRACE.md.

Exit status: 0 when the output was written (a damaged capture is warned about, and what \
precedes the damage is exported), 2 when a capture cannot be read or the output not written.")]
pub struct Args {
    /// The capture to export (with --format parquet, one or more; an object
    /// URL ending in / stands for every capture under that prefix).
    #[arg(value_name = "IN", required = true)]
    pub inputs: Vec<PathBuf>,

    /// The file to write (with --partitioned, the directory). With --format
    /// parquet, also an object URL: a prefix ending in / for partitions, or
    /// the key of one object.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,

    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Pcapng)]
    pub format: Format,

    /// With --format parquet: write OUT as a directory of Hive-style
    /// partitions by date and host.
    #[arg(long)]
    pub partitioned: bool,

    /// The synthetic server port.
    #[arg(long, default_value_t = ExportOptions::default().server_port)]
    pub server_port: u16,

    /// The client port of the first connection.
    #[arg(long, default_value_t = ExportOptions::default().first_client_port)]
    pub first_client_port: u16,

    /// Largest TCP payload per packet; larger chunks are split.
    #[arg(long, default_value_t = ExportOptions::default().max_segment)]
    pub max_segment: usize,
}

/// Reads and decodes `input` (a path or an object URL), warning about
/// damage on stderr.
fn decode(input: &Path) -> anyhow::Result<DecodedCapture> {
    let input = Input::parse(input);
    let capture = input
        .read_capture()
        .with_context(|| format!("reading {}", input.name()))?;
    if let Some(damage) = &capture.damage {
        writeln!(
            io::stderr().lock(),
            "nixcap: warning: {} is damaged ({}); exporting what precedes the damage",
            input.name(),
            damage.kind
        )?;
    }
    Ok(DecodedCapture::new(capture))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.format != Format::Parquet {
        if let Some(url) = args.output.to_str().filter(|o| is_store_url(o)) {
            bail!("{url}: only --format parquet writes to object storage; give a local file");
        }
    }
    match args.format {
        Format::Pcapng => run_pcapng(args),
        Format::Parquet => run_parquet(args),
        Format::ChromeTrace => run_chrome_trace(&args),
    }
}

fn run_pcapng(args: Args) -> anyhow::Result<ExitCode> {
    let [input] = args.inputs.as_slice() else {
        bail!(
            "pcapng export takes exactly one capture (got {})",
            args.inputs.len()
        );
    };
    if args.partitioned {
        bail!("--partitioned applies to --format parquet only");
    }
    let decoded = decode(input)?;
    let options = ExportOptions {
        server_port: args.server_port,
        first_client_port: args.first_client_port,
        max_segment: args.max_segment,
    };
    let file = File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let summary = export_pcapng(&decoded, BufWriter::new(file), &options).context("exporting")?;
    writeln!(
        io::stdout().lock(),
        "{}: {} connections, {} packets ({} with data), {} comments",
        args.output.display(),
        summary.connections.len(),
        summary.packets,
        summary.data_packets,
        summary.comments
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The captures to export: each input, with an object URL ending in `/`
/// standing for every capture under that prefix, in key order.
fn expand_prefixes(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        match input.to_str() {
            Some(url) if is_store_url(url) && url.ends_with('/') => {
                let objects = list_captures(url)?;
                if objects.is_empty() {
                    bail!("{url}: no captures (*.nixcap) under this prefix");
                }
                out.extend(objects.into_iter().map(|o| PathBuf::from(o.url)));
            }
            _ => out.push(input.clone()),
        }
    }
    Ok(out)
}

fn run_parquet(mut args: Args) -> anyhow::Result<ExitCode> {
    args.inputs = expand_prefixes(&args.inputs)?;
    if let Some(url) = args.output.to_str().filter(|o| is_store_url(o)) {
        return run_parquet_to_store(&args, url);
    }
    let mut total_rows = 0usize;
    let mut files = 0usize;
    if args.partitioned {
        for input in &args.inputs {
            let name = input.display().to_string();
            let rows = op_rows(&decode(input)?, &name);
            total_rows += rows.len();
            files += write_partitioned(&rows, &args.output, &part_name(&name))
                .with_context(|| format!("writing {}", args.output.display()))?
                .len();
        }
    } else {
        let mut rows = Vec::new();
        for input in &args.inputs {
            rows.extend(op_rows(&decode(input)?, &input.display().to_string()));
        }
        total_rows = rows.len();
        write_parquet_file(&rows, &args.output, false)
            .with_context(|| format!("writing {}", args.output.display()))?;
        files = 1;
    }
    writeln!(
        io::stdout().lock(),
        "{}: {} operations from {} captures in {} Parquet files",
        args.output.display(),
        total_rows,
        args.inputs.len(),
        files
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The Parquet export written to object storage: partitions under a prefix,
/// or one object.
fn run_parquet_to_store(args: &Args, url: &str) -> anyhow::Result<ExitCode> {
    let mut total_rows = 0usize;
    let mut objects = 0usize;
    if args.partitioned || url.ends_with('/') {
        let store = Store::open(url)?;
        for input in &args.inputs {
            let name = Input::parse(input).name();
            let rows = op_rows(&decode(input)?, &name);
            total_rows += rows.len();
            let files = partition_files(&rows, &part_name(&name))
                .with_context(|| format!("exporting {name}"))?;
            for file in files {
                store.upload_bytes(file.bytes.into(), &file.key)?;
                objects += 1;
            }
        }
    } else {
        // The URL names the object: open its parent and put the last part.
        let Some((parent, object)) = url.rsplit_once('/').filter(|(_, o)| !o.is_empty()) else {
            bail!("{url}: names no object");
        };
        let store = Store::open(&format!("{parent}/"))?;
        let mut rows = Vec::new();
        for input in &args.inputs {
            rows.extend(op_rows(&decode(input)?, &Input::parse(input).name()));
        }
        total_rows = rows.len();
        let mut bytes = Vec::new();
        write_parquet(&rows, &mut bytes, false).context("exporting")?;
        store.upload_bytes(bytes.into(), object)?;
        objects = 1;
    }
    writeln!(
        io::stdout().lock(),
        "{url}: {total_rows} operations from {} captures in {objects} Parquet objects",
        args.inputs.len(),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_chrome_trace(args: &Args) -> anyhow::Result<ExitCode> {
    let [input] = args.inputs.as_slice() else {
        bail!(
            "chrome-trace export takes exactly one capture (got {})",
            args.inputs.len()
        );
    };
    if args.partitioned {
        bail!("--partitioned applies to --format parquet only");
    }
    let input = Input::parse(input);
    let name = input.name();
    let mut reader = input.open().with_context(|| format!("reading {name}"))?;
    let total = reader
        .seek(SeekFrom::End(0))
        .and_then(|len| reader.rewind().map(|()| len))
        .with_context(|| format!("reading {name}"))?;
    let stream = EventStream::new(reader).with_context(|| format!("reading {name}"))?;
    let out = File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut progress = Progress::new(io::stderr().is_terminal(), total);
    let summary = export_chrome_trace(stream, BufWriter::new(out), &mut |done| {
        progress.update(done);
    })
    .context("exporting")?;
    progress.finish();
    if let Some(damage) = &summary.damage {
        eprintln!(
            "nixcap: warning: {name}: {}  the trace holds what precedes the damage",
            damage_report(damage)
        );
    }
    writeln!(
        io::stdout().lock(),
        "{}: {} connections, {} ops, {} activities, {} log lines, {} trace events",
        args.output.display(),
        summary.connections,
        summary.ops,
        summary.activities,
        summary.log_lines,
        summary.events
    )?;
    Ok(ExitCode::SUCCESS)
}
