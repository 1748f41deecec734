//! Writes the seed corpus of the `serve_session` fuzz target:
//! `cargo run -p nixcap-wire --features fuzzing --example wire_fuzz_seeds -- DIR`
//! (run by `cargo xtask fuzz`).
//!
//! Each seed is one connection of [`every_serve_command`] at serve version
//! 2.minor, without its two hellos (the target writes those from the flag
//! byte), in the session input format, with default and with tiny limits.

use std::path::PathBuf;
use std::process::ExitCode;

use nixcap_wire::fuzzing::{encode_session_input, every_serve_command};
use nixcap_wire::session::Direction;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: wire_fuzz_seeds DIR");
        return ExitCode::from(2);
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("wire_fuzz_seeds: creating {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    for minor in 0..8u8 {
        let chunks = every_serve_command(minor);
        let after_hellos: Vec<(Direction, &[u8])> = chunks
            .iter()
            .skip(2)
            .map(|(direction, bytes)| (*direction, bytes.as_slice()))
            .collect();
        for tiny in [0, 1] {
            let input = encode_session_input(minor << 1 | tiny, &after_hellos);
            let path = dir.join(format!("seed-serve-2.{minor}-{tiny}"));
            if let Err(error) = std::fs::write(&path, input) {
                eprintln!("wire_fuzz_seeds: writing {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
