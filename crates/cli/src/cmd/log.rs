//! `nixcap log`: the daemon's log stream of a capture as Nix's
//! `--log-format internal-json` lines.
//!
//! The capture is decoded as it is read (`nixcap_view::stream`), so memory
//! does not grow with its size; each log message becomes the line the
//! client printed for it (`nixcap_view::internal_json`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nixcap_view::internal_json::{self, Stamp, Style};
use nixcap_view::stream::{EventStream, StreamItem};
use nixcap_view::text::damage_report;
use nixcap_wire::handshake::HandshakePiece;
use nixcap_wire::session::EventKind;

use crate::exit;

/// Arguments of `nixcap log`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each log message the daemon sent becomes the line a Nix client prints for it with \
--log-format internal-json: `@nix {\"action\":\"msg\",...}` for a log line, `start`, `stop` and \
`result` for activities, with the daemon's ids, levels, types, fields and parents. Lines the \
client makes up itself (its own evaluation messages and activities, its rendering of errors) are \
not on the wire and so not in the output. Connections are interleaved in capture order.

    nixcap log build.nixcap | nom --json

With --timestamps every object gets a last key \
`\"nixcap\":{\"conn\":N,\"t\":SECONDS,\"unix\":SECONDS}`: the connection, the time since the \
capture start and the wall-clock time at which the message was recorded.

Exit status: 0 when the whole capture was read, 1 when it is damaged (the lines before the \
damage are written, then the damage is described on stderr), 2 when the file cannot be read as \
a capture or names no such connection.")]
pub struct Args {
    /// The capture file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Only this connection (repeatable).
    #[arg(long = "conn", value_name = "N")]
    pub conns: Vec<u64>,

    /// Add the connection and the recording times as a `nixcap` key.
    #[arg(long)]
    pub timestamps: bool,

    /// Whether `start` lines carry `parent`, as clients since Nix 2.18 print
    /// it; `auto` decides by the protocol version each client announced
    /// (none for 1.34, Nix 2.8 to 2.14).
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub parent_key: ParentKey,
}

/// When to print the `parent` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ParentKey {
    /// As the connection's client would: from protocol 1.35 on.
    Auto,
    /// On every `start` line.
    Always,
    /// Never.
    Never,
}

impl ParentKey {
    fn style(self, client_minor: Option<u8>) -> Style {
        Style {
            parent: match self {
                ParentKey::Always => true,
                ParentKey::Never => false,
                // A connection whose hello is missing has no log messages either.
                ParentKey::Auto => client_minor.is_none_or(internal_json::parent_for_client),
            },
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let file = match File::open(&args.file) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("nixcap log: cannot open {name}: {err}");
            return Ok(ExitCode::from(exit::TROUBLE));
        }
    };
    let stream = match EventStream::new(BufReader::with_capacity(1 << 20, file)) {
        Ok(stream) => stream,
        Err(err) if err.is_unreadable() => {
            eprintln!("nixcap log: cannot read {name}: {}", err.kind);
            return Ok(ExitCode::from(exit::TROUBLE));
        }
        Err(err) => {
            eprint!("nixcap log: {name}: {}", damage_report(&err));
            return Ok(ExitCode::from(exit::DAMAGED));
        }
    };
    let start_unix_nanos = stream.header().start_unix_nanos;
    let wanted: BTreeSet<u64> = args.conns.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut client_minor: BTreeMap<u64, u8> = BTreeMap::new();
    let mut damage = None;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for item in stream {
        let (conn, t_nanos, event) = match item {
            Ok(StreamItem::Event {
                conn,
                t_nanos,
                event,
            }) => (conn, t_nanos, event),
            Ok(StreamItem::Opened(opened)) => {
                seen.insert(opened.conn);
                continue;
            }
            Ok(StreamItem::Closed { conn, .. }) => {
                client_minor.remove(&conn);
                continue;
            }
            Err(err) => {
                damage = Some(err);
                break;
            }
        };
        if !wanted.is_empty() && !wanted.contains(&conn) {
            continue;
        }
        let message = match &event.kind {
            EventKind::Handshake {
                piece: HandshakePiece::ClientHello(hello),
            } => {
                client_minor.insert(conn, hello.version.minor);
                continue;
            }
            EventKind::Stderr { message, .. }
            | EventKind::Handshake {
                piece: HandshakePiece::DaemonStderr { message },
            } => message,
            _ => continue,
        };
        let stamp = Stamp {
            conn,
            t_nanos,
            start_unix_nanos,
        };
        let style = args.parent_key.style(client_minor.get(&conn).copied());
        if let Some(line) = internal_json::line(message, style, args.timestamps.then_some(&stamp)) {
            writeln!(out, "{line}").context("cannot write the output")?;
        }
    }
    out.flush().context("cannot write the output")?;
    drop(out);
    if let Some(err) = &damage {
        eprint!("nixcap log: {name}: {}", damage_report(err));
        return Ok(ExitCode::from(exit::DAMAGED));
    }
    if let Some(missing) = wanted.iter().find(|c| !seen.contains(c)) {
        let ids: Vec<String> = seen.iter().map(u64::to_string).collect();
        eprintln!(
            "nixcap log: {name} has no connection {missing} (its connections: {})",
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        );
        return Ok(ExitCode::from(exit::TROUBLE));
    }
    Ok(ExitCode::SUCCESS)
}
