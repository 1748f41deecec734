//! `nixcap show`: print the operations of a capture, like tshark prints a
//! pcap, as text or as JSON Lines.
//!
//! The rendering lives in `nixcap_view::text` and `nixcap_view::json`; this
//! module parses the arguments, reads the capture (or the files of a rotated
//! set, joined by `nixcap_capture::stitch`), and reports damage.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nixcap_view::text::{damage_report, Options};
use nixcap_view::DecodedCapture;
use nixcap_wire::ops::Op;

use super::input::{set_members, Input};
use crate::exit;

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When standard output is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always, unless `NO_COLOR` is set.
    Always,
    /// Never.
    Never,
}

/// Arguments of `nixcap show`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One line per operation: connection, time since the capture start, op number and name, key \
argument, result, duration and bytes sent (↑) and received (↓) by the client. Each connection \
also has an open, a handshake and a close line. Bytes the decoder could not read are shown as \
such (marked !!), with the reason and stream offset.

The JSON Lines output (--json) is described in docs/JSON.md.

Given a directory or an object prefix ending in / (a rotated set from `nixcap record \
--rotate-size/--rotate-age`), every *.nixcap in it is read in name order and the set is shown as \
one capture: a connection that continues across files is shown once, whole, with times from the \
start of the first file. Pieces that do not fit together are reported on stderr (exit status 1).

Exit status: 0 when the whole capture was shown, 1 when it is damaged (everything readable is \
shown, then the damage is described on stderr), 2 when the file cannot be read as a capture or \
the arguments are wrong.")]
pub struct Args {
    /// The capture file, or an object URL (s3://bucket/key, gs://, az://,
    /// file:///); or a rotated set: a local directory, or an object prefix
    /// ending in /.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Show every field of requests and replies, and every log message and
    /// activity, under each op.
    #[arg(short = 'V', long)]
    pub verbose: bool,

    /// Print JSON Lines, one record per event (see docs/JSON.md).
    #[arg(long)]
    pub json: bool,

    /// Only this connection (repeatable).
    #[arg(long = "conn", value_name = "N")]
    pub conns: Vec<u64>,

    /// Only this op, by name, case-insensitive (repeatable).
    #[arg(long = "op", value_name = "NAME")]
    pub ops: Vec<String>,

    /// Hex dump each event's bytes under its line (with --json: a `raw`
    /// hex field).
    #[arg(long)]
    pub raw: bool,

    /// Leave out times and durations (JSON times become 0) and show the
    /// connections one after the other, for comparing the output of two
    /// captures.
    #[arg(long)]
    pub no_timestamps: bool,

    /// When to use colours.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
}

/// Whether to colour, given the choice, whether stdout is a terminal and
/// the `NO_COLOR` variable (any non-empty value disables colour).
pub fn use_color(choice: ColorChoice, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal,
    }
}

fn parse_ops(names: &[String]) -> Result<Vec<Op>, String> {
    names
        .iter()
        .map(|name| {
            Op::from_name(name).ok_or_else(|| {
                let valid: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
                format!("unknown op '{name}'; valid ops are: {}", valid.join(", "))
            })
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ops = match parse_ops(&args.ops) {
        Ok(ops) => ops,
        Err(message) => {
            eprintln!("nixcap show: {message}");
            return Ok(ExitCode::from(exit::TROUBLE));
        }
    };
    let input = Input::parse(&args.file);
    let name = input.name();
    // Damage (with the name of the file or object it is in) to report after
    // the output, and whether the pieces of a set fitted together.
    let mut damaged: Vec<(String, String)> = Vec::new();
    let mut unjoined: Vec<String> = Vec::new();
    let decoded = match set_members(&input)? {
        None => match input.read_capture() {
            Ok(capture) => {
                if let Some(err) = &capture.damage {
                    damaged.push((name.clone(), damage_report(err)));
                }
                DecodedCapture::new(capture)
            }
            Err(err) if err.is_unreadable() => {
                eprintln!("nixcap show: cannot read {name}: {}", err.kind);
                return Ok(ExitCode::from(exit::TROUBLE));
            }
            Err(err) => {
                eprint!("nixcap show: {name}: {}", damage_report(&err));
                return Ok(ExitCode::from(exit::DAMAGED));
            }
        },
        Some(members) => {
            let mut captures = Vec::new();
            for member in &members {
                let member_name = member.name();
                match member.read_capture() {
                    Ok(capture) => {
                        if let Some(err) = &capture.damage {
                            damaged.push((member_name, damage_report(err)));
                        }
                        captures.push(capture);
                    }
                    Err(err) if err.is_unreadable() => {
                        eprintln!("nixcap show: cannot read {member_name}: {}", err.kind);
                        return Ok(ExitCode::from(exit::TROUBLE));
                    }
                    Err(err) => damaged.push((member_name, damage_report(&err))),
                }
            }
            let Some(stitched) = nixcap_capture::stitch(captures) else {
                for (member, report) in &damaged {
                    eprint!("nixcap show: {member}: {report}");
                }
                eprintln!("nixcap show: {name}: no capture of the set could be read");
                return Ok(ExitCode::from(exit::DAMAGED));
            };
            unjoined = stitched
                .problems
                .iter()
                .map(|p| format!("connection {}: {}", p.link, p.problem))
                .collect();
            DecodedCapture::new(stitched.capture)
        }
    };
    let known: Vec<u64> = decoded.connections.iter().map(|c| c.conn).collect();
    if let Some(missing) = args.conns.iter().find(|c| !known.contains(c)) {
        let ids: Vec<String> = known.iter().map(u64::to_string).collect();
        eprintln!(
            "nixcap show: {name} has no connection {missing} (its connections: {})",
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        );
        return Ok(ExitCode::from(exit::TROUBLE));
    }
    let stdout = io::stdout();
    let color = !args.json
        && use_color(
            args.color,
            stdout.is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
    let options = Options {
        timestamps: !args.no_timestamps,
        verbose: args.verbose,
        raw: args.raw,
        color,
        conns: args.conns,
        ops,
    };
    let mut out = BufWriter::new(stdout.lock());
    if args.json {
        nixcap_view::json::write_json_lines(&mut out, &decoded, &options)
    } else {
        nixcap_view::text::write_text(&mut out, &decoded, &options)
    }
    .and_then(|()| out.flush())
    .context("cannot write the output")?;
    drop(out);
    for (member, report) in &damaged {
        eprint!("nixcap show: {member}: {report}");
    }
    for problem in &unjoined {
        eprintln!("nixcap show: {name}: the set does not join up: {problem}");
    }
    if !damaged.is_empty() || !unjoined.is_empty() {
        return Ok(ExitCode::from(exit::DAMAGED));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_follows_the_terminal_and_no_color() {
        assert!(use_color(ColorChoice::Auto, true, None));
        assert!(!use_color(ColorChoice::Auto, false, None));
        assert!(!use_color(ColorChoice::Auto, true, Some(OsStr::new("1"))));
        assert!(!use_color(ColorChoice::Always, true, Some(OsStr::new("1"))));
        assert!(use_color(ColorChoice::Always, false, Some(OsStr::new(""))));
        assert!(!use_color(ColorChoice::Never, true, None));
    }

    #[test]
    fn op_names_are_case_insensitive_and_unknown_ones_list_the_valid_ones() {
        assert_eq!(
            parse_ops(&["querypathinfo".into(), "SetOptions".into()]),
            Ok(vec![Op::QueryPathInfo, Op::SetOptions])
        );
        let err = parse_ops(&["Frobnicate".into()]).unwrap_err();
        assert!(err.contains("unknown op 'Frobnicate'"), "{err}");
        assert!(err.contains("QueryPathInfo"), "{err}");
    }
}
