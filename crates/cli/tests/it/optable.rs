//! `nixcap export --format parquet` over the committed fixtures, queried by a
//! real DuckDB: the README's two queries run as written, and the op counts
//! equal those of `nixcap info`; the same export of captures read from a
//! real S3 server (SeaweedFS) written back to it as Hive-style partitions.
//!
//! Needs python3 with the `duckdb` module (`.ci/run` installs it); skips,
//! saying so, when it is missing, and fails instead under
//! `NIXCAP_REQUIRE_NIX=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nixcap_test_support::tools::python_with_module;
use serde_json::Value;

fn nixcap(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(args)
        .output()
        .expect("nixcap runs")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every committed capture, sorted.
fn fixtures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let root = workspace().join("testdata/captures");
    for series in std::fs::read_dir(&root).unwrap() {
        let series = series.unwrap().path();
        if !series.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&series).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "nixcap") {
                files.push(file);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 30,
        "expected the committed fixtures, found {files:?}"
    );
    files
}

/// The ```sql blocks of the README's "Querying many captures" section.
fn readme_queries() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme
        .find("## Querying many captures")
        .expect("README has the section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut queries = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sql\n") {
        let body = &rest[open + 7..];
        let close = body.find("```").expect("closed block");
        queries.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    queries
}

/// Runs `queries` in DuckDB inside `dir` (where `ops/` is) and returns each
/// one's rows as JSON arrays of strings.
fn duckdb(python: &str, dir: &Path, queries: &[String]) -> Vec<Vec<Vec<Value>>> {
    let script = r#"
import json, sys, duckdb
queries = json.load(sys.stdin)
con = duckdb.connect()
out = []
for q in queries:
    out.append([[None if v is None else str(v) for v in row] for row in con.sql(q).fetchall()])
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), queries).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn duckdb_runs_the_readme_queries_over_the_parquet_export_of_the_fixtures() {
    let Some(python) = python_with_module("duckdb") else {
        return;
    };
    let files = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let ops = dir.path().join("ops");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "export".as_ref(),
        "--format".as_ref(),
        "parquet".as_ref(),
        "--partitioned".as_ref(),
        "-o".as_ref(),
        ops.as_os_str(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let output = nixcap(&args);
    assert!(
        output.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // What `nixcap info` counts, over every fixture.
    let mut info_ops: BTreeMap<String, u64> = BTreeMap::new();
    let mut client_protocols = std::collections::BTreeSet::new();
    for file in &files {
        let output = nixcap(&["info".as_ref(), "--json".as_ref(), file.as_os_str()]);
        assert!(output.status.success());
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        for (op, n) in report["protocol"]["op_histogram"].as_object().unwrap() {
            *info_ops.entry(op.clone()).or_default() += n.as_u64().unwrap();
        }
        for session in report["protocol"]["sessions"].as_array().unwrap() {
            let v = &session["clientVersion"];
            client_protocols.insert(format!("{}.{}", v["major"], v["minor"]));
        }
    }

    let queries = readme_queries();
    assert_eq!(queries.len(), 2, "the README shows two queries");
    let mut all = queries.clone();
    all.push(
        "SELECT op, count(*) FROM read_parquet('ops/**/*.parquet', hive_partitioning = true) \
         GROUP BY op ORDER BY op"
            .to_owned(),
    );
    all.push(
        "SELECT count(DISTINCT capture), min(date), max(date) \
         FROM read_parquet('ops/**/*.parquet', hive_partitioning = true)"
            .to_owned(),
    );
    let results = duckdb(python, dir.path(), &all);

    // Op counts equal nixcap info's.
    let duck_ops: BTreeMap<String, u64> = results[2]
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(duck_ops, info_ops);
    assert_eq!(results[3][0][0], Value::from(files.len().to_string()));

    // Query 1: three slowest ops per client protocol version, slowest first.
    let slowest = &results[0];
    let seen: std::collections::BTreeSet<String> = slowest
        .iter()
        .map(|row| row[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        seen.iter().collect::<Vec<_>>(),
        client_protocols.iter().collect::<Vec<_>>()
    );
    for version in &seen {
        let ms: Vec<f64> = slowest
            .iter()
            .filter(|row| row[0].as_str() == Some(version))
            .map(|row| row[3].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(ms.len(), 3, "{version}: {slowest:?}");
        assert!(ms.windows(2).all(|w| w[0] >= w[1]), "{ms:?}");
        assert!(ms[0] > 0.0);
    }

    // Query 2: the failing build's error, seen by the fixtures' host in
    // every series whose daemon sends it as an error (2.8 and 2.34 send it
    // from BuildPaths; 2.26's nix-build gets it in BuildPathsWithResults,
    // and `nix-build` itself reports it a second time).
    let mut expected_errors = 0u64;
    for file in &files {
        let capture = nixcap_capture::read_capture_file(file).unwrap();
        let decoded = nixcap_view::DecodedCapture::new(capture);
        for connection in &decoded.connections {
            for exchange in &connection.exchanges {
                if let nixcap_view::Outcome::Error(info) = &exchange.outcome {
                    let message = nixcap_view::display::clean(&info.message().to_string_lossy());
                    if message.contains("failed with exit code 1") {
                        expected_errors += 1;
                    }
                }
            }
        }
    }
    assert!(expected_errors > 0);
    let hosts = &results[1];
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0][0], Value::from("fixtures"));
    assert_eq!(hosts[0][1], Value::from(expected_errors.to_string()));
}

#[test]
fn one_file_export_is_parquet_and_pcapng_still_takes_exactly_one_capture() {
    let files = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ops.parquet");
    let output = nixcap(&[
        "export".as_ref(),
        "--format".as_ref(),
        "parquet".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        files[0].as_os_str(),
        files[1].as_os_str(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("from 2 captures in 1 Parquet files"),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");

    // pcapng, the default, refuses several inputs and --partitioned.
    let output = nixcap(&[
        "export".as_ref(),
        "-o".as_ref(),
        dir.path().join("x.pcapng").as_os_str(),
        files[0].as_os_str(),
        files[1].as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exactly one capture"), "{stderr}");
}

/// `nixcap export --format parquet` of captures read from SeaweedFS,
/// written straight back to it: Hive-style partitions under a prefix, each
/// object byte for byte the file a local export writes, and DuckDB over the
/// uploaded objects counts the ops `nixcap info` counts.
#[test]
fn parquet_export_to_seaweedfs_writes_hive_partitions_that_duckdb_reads() {
    use nixcap_test_support::tools::SeaweedFs;
    use std::io::Read;

    let Some(python) = python_with_module("duckdb") else {
        return;
    };
    let Some(server) = SeaweedFs::start_or_skip() else {
        return;
    };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .args(args)
            .envs(server.env())
            .output()
            .expect("nixcap runs")
    };
    let files = fixtures();
    let captures = super::objstore::store(&server, "s3://captures/fixtures/");
    let root = workspace().join("testdata/captures");
    let urls: Vec<String> = files
        .iter()
        .map(|file| {
            let name = file.strip_prefix(&root).unwrap().to_str().unwrap();
            captures.upload_file(file, name).unwrap().url
        })
        .collect();

    // Partitions under a prefix (a URL ending in `/`, no --partitioned).
    let mut args = vec!["export", "--format", "parquet", "-o", "s3://ops/farm/"];
    args.extend(urls.iter().map(String::as_str));
    let output = run(&args);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    // The same export to a local directory.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let mut args = vec![
        "export",
        "--format",
        "parquet",
        "--partitioned",
        "-o",
        local.to_str().unwrap(),
    ];
    args.extend(urls.iter().map(String::as_str));
    let output = run(&args);
    assert!(output.status.success(), "{output:?}");
    let local_stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let count = |text: &str| {
        text.split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        count(&stdout),
        count(&local_stdout),
        "{stdout}{local_stdout}"
    );

    let ops_store = super::objstore::store(&server, "s3://ops/farm/");
    let objects = ops_store.list().unwrap();
    let mut local_files = Vec::new();
    let mut stack = vec![local.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                local_files.push(path.strip_prefix(&local).unwrap().display().to_string());
            }
        }
    }
    local_files.sort();
    let keys: Vec<String> = objects
        .iter()
        .map(|o| o.key.strip_prefix("farm/").unwrap().to_owned())
        .collect();
    assert_eq!(keys, local_files);
    assert!(
        stdout.contains(&format!("in {} Parquet objects", keys.len())),
        "{stdout}"
    );
    // Download the objects into `ops/` for DuckDB, checking each is the
    // local export's file.
    let ops = dir.path().join("ops");
    for (object, key) in objects.iter().zip(&keys) {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 3, "{key}");
        let date = parts[0].strip_prefix("date=").unwrap();
        assert!(
            date.len() == 10 && date.chars().all(|c| c.is_ascii_digit() || c == '-'),
            "{key}"
        );
        assert!(parts[1].starts_with("host=") && parts[1].len() > 5, "{key}");
        assert!(parts[2].ends_with(".parquet"), "{key}");
        let mut bytes = Vec::new();
        ops_store
            .reader_of(&object.key)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(bytes, std::fs::read(local.join(key)).unwrap(), "{key}");
        let dest = ops.join(key);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }

    // DuckDB over the downloaded objects: op counts of `nixcap info` (run
    // on the same URLs), and the README's queries run.
    let mut info_ops: BTreeMap<String, u64> = BTreeMap::new();
    for url in &urls {
        let output = run(&["info", "--json", url]);
        assert!(output.status.success(), "{output:?}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        for (op, n) in report["protocol"]["op_histogram"].as_object().unwrap() {
            *info_ops.entry(op.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    let mut queries = vec![
        "SELECT op, count(*) FROM read_parquet('ops/**/*.parquet', hive_partitioning = true) \
         GROUP BY op ORDER BY op"
            .to_owned(),
        "SELECT count(DISTINCT capture), count(DISTINCT host) \
         FROM read_parquet('ops/**/*.parquet', hive_partitioning = true)"
            .to_owned(),
    ];
    queries.extend(readme_queries());
    let results = duckdb(python, dir.path(), &queries);
    let duck_ops: BTreeMap<String, u64> = results[0]
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(duck_ops, info_ops);
    assert_eq!(results[1][0][0], Value::from(urls.len().to_string()));
    assert!(
        !results[2].is_empty() && !results[3].is_empty(),
        "{results:?}"
    );

    // A prefix as input stands for every capture under it: the same rows.
    let output = run(&[
        "export",
        "--format",
        "parquet",
        "-o",
        "s3://ops/again/",
        "s3://captures/fixtures/",
    ]);
    assert!(output.status.success(), "{output:?}");
    let again = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(count(&again), count(&stdout), "{again}");
    assert!(
        again.contains(&format!("from {} captures", urls.len())),
        "{again}"
    );

    // A URL naming an object gets the one-file export.
    let mut args = vec![
        "export",
        "--format",
        "parquet",
        "-o",
        "s3://ops/one/all.parquet",
    ];
    args.extend(urls[..3].iter().map(String::as_str));
    let output = run(&args);
    assert!(output.status.success(), "{output:?}");
    let one = dir.path().join("all.parquet");
    let mut args = vec!["export", "--format", "parquet", "-o", one.to_str().unwrap()];
    args.extend(urls[..3].iter().map(String::as_str));
    assert!(run(&args).status.success());
    let mut bytes = Vec::new();
    super::objstore::store(&server, "s3://ops/one/all.parquet")
        .reader()
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes, std::fs::read(&one).unwrap());

    // Bad input from the store names the URL; pcapng is not written there.
    let missing = "s3://captures/fixtures/none.nixcap";
    let output = run(&[
        "export",
        "--format",
        "parquet",
        "-o",
        "s3://ops/x/",
        missing,
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("reading {missing}")), "{stderr}");
    let truncated = dir.path().join("cut.nixcap");
    std::fs::write(&truncated, &std::fs::read(&files[0]).unwrap()[..40]).unwrap();
    let cut_url = captures.upload_file(&truncated, "cut.nixcap").unwrap().url;
    let output = run(&[
        "export",
        "--format",
        "parquet",
        "-o",
        "s3://ops/x/",
        &cut_url,
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("reading {cut_url}")), "{stderr}");
    // Nothing was written for the failed exports.
    let nothing = super::objstore::store(&server, "s3://ops/x/");
    assert_eq!(nothing.list().unwrap(), Vec::new());
    let output = run(&["export", "-o", "s3://ops/x.pcapng", &urls[0]]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("s3://ops/x.pcapng: only --format parquet writes to object storage"),
        "{stderr}"
    );
}
