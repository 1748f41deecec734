//! `nixcap verify`: check a capture's integrity.
//!
//! Reads the whole capture with the streaming reader, which checks every
//! frame checksum, every block, that blocks refer to open connections, every
//! stream's byte count and SHA-256 against its close record, every store
//! object's contents against its SHA-256, and the footer and trailer
//! against the blocks. The first problem is reported with its
//! location.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use nixcap_capture::{Block, ReadError, Reader};

use super::input::Input;
use crate::exit;

/// Arguments of `nixcap verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Checks every frame checksum, every block, every stream's byte count and SHA-256 against its close \
record, and the footer and trailer against the blocks.

Exit status:
  0  the capture is intact and finished
  1  the capture is damaged or unfinished (truncated, corrupt, inconsistent, or without footer \
because the recorder was killed); the output names the problem, its file offset, frame and \
connection, and what is intact before it
  2  the file cannot be read as a capture: it is not one, it has a newer major format version, \
or reading it failed")]
pub struct Args {
    /// The capture file, or an object URL (s3://bucket/key, gs://, az://,
    /// file:///).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = Input::parse(&args.file);
    let name = input.name();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let file = match input.open() {
        Ok(file) => file,
        Err(err) => {
            writeln!(out, "{name}: UNREADABLE: cannot open: {err}")?;
            return Ok(ExitCode::from(exit::TROUBLE));
        }
    };
    let mut reader = match Reader::new(file) {
        Ok(reader) => reader,
        Err(err) if err.is_unreadable() => {
            writeln!(out, "{name}: UNREADABLE: {}", err.kind)?;
            return Ok(ExitCode::from(exit::TROUBLE));
        }
        Err(err) => {
            writeln!(out, "{name}: DAMAGED")?;
            describe_damage(&mut out, &err, None)?;
            return Ok(ExitCode::from(exit::DAMAGED));
        }
    };
    let mut problem = None;
    let mut unknown_types = std::collections::BTreeSet::new();
    for item in reader.by_ref() {
        match item {
            Ok(Block::Unknown { block_type, .. }) => {
                unknown_types.insert(block_type);
            }
            Ok(_) => {}
            Err(err) => {
                problem = Some(err);
                break;
            }
        }
    }
    let stats = reader.stats();
    match problem {
        None => {
            writeln!(out, "{name}: OK")?;
            writeln!(
                out,
                "  format {}, {} frames, {} blocks, {} connections, {} + {} data bytes",
                reader.version(),
                stats.frames,
                stats.blocks,
                stats.connections,
                stats.bytes_client_to_server,
                stats.bytes_server_to_client,
            )?;
            if stats.store_objects > 0 {
                writeln!(
                    out,
                    "  {} store objects ({} missing), {} bytes, each checked against its SHA-256",
                    stats.store_objects, stats.store_objects_missing, stats.store_object_bytes,
                )?;
            }
            writeln!(
                out,
                "  every frame checksum, block and stream SHA-256 checked; footer and trailer match"
            )?;
            if !unknown_types.is_empty() {
                let types: Vec<String> =
                    unknown_types.iter().map(|t| format!("{t:#04x}")).collect();
                writeln!(
                    out,
                    "  skipped {} blocks of types unknown to this nixcap ({}), written by a newer format {}",
                    stats.unknown_blocks,
                    types.join(", "),
                    reader.version()
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(err) if err.is_unreadable() => {
            writeln!(out, "{name}: UNREADABLE: {}", err.kind)?;
            Ok(ExitCode::from(exit::TROUBLE))
        }
        Some(err) => {
            writeln!(out, "{name}: DAMAGED")?;
            let intact = format!(
                "{} {} from {} {} read{}",
                stats.blocks,
                plural(stats.blocks, "block", "blocks"),
                stats.frames,
                plural(stats.frames, "frame", "frames"),
                match stats.last_t_nanos {
                    Some(t) => format!(", up to {:.6} s after the start", t as f64 / 1e9),
                    None => String::new(),
                }
            );
            describe_damage(&mut out, &err, Some(&intact))?;
            Ok(ExitCode::from(exit::DAMAGED))
        }
    }
}

fn describe_damage(out: &mut impl Write, err: &ReadError, intact: Option<&str>) -> io::Result<()> {
    let loc = &err.location;
    writeln!(out, "  problem:    {}", err.kind)?;
    let mut place = format!("file offset {}", loc.offset);
    if let Some(frame) = loc.frame_index {
        place.push_str(&format!(", frame {frame}"));
    }
    if let Some(block) = loc.block_index {
        place.push_str(&format!(", block {block}"));
    }
    if let Some(conn) = loc.conn {
        place.push_str(&format!(", connection {conn}"));
    }
    writeln!(out, "  where:      {place}")?;
    if let Some(intact) = intact {
        writeln!(out, "  before it:  {intact}")?;
    }
    if !loc.open_connections.is_empty() {
        let ids: Vec<String> = loc.open_connections.iter().map(u64::to_string).collect();
        writeln!(
            out,
            "  incomplete: connections {} (open at that point; their streams end early)",
            ids.join(", ")
        )?;
    }
    Ok(())
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}
