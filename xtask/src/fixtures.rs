//! `cargo xtask fixtures`: records the committed captures in `testdata/captures/` from real Nix
//! daemons, or checks that recording them again gives the same protocol content.
//!
//! The work is done by the `nixcap-fixtures` program (`crates/fixtures`), which this task
//! builds and runs with cargo, so that this crate keeps its single dependency. It needs root and the Nix versions of `cargo xtask nix-peers install`.

use std::process::Command;

use anyhow::{bail, Context as _};

/// Where the captures live, relative to the workspace root.
const CAPTURES_DIR: &str = "testdata/captures";

const HELP: &str = "\
usage: cargo xtask fixtures [--check] [--series S]... [--scenario NAME]... [--keep DIR]

Records every scenario of nixcap_test_support::scenarios with Nix 2.8, 2.26 and 2.34 (client
and daemon of the same version, a recorder in front of a fresh daemon) into
testdata/captures/nix-<series>/<scenario>.nixcap, with a .json sidecar per capture, then
rewrites testdata/captures/README.md and MANIFEST.sha256. Needs root and
`cargo xtask nix-peers install`.

options:
  --check            verify MANIFEST.sha256, record again into a temporary directory and
                     compare with the committed captures; nothing is written to testdata
  --keep DIR         with --check, record into DIR instead and keep it
  --series S         only this series (2.8, 2.26 or 2.34); repeatable
  --scenario NAME    only this scenario; repeatable
";

/// Entry point of `cargo xtask fixtures`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut check = false;
    let mut passed: Vec<String> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--series" | "--scenario" | "--keep" => {
                let value = iter
                    .next()
                    .with_context(|| format!("{arg} needs a value"))?;
                passed.push(arg.clone());
                passed.push(value.clone());
            }
            "help" | "--help" | "-h" => {
                eprint!("{HELP}");
                return Ok(());
            }
            other => {
                eprint!("{HELP}");
                bail!("unexpected argument `{other}`");
            }
        }
    }
    if !check && passed.iter().any(|arg| arg == "--keep") {
        bail!("--keep only goes with --check");
    }
    let root = crate::workspace_root();
    let captures = root.join(CAPTURES_DIR);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The remote-store scenarios run the `nixcap` binary as their remote program; it is found
    // next to nixcap-fixtures.
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--package", "nixcap", "--bin", "nixcap"])
        .status()
        .context("running cargo to build nixcap")?;
    if !status.success() {
        bail!("building nixcap failed ({status})");
    }
    let mut command = Command::new(cargo);
    command.current_dir(&root).args([
        "run",
        "--quiet",
        "--package",
        "nixcap-fixtures",
        "--bin",
        "nixcap-fixtures",
        "--",
    ]);
    if check {
        command.arg("check").arg("--committed").arg(&captures);
    } else {
        command.arg("record").arg("--out").arg(&captures);
    }
    command.args(&passed);
    let status = command
        .status()
        .context("running cargo to build and run nixcap-fixtures")?;
    if !status.success() {
        if check {
            bail!("the captures in {CAPTURES_DIR} differ from a fresh recording (see above)");
        }
        bail!("recording the captures failed ({status})");
    }
    Ok(())
}
