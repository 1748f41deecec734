//! Captures in a real S3 server: SeaweedFS on loopback (`.ci/run` installs
//! it from PyPI). `nixcap info`, `verify`, `diff`, `show` and `export` read
//! the committed fixtures from it by URL and print what they print for the
//! local files; `info` on a prefix summarises the set; `replay` of a URL
//! serves real Nix clients what the local file serves them; credentials
//! never appear in output.
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
pub(crate) fn store(server: &SeaweedFs, url: &str) -> Store {
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

/// What `nixcap replay CAPTURE --strict --report FILE -- sh -c SCRIPT` did:
/// its status, output, and the report's unmatched requests.
struct ReplayRun {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    unmatched: Value,
}

/// Replays `capture` (a path or URL) to the real client steps of a
/// committed fixture, run one after the other by a shell that prints each
/// step's status.
fn replay_fixture_steps(
    server: &SeaweedFs,
    capture: &str,
    scenario_name: &str,
    argvs: &[Vec<String>],
) -> ReplayRun {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    nixcap_test_support::scenarios::scenario(scenario_name)
        .unwrap()
        .write_inputs(&work)
        .unwrap();
    let script: Vec<String> = argvs
        .iter()
        .map(|argv| format!("{}; echo \"status $?\"", argv.join(" ")))
        .collect();
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(["replay", capture, "--strict", "--report"])
        .arg(&report)
        .args(["--", "sh", "-c", &script.join("\n")])
        .current_dir(&work)
        .env("HOME", dir.path())
        .env("NIX_CONF_DIR", dir.path())
        .envs(server.env())
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&report)
        .unwrap_or_else(|err| panic!("no report from replay of {capture} ({err}): {output:?}"));
    let report: Value = serde_json::from_str(&report).unwrap();
    ReplayRun {
        status: output.status.code(),
        stdout: text(&output),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        unmatched: report["unmatched"].clone(),
    }
}

#[test]
fn replay_of_a_capture_in_seaweedfs_serves_real_clients_as_the_local_file_does() {
    use nixcap_test_support::scenarios::FixtureRecord;
    use nixcap_test_support::{peer_or_skip, NixVersion};

    // `nixcap replay -- CMD` runs CMD on the host: Nix 2.8's clients.
    let Some(peer) = peer_or_skip(NixVersion::V2_8) else {
        return;
    };
    assert!(peer.chroot().is_none(), "Nix 2.8 runs on the host");
    let Some(server) = SeaweedFs::start_or_skip() else {
        return;
    };
    let bucket = store(&server, "s3://replays/2.8/");
    for scenario in ["query", "build-fail"] {
        let local = fixtures_dir().join(format!("nix-2.8/{scenario}.nixcap"));
        let sidecar: FixtureRecord =
            serde_json::from_str(&std::fs::read_to_string(local.with_extension("json")).unwrap())
                .unwrap();
        let argvs: Vec<Vec<String>> = sidecar.run.steps.iter().map(|s| s.argv.clone()).collect();
        let url = bucket
            .upload_file(&local, &format!("{scenario}.nixcap"))
            .unwrap()
            .url;
        // The same object through a `file://` URL: the other store kind the
        // tests can reach without a cloud account.
        let file_url = format!("file://{}", local.canonicalize().unwrap().display());

        let from_file = replay_fixture_steps(&server, local.to_str().unwrap(), scenario, &argvs);
        assert_eq!(
            from_file.status,
            Some(0),
            "{scenario}: {}",
            from_file.stderr
        );
        assert_eq!(from_file.unmatched, serde_json::json!([]), "{scenario}");
        // Every step ran, with the recorded status.
        let statuses: Vec<String> = sidecar
            .run
            .steps
            .iter()
            .map(|s| format!("status {}", s.exit_code.unwrap()))
            .collect();
        let printed: Vec<&str> = from_file
            .stdout
            .lines()
            .filter(|l| l.starts_with("status "))
            .collect();
        assert_eq!(printed, statuses, "{scenario}: {}", from_file.stdout);
        for step in &sidecar.run.steps {
            assert!(
                from_file.stdout.contains(&step.stdout),
                "{scenario}: {:?} not in\n{}",
                step.stdout,
                from_file.stdout
            );
        }

        for remote in [&url, &file_url] {
            let from_store = replay_fixture_steps(&server, remote, scenario, &argvs);
            assert_eq!(from_store.status, from_file.status, "{remote}");
            assert_eq!(from_store.stdout, from_file.stdout, "{remote}");
            assert_eq!(from_store.stderr, from_file.stderr, "{remote}");
            assert_eq!(from_store.unmatched, from_file.unmatched, "{remote}");
        }
    }
}

#[test]
fn replay_of_a_missing_or_truncated_object_names_the_url() {
    let Some(server) = SeaweedFs::start_or_skip() else {
        return;
    };
    let bucket = store(&server, "s3://bad-replays/");
    let local = fixtures_dir().join("nix-2.8/build.nixcap");
    let bytes = std::fs::read(&local).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the first frame: nothing of the capture is readable.
    let cut = dir.path().join("cut.nixcap");
    std::fs::write(&cut, &bytes[..40]).unwrap();
    let cut_url = bucket.upload_file(&cut, "cut.nixcap").unwrap().url;
    // Cut in the middle: the frames before the cut are served.
    let half = dir.path().join("half.nixcap");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let half_url = bucket.upload_file(&half, "half.nixcap").unwrap().url;

    let missing = "s3://bad-replays/none.nixcap";
    let out = nixcap(&server, &["replay", missing, "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("reading {missing}")), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");

    for (url, path) in [(&cut_url, &cut), (&half_url, &half)] {
        let remote = nixcap(&server, &["replay", url, "--", "true"]);
        let local = nixcap(&server, &["replay", path.to_str().unwrap(), "--", "true"]);
        assert_eq!(remote.status.code(), local.status.code(), "{url}");
        let remote_err = String::from_utf8_lossy(&remote.stderr);
        assert!(remote_err.contains(url.as_str()), "{remote_err}");
        assert_eq!(
            remote_err.replace(url.as_str(), "CAPTURE"),
            String::from_utf8_lossy(&local.stderr).replace(path.to_str().unwrap(), "CAPTURE"),
            "{url}"
        );
    }
    let half_err =
        String::from_utf8_lossy(&nixcap(&server, &["replay", &half_url, "--", "true"]).stderr)
            .into_owned();
    assert!(
        half_err.contains(&format!(
            "nixcap replay: {half_url}: the capture is damaged"
        )),
        "{half_err}"
    );
}

/// Replays `capture` (a path or URL) standalone (`--listen`, `--store-root`)
/// to the steps of a committed fixture run by `peer`'s clients (in its
/// chroot when it has one), then stops it with SIGINT; returns each step's
/// status and output (socket and root paths masked) and nixcap's stderr.
fn replay_standalone(
    server: &SeaweedFs,
    peer: &nixcap_test_support::Peer,
    capture: &str,
    scenario_name: &str,
    steps: &[nixcap_test_support::scenarios::StepRecord],
) -> (Vec<(Option<i32>, String, String)>, String) {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let work = dir_path.join("work");
    let root = dir_path.join("root");
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&root).unwrap();
    nixcap_test_support::scenarios::scenario(scenario_name)
        .unwrap()
        .write_inputs(&work)
        .unwrap();
    let socket = dir_path.join("replay.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(["replay", capture, "--listen"])
        .arg(&socket)
        .arg("--store-root")
        .arg(&root)
        .envs(server.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !socket.exists() {
        assert!(std::time::Instant::now() < deadline, "{capture}: no socket");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let uri = format!("unix://{}?root={}", socket.display(), root.display());
    let mask = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .replace(&uri, "@STORE@")
            .replace(dir_path.to_str().unwrap(), "@DIR@")
    };
    let mut results = Vec::new();
    for step in steps {
        let output = peer
            .command(&step.argv[0])
            .args(&step.argv[1..])
            .current_dir(&work)
            .remote(uri.clone())
            .bind_dir(&dir_path)
            .output()
            .unwrap();
        results.push((
            output.status.code(),
            mask(&output.stdout),
            mask(&output.stderr),
        ));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{capture}: {output:?}");
    let stderr = mask(&output.stderr).replace(capture, "CAPTURE");
    (results, stderr)
}

#[test]
fn standalone_replay_of_a_capture_in_seaweedfs_serves_nix_2_26_and_2_34_clients_as_the_local_file_does(
) {
    use nixcap_test_support::scenarios::FixtureRecord;
    use nixcap_test_support::{peer_or_skip, NixVersion};

    let Some(server) = SeaweedFs::start_or_skip() else {
        return;
    };
    for (version, dir) in [
        (NixVersion::V2_26, "nix-2.26"),
        (NixVersion::V2_34, "nix-2.34"),
    ] {
        let Some(peer) = peer_or_skip(version) else {
            continue;
        };
        let local = fixtures_dir().join(format!("{dir}/query.nixcap"));
        let sidecar: FixtureRecord =
            serde_json::from_str(&std::fs::read_to_string(local.with_extension("json")).unwrap())
                .unwrap();
        let url = store(&server, &format!("s3://replays/{dir}/"))
            .upload_file(&local, "query.nixcap")
            .unwrap()
            .url;
        let (from_file, file_stderr) = replay_standalone(
            &server,
            &peer,
            local.to_str().unwrap(),
            "query",
            &sidecar.run.steps,
        );
        // The clients got what the live daemon gave them when it was recorded.
        assert_eq!(from_file.len(), sidecar.run.steps.len(), "{dir}");
        for ((status, stdout, stderr), step) in from_file.iter().zip(&sidecar.run.steps) {
            assert_eq!(*status, step.exit_code, "{dir} {:?}: {stderr}", step.argv);
            assert_eq!(*stdout, step.stdout, "{dir} {:?}", step.argv);
        }
        assert!(
            file_stderr.contains("no divergence"),
            "{dir}: {file_stderr}"
        );
        let (from_url, url_stderr) =
            replay_standalone(&server, &peer, &url, "query", &sidecar.run.steps);
        assert_eq!(from_url, from_file, "{dir}");
        assert_eq!(url_stderr, file_stderr, "{dir}");
    }
}
