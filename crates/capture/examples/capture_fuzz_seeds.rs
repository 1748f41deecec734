//! Writes seeds with store objects (format 1.1) for the `capture_read` and
//! `timeline` fuzz targets:
//! `cargo run -p nixcap-capture --example capture_fuzz_seeds -- DIR` (run by
//! `cargo xtask fuzz`). The committed captures of `testdata/` hold none.
//!
//! Each seed is a small capture: a connection with data both ways, a NAR, a
//! build log, an empty object and one recorded as missing, interleaved with
//! the connection's blocks over several frames; once finished (footer and
//! trailer), once as a killed recorder leaves it (no footer).
//!
//! With `sets` after DIR, it writes seeds for the `stitch` target instead:
//! rotated sets of three files (captures separated by `\xffSET`) whose
//! connections continue across the files, linked by `link` and `segment`
//! metadata, one complete and one with its middle file missing.
//!
//! With `clients CAPTURES` after DIR, it writes seeds for the `replay_stdio`
//! target: the client side of every connection of every fixture under
//! CAPTURES (`testdata/captures`), behind the byte that picks the fixtures
//! of that connection's Nix version (0: `nix-2.8`, 1: `nix-2.26`, 2:
//! `nix-2.34`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use nixcap_capture::{
    CloseReason, Direction, Header, StoreObjectKind, WriteError, Writer, WriterOptions,
};

/// The capture, finished or not.
fn seed(finish: bool) -> Result<Vec<u8>, WriteError> {
    let header = Header {
        tool_version: "nixcap fuzz seed".to_owned(),
        start_unix_nanos: 1_700_000_000_000_000_000,
        metadata: BTreeMap::new(),
    };
    let options = WriterOptions {
        frame_max_bytes: 96,
        frame_max_age_nanos: u64::MAX,
        ..WriterOptions::default()
    };
    let mut writer = Writer::new(Vec::new(), header, options)?;
    writer.open_connection(1, 10, None, BTreeMap::new())?;
    writer.data(1, Direction::ClientToServer, 20, b"client hello bytes")?;
    writer.store_object(
        30,
        StoreObjectKind::Nar,
        "/nix/store/00000000000000000000000000000000-out",
        b"\x0d\0\0\0\0\0\0\0nix-archive-1\0\0\0",
    )?;
    writer.data(1, Direction::ServerToClient, 40, b"daemon answer")?;
    writer.store_object(
        50,
        StoreObjectKind::BuildLog,
        "/nix/store/00000000000000000000000000000000-out.drv",
        b"building the output\na line on stderr\n",
    )?;
    writer.close_connection(1, 60, CloseReason::CleanEof)?;
    writer.store_object(70, StoreObjectKind::Nar, "/nix/store/empty", b"")?;
    writer.missing_store_object(
        80,
        StoreObjectKind::Nar,
        "/nix/store/11111111111111111111111111111111-gone",
        "connecting to the daemon: refused",
    )?;
    if finish {
        return Ok(writer.finish(90)?.0);
    }
    writer.flush_frame()?;
    Ok(writer.get_ref().cloned().unwrap_or_default())
}

/// File `index` of a rotated set: connection 1 goes on through every file,
/// connection 2 opens and closes in file 1.
fn set_file(index: u64, last: bool) -> Result<Vec<u8>, WriteError> {
    let mut metadata = BTreeMap::new();
    metadata.insert("rotation".to_owned(), format!("run {index}"));
    let header = Header {
        tool_version: "nixcap fuzz seed".to_owned(),
        start_unix_nanos: 1_700_000_000_000_000_000 + index * 1_000,
        metadata,
    };
    let mut writer = Writer::new(Vec::new(), header, WriterOptions::default())?;
    let linked = |conn: u64, segment: u64| {
        let mut metadata = BTreeMap::new();
        metadata.insert("link".to_owned(), format!("run-{conn}"));
        metadata.insert("segment".to_owned(), segment.to_string());
        metadata
    };
    writer.open_connection(1, 0, None, linked(1, index))?;
    writer.data(
        1,
        Direction::ClientToServer,
        10,
        format!("request {index}").as_bytes(),
    )?;
    writer.data(
        1,
        Direction::ServerToClient,
        20,
        format!("reply {index}").as_bytes(),
    )?;
    if index == 1 {
        writer.open_connection(2, 30, None, linked(2, 0))?;
        writer.data(2, Direction::ClientToServer, 40, b"short session")?;
        writer.close_connection(2, 50, CloseReason::CleanEof)?;
    }
    let reason = if last {
        CloseReason::CleanEof
    } else {
        CloseReason::Continued
    };
    writer.close_connection(1, 60, reason)?;
    Ok(writer.finish(70)?.0)
}

/// The set of `files` (indices), joined by the separator.
fn set(files: &[u64]) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::new();
    for (i, &index) in files.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\xffSET");
        }
        out.extend_from_slice(&set_file(index, index == 2)?);
    }
    Ok(out)
}

/// The fixture directories of the `replay_stdio` target, in the order its
/// first input byte picks them.
const STDIO_VERSIONS: [&str; 3] = ["nix-2.8", "nix-2.26", "nix-2.34"];

/// Writes the `replay_stdio` seeds of the fixtures under `captures` into
/// `dir`; returns how many.
fn client_seeds(dir: &std::path::Path, captures: &std::path::Path) -> Result<usize, String> {
    let mut written = 0;
    for (index, version) in STDIO_VERSIONS.iter().enumerate() {
        let version_dir = captures.join(version);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&version_dir)
            .map_err(|e| format!("listing {}: {e}", version_dir.display()))?
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "nixcap"))
            .collect();
        paths.sort();
        for path in paths {
            let capture = nixcap_capture::read_capture_file(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for connection in &capture.connections {
                let mut input = vec![index as u8];
                input.extend(connection.stream(Direction::ClientToServer));
                if input.len() > 65536 {
                    continue;
                }
                let seed = dir.join(format!("seed-{version}-{stem}-{}", connection.conn));
                std::fs::write(&seed, input)
                    .map_err(|e| format!("writing {}: {e}", seed.display()))?;
                written += 1;
            }
        }
    }
    Ok(written)
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: capture_fuzz_seeds DIR");
        return ExitCode::from(2);
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("capture_fuzz_seeds: creating {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    if std::env::args_os().nth(2).is_some_and(|a| a == "clients") {
        let Some(captures) = std::env::args_os().nth(3).map(PathBuf::from) else {
            eprintln!("usage: capture_fuzz_seeds DIR clients CAPTURES");
            return ExitCode::from(2);
        };
        return match client_seeds(&dir, &captures) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("capture_fuzz_seeds: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::args_os().nth(2).is_some_and(|a| a == "sets") {
        for (files, name) in [(&[0, 1, 2][..], "complete"), (&[0, 2][..], "gap")] {
            let written = set(files).and_then(|bytes| {
                let path = dir.join(format!("seed-set-{name}"));
                std::fs::write(&path, bytes).map_err(|source| WriteError::Io { source })
            });
            if let Err(error) = written {
                eprintln!("capture_fuzz_seeds: writing the {name} set: {error}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    for (finish, name) in [(true, "finished"), (false, "unfinished")] {
        let bytes = match seed(finish) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("capture_fuzz_seeds: writing the {name} seed: {error}");
                return ExitCode::FAILURE;
            }
        };
        let path = dir.join(format!("seed-store-objects-{name}"));
        if let Err(error) = std::fs::write(&path, bytes) {
            eprintln!("capture_fuzz_seeds: writing {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
