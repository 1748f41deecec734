//! External tools some tests need besides Nix, installed by `.ci/run`:
//! Python modules (DuckDB) and the SeaweedFS server.
//!
//! A missing tool makes the test skip (saying why), or fail when
//! `NIXCAP_REQUIRE_NIX=1` is set, as CI sets it.

use std::process::{Command, Stdio};

use crate::peers::{nix_required, REQUIRE_NIX_ENV};

/// Skips (returns `None` after printing why) or, under
/// `NIXCAP_REQUIRE_NIX=1`, panics.
#[track_caller]
pub fn skip_or_fail<T>(why: &str) -> Option<T> {
    if nix_required() {
        panic!("{REQUIRE_NIX_ENV}=1 is set but {why} (`.ci/run` installs it)");
    }
    eprintln!("skipping: {why}");
    None
}

/// `python3`, when it can import `module`.
#[track_caller]
pub fn python_with_module(module: &str) -> Option<&'static str> {
    let status = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Some("python3"),
        other => skip_or_fail(&format!(
            "python3 cannot import {module} ({other:?}; pip install {module})"
        )),
    }
}
