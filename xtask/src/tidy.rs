//! Repository rules that the compiler does not check, run by `cargo test`
//! (and so by CI) through the `#[test]` below.
//!
//! - `nixcap-wire` depends on no async runtime and does no I/O: it is the
//!   sans-IO core.
//! - `nixcap-record` does not depend on `nixcap-wire`: nothing on the
//!   forwarding path decodes the protocol, so no decoder bug can break a
//!   build. The other dependencies ARCHITECTURE.md rules out are in
//!   [`FORBIDDEN_EDGES`]: the container knows nothing about Nix or object
//!   storage, test-support depends on neither the recorder nor the codec,
//!   the export crate does no network I/O.
//! - The codec's sources name none of `std::{fs, net, time, thread,
//!   process}`: it does no I/O and reads no clock.
//! - `anyhow` is a dependency of the binary edge only (`nixcap`, xtask);
//!   libraries report errors with `thiserror` types.
//! - Every Rust source file starts with a `//!` comment saying what it is
//!   for, except unit-test modules (`tests.rs`), files under a `tests/`
//!   directory, and files that open with an inner attribute (`#![…]`).
//! - No source file under `crates/*/src` is longer than 900 lines.
//! - No `todo!`, `unimplemented!` or `dbg!` in library code, and no
//!   ignored tests (the `ignore` attribute) anywhere.

use std::path::{Path, PathBuf};

/// Crates `nixcap-wire` must not depend on (directly); each is an async
/// runtime or does I/O on the codec's behalf.
const WIRE_FORBIDDEN: &[&str] = &["tokio", "async-std", "smol", "futures", "mio"];

/// Modules of `std` the codec must not use: files, sockets, clocks,
/// threads, processes.
const WIRE_FORBIDDEN_STD: &[&str] = &["fs", "net", "time", "thread", "process"];

/// Dependencies a crate must not have: its directory, its name, the
/// dependency, and why.
const FORBIDDEN_EDGES: &[(&str, &str, &str, &str)] = &[
    (
        "crates/record",
        "nixcap-record",
        "nixcap-wire",
        "the proxy must not decode",
    ),
    (
        "crates/capture",
        "nixcap-capture",
        "nixcap-wire",
        "the container knows nothing about Nix",
    ),
    (
        "crates/capture",
        "nixcap-capture",
        "nixcap-objstore",
        "the capture readers take any Read + Seek",
    ),
    (
        "crates/test-support",
        "nixcap-test-support",
        "nixcap-record",
        "any crate may use test-support in its tests",
    ),
    (
        "crates/test-support",
        "nixcap-test-support",
        "nixcap-wire",
        "any crate may use test-support in its tests",
    ),
    (
        "crates/export",
        "nixcap-export",
        "nixcap-objstore",
        "the export crate does no network I/O; the cli uploads",
    ),
];

/// The crates that may depend on `anyhow`: the binary edge.
const ANYHOW_ALLOWED: &[&str] = &["crates/cli", "xtask"];

/// The longest a source file under `crates/*/src` may be, in lines.
const MAX_SOURCE_LINES: usize = 900;

/// The `std` modules of [`WIRE_FORBIDDEN_STD`] that `text` names, as
/// `std::fs` or inside `std::{…}`.
fn forbidden_std_modules(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for module in WIRE_FORBIDDEN_STD {
        let direct = format!("std::{module}");
        let named_directly = text.match_indices(&direct).any(|(at, _)| {
            !text[at + direct.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        });
        let named_in_group = text.match_indices("std::{").any(|(at, _)| {
            let group = &text[at + 6..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == *module)
        });
        if named_directly || named_in_group {
            found.push(*module);
        }
    }
    found
}

/// The `[dependencies]` names of a crate manifest (not dev-dependencies).
fn dependency_names(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once(['=', '.']) {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "snapshots")
            {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every rule broken in the workspace at `root`, one line each.
pub fn problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap_or_default();

    for name in dependency_names(&read("crates/wire/Cargo.toml")) {
        if WIRE_FORBIDDEN.contains(&name.as_str()) {
            problems.push(format!(
                "nixcap-wire depends on `{name}`: the codec must stay sans-IO"
            ));
        }
    }
    for (dir, name, dependency, why) in FORBIDDEN_EDGES {
        let names = dependency_names(&read(&format!("{dir}/Cargo.toml")));
        if names.iter().any(|n| n == dependency) {
            problems.push(format!("{name} depends on {dependency}: {why}"));
        }
    }
    let mut manifests = vec!["xtask".to_owned()];
    if let Ok(entries) = std::fs::read_dir(root.join("crates")) {
        for entry in entries.flatten() {
            manifests.push(format!("crates/{}", entry.file_name().to_string_lossy()));
        }
    }
    manifests.sort();
    for krate in manifests {
        let names = dependency_names(&read(&format!("{krate}/Cargo.toml")));
        if names.iter().any(|n| n == "anyhow") && !ANYHOW_ALLOWED.contains(&krate.as_str()) {
            problems.push(format!(
                "{krate} depends on anyhow: libraries use thiserror, anyhow stays at the binary edge"
            ));
        }
    }

    let mut files = Vec::new();
    for dir in ["crates", "xtask", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let rel = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let is_test_module = rel.ends_with("/tests.rs") || rel.contains("/tests/");
        if rel.starts_with("crates/wire/src/") && !is_test_module {
            for module in forbidden_std_modules(&text) {
                problems.push(format!(
                    "{rel}: uses `std::{module}`: the codec does no I/O and reads no clock"
                ));
            }
        }
        let in_crate_src = rel.starts_with("crates/") && rel.split('/').nth(2) == Some("src");
        let lines = text.lines().count();
        if in_crate_src && lines > MAX_SOURCE_LINES {
            problems.push(format!(
                "{rel}: {lines} lines; split it along its seams (at most {MAX_SOURCE_LINES})"
            ));
        }
        if !first.starts_with("//!") && !first.starts_with("#![") && !is_test_module {
            problems.push(format!("{rel}: does not start with a `//!` comment"));
        }
        // Split the markers so this file does not trip its own rules.
        let ignore_attr = concat!("#[", "ignore");
        if text.contains(ignore_attr) {
            problems.push(format!(
                "{rel}: has an ignored test (a skipped test proves nothing)"
            ));
        }
        if !is_test_module && !rel.starts_with("xtask/") {
            for marker in [
                concat!("todo", "!("),
                concat!("unimplemented", "!("),
                concat!("dbg", "!("),
            ] {
                if text.contains(marker) {
                    problems.push(format!("{rel}: contains `{marker}`"));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let problems = problems(&root);
        assert!(
            problems.is_empty(),
            "tidy rules broken:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn dependency_names_read_only_the_dependencies_table() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\nserde.workspace = true\nthiserror = \"2\"\n\n[dev-dependencies]\ntokio = \"1\"\n";
        assert_eq!(dependency_names(manifest), vec!["serde", "thiserror"]);
    }

    #[test]
    fn std_io_modules_are_found_directly_and_in_groups() {
        assert_eq!(forbidden_std_modules("use std::fs;\n"), vec!["fs"]);
        assert_eq!(
            forbidden_std_modules("use std::{fmt, net::TcpStream, time::Instant};"),
            vec!["net", "time"]
        );
        assert!(forbidden_std_modules("use std::fmt;\nuse std::fsx;\n// thread").is_empty());
    }

    #[test]
    fn io_in_the_codec_anyhow_in_a_library_and_long_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("nixcap-tidy-rules-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("crates/wire/src")).unwrap();
        std::fs::create_dir_all(dir.join("crates/view/src")).unwrap();
        std::fs::write(
            dir.join("crates/wire/src/lib.rs"),
            "//! Codec.\nuse std::time::Instant;\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("crates/view/Cargo.toml"),
            "[dependencies]\nanyhow.workspace = true\n",
        )
        .unwrap();
        let long = format!("//! Long.\n{}", "fn f() {}\n".repeat(MAX_SOURCE_LINES));
        std::fs::write(dir.join("crates/view/src/lib.rs"), long).unwrap();
        let found = problems(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found.iter().any(|p| p.contains("uses `std::time`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("crates/view depends on anyhow")),
            "{found:?}"
        );
        assert!(found.iter().any(|p| p.contains("901 lines")), "{found:?}");
    }

    #[test]
    fn a_runtime_in_the_codec_is_reported() {
        let dir = std::env::temp_dir().join(format!("nixcap-tidy-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("crates/wire")).unwrap();
        std::fs::create_dir_all(dir.join("crates/record")).unwrap();
        std::fs::write(
            dir.join("crates/wire/Cargo.toml"),
            "[dependencies]\ntokio = \"1\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("crates/record/Cargo.toml"),
            "[dependencies]\nnixcap-wire.workspace = true\n",
        )
        .unwrap();
        let found = problems(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn forbidden_dependencies_are_reported() {
        let dir = std::env::temp_dir().join(format!("nixcap-tidy-edges-{}", std::process::id()));
        for (krate, deps) in [
            (
                "capture",
                "nixcap-wire.workspace = true\nnixcap-objstore.workspace = true\n",
            ),
            ("test-support", "nixcap-record = { path = \"../record\" }\n"),
            ("export", "nixcap-view.workspace = true\n"),
        ] {
            std::fs::create_dir_all(dir.join("crates").join(krate)).unwrap();
            std::fs::write(
                dir.join("crates").join(krate).join("Cargo.toml"),
                format!(
                    "[dependencies]\n{deps}[dev-dependencies]\nnixcap-objstore.workspace = true\n"
                ),
            )
            .unwrap();
        }
        let found = problems(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            found,
            [
                "nixcap-capture depends on nixcap-wire: the container knows nothing about Nix",
                "nixcap-capture depends on nixcap-objstore: the capture readers take any Read + Seek",
                "nixcap-test-support depends on nixcap-record: any crate may use test-support in its tests",
            ]
        );
    }
}
