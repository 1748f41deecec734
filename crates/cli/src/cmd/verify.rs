//! `nixcap verify`: check a capture's integrity.
//!
//! Reads the whole capture with the streaming reader, which checks every
//! frame checksum, every block, that blocks refer to open connections, every
//! stream's byte count and SHA-256 against its close record, every store
//! object's contents against its SHA-256, and the footer and trailer
//! against the blocks. The first problem is reported with its
//! location.
//!
//! Given a local directory or an object prefix ending in `/` (a rotated
//! set), it verifies every `*.nixcap` in it, in name order, then joins the
//! set's connections across files (`nixcap_capture::stitch`) and reports
//! pieces that do not fit together.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use nixcap_capture::{Block, ReadError, Reader};

use super::input::{local_captures, set_members, Input};
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
or reading it failed

Given a directory or an object prefix ending in / (a rotated set from `nixcap record \
--rotate-size/--rotate-age`), every *.nixcap in it is verified in name order, then the \
connections that continue across files are joined by their link metadata; a missing or out-of-order piece is reported. The exit status is the worst of \
the files', or 1 if the set does not join up.")]
pub struct Args {
    /// The capture file, an object URL (s3://bucket/key, gs://, az://,
    /// file:///), or a rotated set: a local directory, or an object prefix
    /// ending in /.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let input = Input::parse(&args.file);
    if args.file.is_dir() {
        let files = local_captures(&args.file)?;
        if files.is_empty() {
            writeln!(
                out,
                "{}: UNREADABLE: no *.nixcap files in the directory",
                args.file.display()
            )?;
            return Ok(ExitCode::from(exit::TROUBLE));
        }
        let members: Vec<Input> = files.into_iter().map(Input::Local).collect();
        return verify_set(&input.name(), &members, &mut out);
    }
    if let Some(members) = set_members(&input)? {
        return verify_set(&input.name(), &members, &mut out);
    }
    let status = verify_one(&input, &mut out)?;
    Ok(ExitCode::from(status))
}

/// Verifies every capture of a set (a directory or an object prefix) in
/// order, then joins the set.
fn verify_set(name: &str, members: &[Input], out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let mut worst = 0u8;
    let mut captures = Vec::new();
    for input in members {
        let status = verify_one(input, out)?;
        worst = worst.max(status);
        if status == 0 {
            if let Ok(capture) = input.read_capture() {
                captures.push(capture);
            }
        }
    }
    let Some(stitched) = nixcap_capture::stitch(captures) else {
        return Ok(ExitCode::from(worst.max(exit::DAMAGED)));
    };
    writeln!(
        out,
        "{}: set of {} files, {} connections, {} joined across files",
        name,
        members.len(),
        stitched.capture.connections.len(),
        stitched.joined
    )?;
    for problem in &stitched.problems {
        writeln!(out, "  connection {}: {}", problem.link, problem.problem)?;
    }
    if !stitched.problems.is_empty() {
        worst = worst.max(exit::DAMAGED);
    }
    Ok(ExitCode::from(worst))
}

/// Verifies one capture, writing the verdict to `out`; returns the exit status.
fn verify_one(input: &Input, out: &mut impl Write) -> io::Result<u8> {
    let name = input.name();
    let mut out = out;
    let file = match input.open() {
        Ok(file) => file,
        Err(err) => {
            writeln!(out, "{name}: UNREADABLE: cannot open: {err}")?;
            return Ok(exit::TROUBLE);
        }
    };
    let mut reader = match Reader::new(file) {
        Ok(reader) => reader,
        Err(err) if err.is_unreadable() => {
            writeln!(out, "{name}: UNREADABLE: {}", err.kind)?;
            return Ok(exit::TROUBLE);
        }
        Err(err) => {
            writeln!(out, "{name}: DAMAGED")?;
            describe_damage(&mut out, &err, None)?;
            return Ok(exit::DAMAGED);
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
            Ok(0)
        }
        Some(err) if err.is_unreadable() => {
            writeln!(out, "{name}: UNREADABLE: {}", err.kind)?;
            Ok(exit::TROUBLE)
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
            Ok(exit::DAMAGED)
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
