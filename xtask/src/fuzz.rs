//! `cargo xtask fuzz [TARGET…] [--secs N]`: seeds the corpora of the fuzz
//! targets in `fuzz/` from `testdata/` and runs each target in turn with
//! cargo-fuzz (libFuzzer) for N seconds, then prints how many inputs each
//! one executed and whether it found anything.
//!
//! Seeds (written under `fuzz/corpus/<target>/`, which git ignores):
//! - `session`, `nar`: `fuzz/seed-corpus.py` (real connections of
//!   `testdata/real-sessions`, NARs of `testdata/nix-upstream/nars`);
//! - `capture_read`, `timeline`: every file of `testdata/corrupt/` and every
//!   fixture capture of `testdata/captures/` up to the input size limit, and
//!   captures with store objects from the `capture_fuzz_seeds` example of
//!   `nixcap-capture`;
//! - `replay_match`: the client side of every real connection of
//!   `testdata/real-sessions`, behind the byte that picks the replay server
//!   of the client's Nix version (see `fuzz/fuzz_targets/replay_match.rs`);
//! - `replay_stdio`: the client side of every real connection of
//!   `testdata/real-sessions` and of every fixture connection of
//!   `testdata/captures` (from the `capture_fuzz_seeds` example of `nixcap-capture`,
//!   `clients`), behind the byte that picks the fixtures of the client's Nix
//!   version (see `fuzz/fuzz_targets/replay_stdio.rs`);
//! - `client`, `check`: what real daemons sent on each connection of
//!   `testdata/real-sessions`;
//! - `serve_session`: a connection using every serve command at each minor
//!   version, from the `wire_fuzz_seeds` example of `nixcap-wire`;
//! - `stitch`: rotated sets with linked connections (whole, and with a file
//!   missing), from the `capture_fuzz_seeds` example of `nixcap-capture` (`sets`);
//! - `objstore_read`: every fixture capture of `testdata/captures` as the
//!   object, behind an empty script and a short one;
//! - `aws_config`: three shapes of AWS shared files, written here.
//!
//! cargo-fuzz needs a nightly compiler; on a stable one the task sets
//! `RUSTC_BOOTSTRAP=1` (unless it is already set).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The fuzz targets, with the `-max_len` each is run with (`None`: the
/// libFuzzer default).
const TARGETS: &[(&str, Option<usize>)] = &[
    ("session", Some(65536)),
    ("serve_session", Some(65536)),
    ("nar", None),
    ("capture_read", Some(65536)),
    ("replay_match", Some(65536)),
    ("replay_stdio", Some(65536)),
    ("client", Some(65536)),
    ("check", Some(65536)),
    ("timeline", Some(65536)),
    ("stitch", Some(65536)),
    ("objstore_read", Some(65536)),
    ("aws_config", Some(4096)),
];

/// Default time per target.
const DEFAULT_SECS: u64 = 60;

/// Largest seed written (longer inputs would be truncated by `-max_len`).
const MAX_SEED_LEN: usize = 65536;

/// What one run of a target did.
#[derive(Debug)]
struct Outcome {
    target: String,
    secs: u64,
    execs: Option<u64>,
    crashed: bool,
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut secs = DEFAULT_SECS;
    let mut targets = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--secs" => {
                let value = iter.next().context("--secs needs a number of seconds")?;
                secs = value
                    .parse()
                    .with_context(|| format!("--secs {value}: not a number of seconds"))?;
            }
            "-h" | "--help" => {
                print_help();
                return Ok(());
            }
            name if TARGETS.iter().any(|(t, _)| *t == name) => targets.push(name.to_owned()),
            other => {
                print_help();
                bail!("unknown fuzz target or option `{other}`")
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    }
    let fuzz_dir = crate::workspace_root().join("fuzz");
    let mut outcomes = Vec::new();
    for target in &targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        let seeds = seed(target, &fuzz_dir, &corpus)?;
        eprintln!(
            "xtask fuzz: {target}: {seeds} seed files in {}",
            corpus.display()
        );
        outcomes.push(run_target(target, &fuzz_dir, &corpus, secs)?);
    }
    println!(
        "\n{:<14} {:>6} {:>14} {:>10}  result",
        "target", "secs", "execs", "execs/s"
    );
    for outcome in &outcomes {
        let execs = outcome
            .execs
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let rate = outcome
            .execs
            .map_or_else(|| "?".to_owned(), |n| (n / outcome.secs.max(1)).to_string());
        let result = if outcome.crashed {
            "FOUND A PROBLEM (see fuzz/artifacts)"
        } else {
            "ok"
        };
        println!(
            "{:<14} {:>6} {:>14} {:>10}  {result}",
            outcome.target, outcome.secs, execs, rate
        );
    }
    if outcomes.iter().any(|o| o.crashed) {
        bail!("a fuzz target failed; its input is under fuzz/artifacts/<target>/");
    }
    Ok(())
}

fn print_help() {
    eprintln!("usage: cargo xtask fuzz [TARGET…] [--secs N]   (default: every target, {DEFAULT_SECS} s each)");
    eprintln!("targets:");
    for (name, _) in TARGETS {
        eprintln!("  {name}");
    }
}

/// Writes the seed files of `target` into `corpus`; returns how many files
/// the corpus directory holds afterwards.
fn seed(target: &str, fuzz_dir: &Path, corpus: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let testdata = crate::workspace_root().join("testdata");
    match target {
        "session" | "nar" => {
            let status = Command::new("python3")
                .arg(fuzz_dir.join("seed-corpus.py"))
                .status()
                .context("running python3 fuzz/seed-corpus.py")?;
            if !status.success() {
                bail!("fuzz/seed-corpus.py failed ({status})");
            }
        }
        "capture_read" | "timeline" => {
            let mut files = files_in(&testdata.join("corrupt"))?;
            for dir in files_in(&testdata.join("captures"))? {
                if dir.is_dir() {
                    files.extend(files_in(&dir)?);
                }
            }
            for file in files {
                if file.extension().is_none_or(|ext| ext != "nixcap") {
                    continue;
                }
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                if bytes.len() > MAX_SEED_LEN {
                    continue;
                }
                let parent = file
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
                let dest = corpus.join(format!("seed-{parent}-{}", name.unwrap_or_default()));
                write(&dest, &bytes)?;
            }
            // Captures with store objects (format 1.1), which testdata lacks.
            run_seed_example("nixcap-capture", &[], corpus, &[])?;
        }
        "stitch" => {
            run_seed_example("nixcap-capture", &[], corpus, &["sets"])?;
        }
        "replay_match" | "replay_stdio" => {
            // `replay_match`: servers 0–2 serve Nix 2.8, 3–5 Nix 2.26, 6–8
            // Nix 2.34 (strict, keyed, reuse each); `replay_stdio`: 0, 1, 2.
            let (stride, modes) = if target == "replay_match" {
                (3, 3)
            } else {
                (1, 1)
            };
            for file in files_in(&testdata.join("real-sessions"))? {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(stem) = name.strip_suffix(".nxsess.zst") else {
                    continue;
                };
                let client = stem.strip_prefix("probe-").unwrap_or(stem);
                let version: u8 = if client.contains("2.8.0") && !client.starts_with("client-2.34")
                {
                    0
                } else if client.contains("2.26") {
                    1
                } else {
                    2
                };
                for (index, connection) in load_session(&file)?.into_iter().enumerate() {
                    let client_bytes: Vec<u8> = connection
                        .iter()
                        .filter(|(direction, _)| *direction == 0)
                        .flat_map(|(_, bytes)| bytes.iter().copied())
                        .collect();
                    if client_bytes.len() + 1 > MAX_SEED_LEN {
                        continue;
                    }
                    for mode in 0..modes {
                        let mut input = vec![version * stride + mode];
                        input.extend_from_slice(&client_bytes);
                        write(
                            &corpus.join(format!("seed-{stem}-{index:03}-{mode}")),
                            &input,
                        )?;
                    }
                }
            }
            if target == "replay_stdio" {
                let captures = testdata.join("captures");
                let captures = captures.to_string_lossy();
                run_seed_example("nixcap-capture", &[], corpus, &["clients", &captures])?;
            }
        }
        "client" | "check" => {
            // What real daemons sent on each recorded connection.
            for file in files_in(&testdata.join("real-sessions"))? {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(stem) = name.strip_suffix(".nxsess.zst") else {
                    continue;
                };
                for (index, connection) in load_session(&file)?.into_iter().enumerate() {
                    let daemon_bytes: Vec<u8> = connection
                        .iter()
                        .filter(|(direction, _)| *direction == 1)
                        .flat_map(|(_, bytes)| bytes.iter().copied())
                        .collect();
                    if daemon_bytes.len() > MAX_SEED_LEN {
                        continue;
                    }
                    write(
                        &corpus.join(format!("seed-{stem}-{index:03}")),
                        &daemon_bytes,
                    )?;
                }
            }
        }
        "objstore_read" => {
            // Each fixture capture as the object, behind an empty script
            // (and, twice as large, behind a script of reads).
            for dir in files_in(&testdata.join("captures"))? {
                if !dir.is_dir() {
                    continue;
                }
                for file in files_in(&dir)? {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    if bytes.len() + 8 > MAX_SEED_LEN {
                        continue;
                    }
                    let parent = dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let mut input = vec![0, 0];
                    input.extend_from_slice(&bytes);
                    write(&corpus.join(format!("seed-{parent}-{name}")), &input)?;
                    let mut input = vec![2, 0x00, 0x00, 0x08, 0x01, 0x00, 0x40, 4];
                    input.extend_from_slice(&bytes);
                    write(&corpus.join(format!("seed-{parent}-{name}-reads")), &input)?;
                }
            }
        }
        "aws_config" => {
            // The shapes of the AWS CLI's shared files: a credentials file,
            // a config file with named profiles, and what people get wrong.
            let shapes: [&str; 3] = [
                "[default]\naws_access_key_id = AKIAEXAMPLEKEYID0001\n\
                 aws_secret_access_key = wJalrXUtnFEMIEXAMPLESECRETKEY\n\
                 aws_session_token = IQoJb3JpZ2luX2VjEXAMPLETOKEN\n",
                "# farm uploads\n[default]\nregion = us-east-1\n\n[profile farm]\n\
                 region=eu-west-1\nendpoint_url = http://127.0.0.1:9000\n\
                 aws_access_key_id=FARMKEYID\n; comment\n[farm]\naws_access_key_id = OTHER\n",
                "[ default ]\n  AWS_Access_Key_Id = spaced = value \n[default\nregion\n=\n[]\n",
            ];
            for (index, text) in shapes.iter().enumerate() {
                for profile in 0..2u8 {
                    let mut input = vec![profile];
                    input.extend_from_slice(text.as_bytes());
                    write(&corpus.join(format!("seed-{index}-{profile}")), &input)?;
                }
            }
        }
        "serve_session" => {
            // Connections of every serve command at each minor, built by the
            // codec's encoders (no serve transcripts are in testdata).
            run_seed_example("nixcap-wire", &["--features", "fuzzing"], corpus, &[])?;
        }
        other => bail!("no seeds known for `{other}`"),
    }
    Ok(files_in(corpus)?.len())
}

/// Runs the seed example of `package` (`nixcap-NAME` has `NAME_fuzz_seeds`;
/// the names differ because examples of a workspace share one directory),
/// with `flags`, which writes its seeds into `corpus` (with `args` after it).
fn run_seed_example(
    package: &str,
    flags: &[&str],
    corpus: &Path,
    args: &[&str],
) -> anyhow::Result<()> {
    let example = format!("{}_fuzz_seeds", package.trim_start_matches("nixcap-"));
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["run", "-q", "-p", package])
        .args(flags)
        .args(["--example", &example, "--"])
        .arg(corpus)
        .args(args)
        .current_dir(crate::workspace_root())
        .status()
        .with_context(|| format!("running the {example} example of {package}"))?;
    if !status.success() {
        bail!("the {example} example of {package} failed ({status})");
    }
    Ok(())
}

fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        files.push(
            entry
                .with_context(|| format!("listing {}", dir.display()))?
                .path(),
        );
    }
    files.sort();
    Ok(files)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// One recorded connection: its chunks as (direction, bytes), direction 0
/// being client to daemon.
type Connection = Vec<(u8, Vec<u8>)>;

/// Reads a `.nxsess.zst` transcript (format in `testdata/real-sessions/README.md`).
fn load_session(path: &Path) -> anyhow::Result<Vec<Connection>> {
    let output = Command::new("zstd")
        .arg("-dc")
        .arg(path)
        .output()
        .context("running zstd -dc (is the zstd command installed?)")?;
    if !output.status.success() {
        bail!("zstd -dc {} failed ({})", path.display(), output.status);
    }
    let data = output.stdout;
    let bad = || anyhow::anyhow!("{}: not a well-formed NXSESS01 file", path.display());
    let mut pos = 0usize;
    let mut take = |len: usize| -> anyhow::Result<&[u8]> {
        let end = pos
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(bad)?;
        let slice = &data[pos..end];
        pos = end;
        Ok(slice)
    };
    if take(8)? != b"NXSESS01" {
        return Err(bad());
    }
    let u32_at = |bytes: &[u8]| -> anyhow::Result<usize> {
        let array: [u8; 4] = bytes.try_into().map_err(|_| bad())?;
        Ok(u32::from_le_bytes(array) as usize)
    };
    let count = u32_at(take(4)?)?;
    let mut connections = Vec::new();
    for _ in 0..count {
        let chunks = u32_at(take(4)?)?;
        let mut connection = Vec::new();
        for _ in 0..chunks {
            let direction = take(1)?[0];
            let len = u32_at(take(4)?)?;
            connection.push((direction, take(len)?.to_vec()));
        }
        connections.push(connection);
    }
    Ok(connections)
}

/// Runs `cargo fuzz run TARGET` for `secs` seconds, passing its output
/// through, and picks the number of executed inputs from libFuzzer's final
/// statistics.
fn run_target(target: &str, fuzz_dir: &Path, corpus: &Path, secs: u64) -> anyhow::Result<Outcome> {
    let max_len = TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .and_then(|(_, max_len)| *max_len);
    let mut command = Command::new("cargo");
    command
        .current_dir(fuzz_dir)
        .args(["fuzz", "run", target])
        .arg(corpus)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=60")
        .stderr(Stdio::piped());
    if let Some(max_len) = max_len {
        command.arg(format!("-max_len={max_len}"));
    }
    if target == "replay_match" || target == "replay_stdio" {
        // `replay_match` keeps its replay servers (and their threads) alive
        // for the whole process, and `replay_stdio` does not wait for the
        // thread that reads a session's input (as `serve_stdio` documents),
        // so LeakSanitizer reports the thread-local destructor registrations
        // of threads still alive at its check (32 bytes from glibc's
        // `__cxa_thread_atexit_impl`), not a leak.
        command.arg("-detect_leaks=0");
    }
    if std::env::var_os("RUSTC_BOOTSTRAP").is_none() {
        command.env("RUSTC_BOOTSTRAP", "1");
    }
    eprintln!("xtask fuzz: {target}: running for {secs} s");
    let mut child = command
        .spawn()
        .context("running cargo fuzz (install it with `cargo install cargo-fuzz --locked`)")?;
    let mut execs = None;
    let mut crashed = false;
    if let Some(stderr) = child.stderr.take() {
        let mut out = std::io::stderr().lock();
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading the fuzzer's output")?;
            if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
                execs = n.trim().parse().ok();
            }
            if line.contains("ERROR: libFuzzer") || line.contains("panicked at") {
                crashed = true;
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child.wait().context("waiting for cargo fuzz")?;
    if !status.success() {
        crashed = true;
    }
    Ok(Outcome {
        target: target.to_owned(),
        secs,
        execs,
        crashed,
    })
}
