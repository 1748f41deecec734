//! Repository rules that the compiler does not check, run by `cargo test`
//! (and so by CI) through the `#[test]` below.
//!
//! - `nixcap-wire` depends on no async runtime and does no I/O: it is the
//!   sans-IO core.
//! - `nixcap-record` does not depend on `nixcap-wire`: nothing on the
//!   forwarding path decodes the protocol, so no decoder bug can break a
//!   build.
//! - Every Rust source file starts with a `//!` comment saying what it is for.
//! - No `todo!`, `unimplemented!` or `dbg!` in library code, and no
//!   ignored tests (the `ignore` attribute) anywhere.

use std::path::{Path, PathBuf};

/// Crates `nixcap-wire` must not depend on (directly); each is an async
/// runtime or does I/O on the codec's behalf.
const WIRE_FORBIDDEN: &[&str] = &["tokio", "async-std", "smol", "futures", "mio"];

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
    if dependency_names(&read("crates/record/Cargo.toml")).contains(&"nixcap-wire".to_string()) {
        problems.push("nixcap-record depends on nixcap-wire: the proxy must not decode".into());
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
}
