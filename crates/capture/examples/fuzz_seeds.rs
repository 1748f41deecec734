//! Writes seeds with store objects (format 1.1) for the `capture_read` and
//! `timeline` fuzz targets:
//! `cargo run -p nixcap-capture --example fuzz_seeds -- DIR` (run by
//! `cargo xtask fuzz`). The committed captures of `testdata/` hold none.
//!
//! Each seed is a small capture: a connection with data both ways, a NAR, a
//! build log, an empty object and one recorded as missing, interleaved with
//! the connection's blocks over several frames; once finished (footer and
//! trailer), once as a killed recorder leaves it (no footer).

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

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds DIR");
        return ExitCode::from(2);
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("fuzz_seeds: creating {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    for (finish, name) in [(true, "finished"), (false, "unfinished")] {
        let bytes = match seed(finish) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("fuzz_seeds: writing the {name} seed: {error}");
                return ExitCode::FAILURE;
            }
        };
        let path = dir.join(format!("seed-store-objects-{name}"));
        if let Err(error) = std::fs::write(&path, bytes) {
            eprintln!("fuzz_seeds: writing {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
