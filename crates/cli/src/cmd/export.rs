//! `nixcap export`: write a capture as pcapng for Wireshark and tshark.
//!
//! Each connection becomes a synthetic TCP connection on loopback, with the
//! original timestamps and op names in packet comments; see
//! `nixcap_export` for the layout.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nixcap_capture::read_capture_file;
use nixcap_export::{export_pcapng, ExportOptions};
use nixcap_view::DecodedCapture;

/// Arguments of `nixcap export`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each connection becomes a TCP connection from 127.0.0.1:<port> (one port per connection, counting \
up from --first-client-port in the order they were opened) to 127.0.0.1:<server-port>, with a \
three-way handshake at its open time, its data at the recorded times, and FIN at its close. \
\"Follow TCP stream\" in Wireshark shows each connection's exact bytes. The packet carrying each \
request has the op name as a comment (tshark: -T fields -e frame.comment).

Exit status: 0 when the pcapng file was written (a damaged capture is warned about, and what \
precedes the damage is exported), 2 when the capture cannot be read or the output not written.")]
pub struct Args {
    /// The capture to export.
    #[arg(value_name = "IN")]
    pub input: PathBuf,

    /// The pcapng file to write.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,

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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let capture = read_capture_file(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    if let Some(damage) = &capture.damage {
        writeln!(
            io::stderr().lock(),
            "nixcap: warning: {} is damaged ({}); exporting what precedes the damage",
            args.input.display(),
            damage.kind
        )?;
    }
    let decoded = DecodedCapture::new(capture);
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
