//! `nixcap redact`: scrub secrets from a capture before sharing it.
//!
//! The work is done by `nixcap_redact`, which rewrites protocol fields (not
//! byte patterns); this module reads the input, writes the output next to
//! its final name and renames it into place, and prints what was redacted.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use nixcap_capture::read_capture_file;
use nixcap_redact::{redact, RedactOptions, KEPT_METADATA};
use nixcap_view::DecodedCapture;

/// Arguments of `nixcap redact`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Redacts by protocol field: the values of every setting override sent with SetOptions (the names \
stay), every metadata value of the file and of each connection except the tool version, and the \
peer process ids (uid and gid stay). With --drop-nars, the contents of every regular file inside \
NARs are replaced by a same-length placeholder, so the NARs keep their structure and sizes.

Each value becomes `redacted:` and 16 hex digits of an HMAC-SHA256 under a key drawn at random \
for this run: equal values get equal placeholders within the output, so diffs still line up, and \
the key is not stored.

The output is a new capture that decodes like the input; `nixcap verify` checks it. Without \
--drop-nars it still replays.

Exit status: 0 when the redacted capture was written (a damaged capture is warned about, and what \
precedes the damage is redacted), 2 when the capture cannot be read or the output not written.")]
pub struct Args {
    /// The capture to redact.
    #[arg(value_name = "IN")]
    pub input: PathBuf,

    /// Where to write the redacted capture.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,

    /// Keep the value of this setting override (repeatable).
    #[arg(long = "keep-setting", value_name = "NAME")]
    pub keep_settings: Vec<String>,

    /// Also replace the contents of files inside NARs with placeholders.
    #[arg(long)]
    pub drop_nars: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.input == args.output {
        anyhow::bail!("the output must be a different file from the input");
    }
    let capture = read_capture_file(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let mut err = io::stderr().lock();
    if let Some(damage) = &capture.damage {
        writeln!(
            err,
            "nixcap: warning: {} is damaged ({}); redacting what precedes the damage",
            args.input.display(),
            damage.kind
        )?;
    }
    let decoded = DecodedCapture::new(capture);
    let options = RedactOptions {
        keep_settings: args.keep_settings.iter().cloned().collect::<BTreeSet<_>>(),
        drop_nars: args.drop_nars,
        ..RedactOptions::new()
    };

    let partial = {
        let mut name = args.output.clone().into_os_string();
        name.push(".partial");
        PathBuf::from(name)
    };
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let result = redact(&decoded, BufWriter::new(file), &options);
    let (out, report) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e).context("redacting");
        }
    };
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the output")?;
    file.sync_all().context("syncing the output")?;
    std::fs::rename(&partial, &args.output).with_context(|| {
        format!(
            "renaming {} to {}",
            partial.display(),
            args.output.display()
        )
    })?;

    let stdout = io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{}: redacted", args.output.display())?;
    if report.counts.is_empty() {
        writeln!(out, "  nothing to redact")?;
    }
    for (kind, count) in &report.counts {
        writeln!(out, "  {count:>10} {kind}")?;
    }
    if !report.settings.is_empty() {
        let names: Vec<String> = report
            .settings
            .iter()
            .map(|(n, c)| format!("{n} ({c})"))
            .collect();
        writeln!(out, "  settings redacted: {}", names.join(", "))?;
    }
    if !report.kept_settings.is_empty() {
        let names: Vec<String> = report
            .kept_settings
            .iter()
            .map(|(n, c)| format!("{n} ({c})"))
            .collect();
        writeln!(out, "  settings kept: {}", names.join(", "))?;
    }
    writeln!(out, "  metadata kept: {}", KEPT_METADATA.join(", "))?;
    if !report.undecoded_connections.is_empty() {
        let ids: Vec<String> = report
            .undecoded_connections
            .iter()
            .map(u64::to_string)
            .collect();
        writeln!(
            err,
            "nixcap: warning: connections {} have bytes that could not be decoded; fields inside them were not redacted",
            ids.join(", ")
        )?;
    }
    for (placeholder, hits) in &report.residual {
        writeln!(
            err,
            "nixcap: warning: the value redacted as {placeholder} still occurs {hits} times in the streams (outside the fields nixcap redacts)"
        )?;
    }
    if report.dropped_unknown_blocks > 0 {
        writeln!(
            err,
            "nixcap: warning: dropped {} blocks of types this nixcap does not know",
            report.dropped_unknown_blocks
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
