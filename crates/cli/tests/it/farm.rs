//! Build-farm scale: a rotating recorder uploading to a real S3 server
//! (SeaweedFS on loopback), soaked with thousands of sessions while the
//! server is stopped for part of the run; `nixcap show` of a rotated set
//! recorded in front of real daemons shows each connection once.
//!
//! Skips, saying so, without `weed`; fails instead under
//! `NIXCAP_REQUIRE_NIX=1`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nixcap_capture::{read_capture, CloseReason, Direction};
use nixcap_objstore::{Store, Uploader, UploaderConfig};
use nixcap_record::{BackgroundRecorder, Config, DaemonAddr, Rotation};
use nixcap_test_support::tools::SeaweedFs;
use sha2::{Digest, Sha256};

/// How many sessions had each (client-to-daemon, daemon-to-client) stream
/// SHA-256 pair.
type Sessions = BTreeMap<([u8; 32], [u8; 32]), u64>;

/// An upstream that echoes every byte back, one thread per connection.
fn echo_upstream(path: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match stream.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// Deterministic incompressible bytes.
fn bytes_for(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// One session: sends `data` in pieces (pausing `pause` between them),
/// reads the echo, closes; returns the SHA-256 of what it sent and got.
fn session(socket: &Path, data: &[u8], piece: usize, pause: Duration) -> ([u8; 32], [u8; 32]) {
    let mut stream = UnixStream::connect(socket).unwrap();
    let mut received = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 65536];
    for chunk in data.chunks(piece) {
        stream.write_all(chunk).unwrap();
        let mut got = 0;
        while got < chunk.len() {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "echo ended early");
            received.extend_from_slice(&buf[..n]);
            got += n;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    received.extend_from_slice(&rest);
    assert_eq!(received.len(), data.len());
    (
        Sha256::digest(data).into(),
        Sha256::digest(&received).into(),
    )
}

/// Finished (not `.part`) capture files waiting in `dir`.
fn finished_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".nixcap"))
        .count()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[test]
fn soak_rotating_recorder_uploads_every_session_once_while_the_store_goes_away() {
    soak(false);
}

/// The same soak in flight-recorder mode: only the sessions marked as
/// failing (one in ten, and one of the long ones) are kept, each exactly
/// once; the decision here is a test predicate (the real one, which decodes,
/// is tested with real builds in `flight.rs`).
#[test]
fn soak_flight_recorder_keeps_exactly_the_failing_sessions() {
    soak(true);
}

/// Whether the soak's session `seed` is one that "fails".
fn failing(seed: u64) -> bool {
    seed % 10 == 3
}

/// The first bytes of a failing session.
const FAIL_MARK: &[u8] = b"FAIL";

/// The soak's client data for `seed`: marked when it is a failing one.
fn soak_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut data = bytes_for(seed, len);
    if failing(seed) {
        data[..FAIL_MARK.len()].copy_from_slice(FAIL_MARK);
    } else if data.starts_with(FAIL_MARK) {
        data[0] ^= 1;
    }
    data
}

/// Keeps the sessions whose client stream starts with [`FAIL_MARK`].
fn keep_marked() -> nixcap_record::Flight {
    nixcap_record::Flight::new(Arc::new(|session: &nixcap_record::ClosedSession<'_>| {
        let mut head = Vec::new();
        for chunk in session.chunks {
            if chunk.direction == Direction::ClientToServer && head.len() < FAIL_MARK.len() {
                head.extend_from_slice(&chunk.bytes);
            }
        }
        head.starts_with(FAIL_MARK)
            .then(|| "failed-build".to_owned())
    }))
}

fn soak(flight: bool) {
    let Some(mut server) = SeaweedFs::start_or_skip() else {
        return;
    };
    const SESSIONS: u64 = 2000;
    const THREADS: u64 = 8;
    const LONG: u64 = 4;
    const BUDGET: u64 = 96 << 20;
    // Kept sessions are a tenth of the traffic: smaller files rotate as often.
    let rotate: u64 = if flight { 256 << 10 } else { 2 << 20 };

    let work = tempfile::tempdir().unwrap();
    let upstream = work.path().join("upstream.sock");
    let stop_upstream = Arc::new(AtomicBool::new(false));
    let echo = echo_upstream(&upstream, Arc::clone(&stop_upstream));
    let spool = work.path().join("spool");
    std::fs::create_dir(&spool).unwrap();

    let endpoint = server.endpoint();
    let store = Store::open_with(
        "s3://farm/soak/",
        &[
            ("aws_endpoint", &endpoint),
            ("aws_access_key_id", SeaweedFs::ACCESS_KEY),
            ("aws_secret_access_key", SeaweedFs::SECRET_KEY),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .unwrap();
    let mut upload_config = UploaderConfig::new(&spool);
    upload_config.initial_backoff = Duration::from_millis(100);
    upload_config.max_backoff = Duration::from_secs(1);
    upload_config.log_to_stderr = false;
    let uploader = Uploader::start(store, upload_config).unwrap();
    let queue = uploader.queue();

    let mut rotation = Rotation::new(&spool);
    rotation.max_file_bytes = Some(rotate);
    rotation.ring_bytes = Some(BUDGET);
    rotation.on_finished = Some(Arc::new(move |path: &Path| queue.push(path)));
    let mut config = Config::new(None, DaemonAddr::from_path(&upstream));
    config.options.log_to_stderr = false;
    if flight {
        config.flight = Some(keep_marked());
    }
    config
        .metadata
        .insert("hostname".to_owned(), "soak-host".to_owned());
    let recorder = BackgroundRecorder::start_rotating(config, rotation).unwrap();
    let socket = recorder.socket_path().to_path_buf();

    // The disk budget is watched all along.
    let watching = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (watching, peak, spool) = (Arc::clone(&watching), Arc::clone(&peak), spool.clone());
        std::thread::spawn(move || {
            while watching.load(Ordering::Relaxed) {
                peak.fetch_max(dir_bytes(&spool), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let expected: Arc<Mutex<Sessions>> = Arc::default();
    let done = Arc::new(AtomicU64::new(0));
    // While set, the short-session clients wait before starting a session.
    let hold = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    // Long sessions, open across many rotations.
    for i in 0..LONG {
        let (socket, expected) = (socket.clone(), Arc::clone(&expected));
        clients.push(std::thread::spawn(move || {
            // The first long session "fails".
            let seed = 1_000_003 + i;
            let data = soak_bytes(seed, 400 * 1024);
            let digests = session(&socket, &data, 4096, Duration::from_millis(15));
            if !flight || failing(seed) {
                *expected.lock().unwrap().entry(digests).or_default() += 1;
            }
        }));
    }
    for t in 0..THREADS {
        let (socket, expected, done) = (socket.clone(), Arc::clone(&expected), Arc::clone(&done));
        let hold = Arc::clone(&hold);
        clients.push(std::thread::spawn(move || {
            for k in 0..SESSIONS / THREADS {
                while hold.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let seed = t * 1_000 + k;
                let len = 1024 + (seed as usize * 7919) % (48 * 1024);
                let data = soak_bytes(seed, len);
                let digests = session(&socket, &data, 16 * 1024, Duration::ZERO);
                if !flight || failing(seed) {
                    *expected.lock().unwrap().entry(digests).or_default() += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The store goes away for the middle third of the sessions.
    while done.load(Ordering::Relaxed) < SESSIONS / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The outage starts once what was finished so far is in the store, so
    // that the budget has to hold the outage's files, not also a backlog
    // left by a slow machine.
    hold.store(true, Ordering::Relaxed);
    let caught_up = std::time::Instant::now();
    while finished_files(&spool) > 0 {
        assert!(
            caught_up.elapsed() < Duration::from_secs(180),
            "the uploads did not catch up before the outage"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    hold.store(false, Ordering::Relaxed);
    while done.load(Ordering::Relaxed) < 2 * SESSIONS / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let spooled_while_down = dir_bytes(&spool);
    server.resume();
    for client in clients {
        client.join().unwrap();
    }
    let report = recorder.finish().unwrap();
    assert!(report.capture_complete(), "{:?}", report.capture_problems);
    let set = report.out.unwrap();
    let uploads = uploader.finish(Duration::from_secs(120));
    watching.store(false, Ordering::Relaxed);
    watcher.join().unwrap();
    stop_upstream.store(true, Ordering::Relaxed);
    echo.join().unwrap();

    eprintln!(
        "soak (flight recorder: {flight}): {} files, {} uploads ({} failed attempts), spool {} bytes while the store was down, peak {} bytes",
        set.files.len(),
        uploads.uploaded.len(),
        uploads.failures,
        spooled_while_down,
        peak.load(Ordering::Relaxed)
    );
    assert!(set.files.len() >= 10, "rotated {} times", set.files.len());
    assert!(set.dropped.is_empty(), "the ring dropped {:?}", set.dropped);
    assert!(uploads.failures > 0, "the outage was noticed");
    assert!(uploads.pending.is_empty(), "{:?}", uploads.pending);
    assert!(uploads.vanished.is_empty(), "{:?}", uploads.vanished);
    assert_eq!(uploads.uploaded.len(), set.files.len());
    assert!(peak.load(Ordering::Relaxed) <= BUDGET);
    // Every local file is gone, each only after its confirmed upload.
    let left: Vec<PathBuf> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Every file in the store is a complete capture on its own, named in
    // time order with the host.
    let endpoint = server.endpoint();
    let store = Store::open_with(
        "s3://farm/soak/",
        &[
            ("aws_endpoint", &endpoint),
            ("aws_access_key_id", SeaweedFs::ACCESS_KEY),
            ("aws_secret_access_key", SeaweedFs::SECRET_KEY),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .unwrap();
    let objects = store.list().unwrap();
    assert_eq!(objects.len(), set.files.len());
    let names: Vec<String> = set
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "names sort in rotation order");
    assert!(names.iter().all(|n| n.starts_with("nixcap-soak-host-")));
    let mut captures = Vec::new();
    let mut continued = 0;
    for object in &objects {
        let capture = read_capture(store.reader_of(&object.key).unwrap()).unwrap();
        assert!(
            capture.damage.is_none(),
            "{}: {:?}",
            object.url,
            capture.damage
        );
        assert!(capture.footer.is_some(), "{} is finished", object.url);
        continued += capture
            .connections
            .iter()
            .filter(|c| {
                c.closed
                    .as_ref()
                    .is_some_and(|c| c.reason == CloseReason::Continued)
            })
            .count();
        captures.push(capture);
    }
    if !flight {
        assert!(continued >= LONG as usize, "long sessions span rotations");
    }

    // Stitched back, every session's streams are there exactly once, with
    // the SHA-256 the client computed.
    let stitched = nixcap_capture::stitch(captures).unwrap();
    assert!(stitched.problems.is_empty(), "{:?}", stitched.problems);
    if !flight {
        assert!(stitched.joined >= LONG);
    }
    let mut found = Sessions::new();
    for connection in &stitched.capture.connections {
        let closed = connection.closed.as_ref().unwrap();
        assert_eq!(closed.reason, CloseReason::CleanEof);
        if flight {
            assert_eq!(connection.opened.metadata["kept"], "failed-build");
        }
        let c2s: [u8; 32] = Sha256::digest(connection.stream(Direction::ClientToServer)).into();
        let s2c: [u8; 32] = Sha256::digest(connection.stream(Direction::ServerToClient)).into();
        assert_eq!(closed.client_to_server.sha256, c2s);
        assert_eq!(closed.server_to_client.sha256, s2c);
        *found.entry((c2s, s2c)).or_default() += 1;
    }
    let expected = expected.lock().unwrap().clone();
    let all_seeds = (0..THREADS)
        .flat_map(|t| (0..SESSIONS / THREADS).map(move |k| t * 1_000 + k))
        .chain((0..LONG).map(|i| 1_000_003 + i));
    let kept = if flight {
        all_seeds.filter(|&seed| failing(seed)).count() as u64
    } else {
        all_seeds.count() as u64
    };
    assert_eq!(expected.values().sum::<u64>(), kept);
    assert!(kept > 0);
    assert_eq!(found, expected);
}

#[test]
fn nixcap_record_rotates_and_uploads_to_a_local_directory_store() {
    let work = tempfile::tempdir().unwrap();
    let upstream = work.path().join("upstream.sock");
    let stop_upstream = Arc::new(AtomicBool::new(false));
    let echo = echo_upstream(&upstream, Arc::clone(&stop_upstream));
    let spool = work.path().join("spool");
    let store_dir = work.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let listen = work.path().join("nixcap.sock");
    let mut recorder = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("record")
        .arg("--listen")
        .arg(&listen)
        .arg("--upstream")
        .arg(&upstream)
        .arg("-w")
        .arg(&spool)
        .args(["--rotate-size", "256K", "--ring-files", "100", "--upload"])
        .arg(format!("file://{}/", store_dir.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if listen.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // One slow session stays open while the others run, so that it
    // continues across every rotation they cause.
    let long = {
        let listen = listen.clone();
        std::thread::spawn(move || {
            session(
                &listen,
                &bytes_for(99, 200_000),
                4096,
                Duration::from_millis(25),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut expected = BTreeMap::new();
    for seed in 0..40u64 {
        let data = bytes_for(seed, 20_000 + seed as usize * 1000);
        *expected
            .entry(session(&listen, &data, 8192, Duration::ZERO))
            .or_insert(0u64) += 1;
    }
    *expected.entry(long.join().unwrap()).or_insert(0u64) += 1;
    // SIGINT: finish the set, drain the uploads.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status();
    let status = recorder.wait().unwrap();
    let mut stderr = String::new();
    recorder
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(
        stderr.contains("files uploaded, 0 still pending"),
        "{stderr}"
    );
    stop_upstream.store(true, Ordering::Relaxed);
    echo.join().unwrap();

    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(
        left.is_empty(),
        "uploaded files are deleted locally: {left:?}"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&store_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rotated: {files:?}");
    for file in &files {
        let verify = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .arg("verify")
            .arg(file)
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
    }
    let captures = files
        .iter()
        .map(|f| nixcap_capture::read_capture_file(f).unwrap())
        .collect();
    let stitched = nixcap_capture::stitch(captures).unwrap();
    assert!(stitched.problems.is_empty(), "{:?}", stitched.problems);
    let mut found = BTreeMap::new();
    for connection in &stitched.capture.connections {
        let c2s: [u8; 32] = Sha256::digest(connection.stream(Direction::ClientToServer)).into();
        let s2c: [u8; 32] = Sha256::digest(connection.stream(Direction::ServerToClient)).into();
        *found.entry((c2s, s2c)).or_insert(0u64) += 1;
    }
    assert_eq!(found, expected);
    // verify on the directory checks every file and joins the set.
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("verify")
        .arg(&store_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(text.matches(": OK").count(), files.len(), "{text}");
    assert!(
        text.contains(&format!(
            "set of {} files, {} connections, {} joined across files",
            files.len(),
            stitched.capture.connections.len(),
            stitched.joined
        )),
        "{text}"
    );
    // Without the file before a continued piece (not the set's first file,
    // which a ring may have dropped), the set does not join up.
    let continued_in = files.iter().skip(2).position(|f| {
        nixcap_capture::read_capture_file(f)
            .unwrap()
            .connections
            .iter()
            .any(|c| c.opened.metadata.get("segment").is_some_and(|s| s != "0"))
    });
    let continued_in = 2 + continued_in.expect("a connection continues across later files");
    let gap = work.path().join("gap");
    std::fs::create_dir(&gap).unwrap();
    for (i, file) in files.iter().enumerate() {
        if i + 1 != continued_in {
            std::fs::copy(file, gap.join(file.file_name().unwrap())).unwrap();
        }
    }
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("verify")
        .arg(&gap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    // A piece that started in the dropped file has no earlier piece; one
    // that went on through it (the slow session) skips a segment.
    assert!(
        text.contains("has no earlier piece in the set") || text.contains(" follows segment "),
        "{text}"
    );

    // info on the directory summarises the set.
    let info = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .args(["info", "--no-decode"])
        .arg(&store_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains(&format!("{} ({} complete)", files.len(), files.len())),
        "{text}"
    );
}

/// `nixcap show` of a rotated set recorded by `nixcap record --listen
/// --rotate-size` in front of a real daemon, with real clients, one of
/// which uploads more than a file holds: the set (a directory, or an object
/// prefix) shows every connection once, whole, as the client saw it.
fn show_joins_a_rotated_set_of_a_real_recorder(version: nixcap_test_support::NixVersion) {
    use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions};
    use serde_json::Value;

    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let daemon = Daemon::start(&peer, DaemonOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("small.txt"), b"a small file before and after\n").unwrap();
    // Incompressible and more than two 4 MiB frames, so that its upload
    // alone spans several files (a file rotates once a frame is written).
    std::fs::write(work.join("big.bin"), bytes_for(7, 12_000_000)).unwrap();
    let set = dir.path().join("set");
    let socket = dir.path().join("rec.sock");
    let mut recorder = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
        .arg("record")
        .arg("--listen")
        .arg(&socket)
        .arg("--upstream")
        .arg(daemon.socket_path())
        .arg("-w")
        .arg(&set)
        .args(["--rotate-size", "256K"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut added = Vec::new();
    for file in ["small.txt", "big.bin", "small.txt"] {
        let output = peer
            .command("nix-store")
            .args(["--add", file])
            .current_dir(&work)
            .remote(daemon.uri_via(&socket))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        added.push(String::from_utf8(output.stdout).unwrap().trim().to_owned());
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status();
    let status = recorder.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rotated: {files:?}");
    let show = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .arg("show")
            .args(args)
            .output()
            .unwrap()
    };
    let records = |stdout: &[u8]| -> Vec<Value> {
        String::from_utf8_lossy(stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let of_type = |records: &[Value], t: &str| -> Vec<Value> {
        records.iter().filter(|r| r["type"] == t).cloned().collect()
    };

    // File by file, the big upload is in pieces closed as continued.
    let mut pieces = 0;
    let mut continued = 0;
    let mut continued_in = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let output = show(&["--json".as_ref(), file.as_os_str()]);
        assert!(output.status.success(), "{output:?}");
        let records = records(&output.stdout);
        pieces += of_type(&records, "open").len();
        let here = of_type(&records, "close")
            .iter()
            .filter(|c| c["reasonCode"] == 5)
            .count();
        if here > 0 {
            continued_in.push(i);
        }
        continued += here;
    }
    assert!(continued >= 2, "{continued} continued pieces in {files:?}");
    assert!(pieces > 3, "{pieces} pieces");

    // The set: three connections, each opened, handshaken and closed once,
    // each with its AddToStore answered with the path the client printed.
    let output = show(&["--json".as_ref(), set.as_os_str()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let joined = records(&output.stdout);
    assert_eq!(of_type(&joined, "open").len(), 3, "{joined:?}");
    assert_eq!(of_type(&joined, "handshake").len(), 3);
    let closes = of_type(&joined, "close");
    assert_eq!(closes.len(), 3);
    assert!(
        closes.iter().all(|c| c["reason"] != "continued"),
        "{closes:?}"
    );
    let adds: Vec<String> = of_type(&joined, "reply")
        .iter()
        .filter(|r| r["op"] == "AddToStore")
        .map(|r| r["reply"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(adds, added);
    assert!(of_type(&joined, "opaque").is_empty(), "fully decoded");
    let big = &closes[1];
    assert!(
        big["clientBytes"].as_u64().unwrap() > 12_000_000,
        "the whole upload in one connection: {big}"
    );
    // The text view says the same: one close line per connection.
    let text = show(&["--no-timestamps".as_ref(), set.as_os_str()]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert_eq!(text.matches("  close  ").count(), 3, "{text}");
    assert_eq!(text.matches("AddToStore").count(), 3, "{text}");

    // The same set as an object prefix.
    let prefix = format!("file://{}/", set.canonicalize().unwrap().display());
    let output = show(&["--json".as_ref(), prefix.as_ref()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(records(&output.stdout), joined);

    // And as a prefix in a real S3 server.
    if let Some(server) = SeaweedFs::start_or_skip() {
        let bucket = super::objstore::store(&server, "s3://sets/builder/");
        for file in &files {
            let name = file.file_name().unwrap().to_str().unwrap();
            bucket.upload_file(file, name).unwrap();
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .args(["show", "--json", "s3://sets/builder/"])
            .envs(server.env())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(records(&output.stdout), joined);
        // verify checks every object of the prefix and joins the set.
        let verify = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .args(["verify", "s3://sets/builder/"])
            .envs(server.env())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&verify.stdout);
        assert!(verify.status.success(), "{verify:?}");
        assert_eq!(text.matches(": OK").count(), files.len(), "{text}");
        // The set line says what `verify DIR` says of the local files.
        let local = std::process::Command::new(env!("CARGO_BIN_EXE_nixcap"))
            .arg("verify")
            .arg(&set)
            .output()
            .unwrap();
        let local = String::from_utf8_lossy(&local.stdout);
        let set_line = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{name}: set of ")))
                .map(|l| l[name.len()..].to_owned())
        };
        let remote_line = set_line(&text, "s3://sets/builder/");
        assert!(remote_line.is_some(), "{text}");
        assert!(
            remote_line.as_deref().is_some_and(
                |l| l.contains(&format!("set of {} files, 3 connections", files.len()))
            ),
            "{text}"
        );
        assert_eq!(
            remote_line,
            set_line(&local, set.to_str().unwrap()),
            "{local}"
        );
    }

    // Without a middle file holding a piece that continues, the set does
    // not join up: shown as far as it goes, reported, exit 1.
    let dropped = continued_in
        .iter()
        .copied()
        .find(|&i| i > 0)
        .expect("a later file continues the upload");
    let gap = dir.path().join("gap");
    std::fs::create_dir(&gap).unwrap();
    for (i, file) in files.iter().enumerate() {
        if i != dropped {
            std::fs::copy(file, gap.join(file.file_name().unwrap())).unwrap();
        }
    }
    let output = show(&[gap.as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(": the set does not join up: connection "),
        "{stderr}"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.matches("AddToStore").count(), 3, "{text}");
}

#[test]
fn nix_2_8_show_joins_a_rotated_set_of_a_real_recorder() {
    show_joins_a_rotated_set_of_a_real_recorder(nixcap_test_support::NixVersion::V2_8);
}

#[test]
fn nix_2_34_show_joins_a_rotated_set_of_a_real_recorder() {
    show_joins_a_rotated_set_of_a_real_recorder(nixcap_test_support::NixVersion::V2_34);
}
