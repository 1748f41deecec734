//! Measures what the recorder costs: bulk throughput and small round-trip
//! latency, directly against a local Unix socket server and through a
//! recorder, in the same run.
//!
//! Run with
//! `cargo run --release -p nixcap-record --example throughput -- [MiB] [--text] [--null-capture]`.
//! The payload is incompressible unless `--text` asks for store-path-like
//! text. The capture is written to a file in the temporary directory,
//! compressed as `nixcap record` does by default, or with `--null-capture`
//! encoded and then discarded. The latency is measured first, while the
//! capture thread is idle.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nixcap_record::{BackgroundRecorder, Config, DaemonAddr, PrivateDir};

const CHUNK: usize = 256 * 1024;

/// A server that, per connection, either swallows everything (`u`), sends
/// the requested number of bytes (`d` + u64), or echoes byte by byte (`e`).
fn start_server(path: &Path, payload: &'static [u8]) {
    let listener = UnixListener::bind(path).expect("binding the server socket");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut mode = [0u8; 1];
                if stream.read_exact(&mut mode).is_err() {
                    return;
                }
                match mode[0] {
                    b'u' => {
                        let mut buf = vec![0u8; CHUNK];
                        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                        let _ = stream.write_all(b"k");
                    }
                    b'd' => {
                        let mut len = [0u8; 8];
                        if stream.read_exact(&mut len).is_err() {
                            return;
                        }
                        let mut left = u64::from_le_bytes(len) as usize;
                        while left > 0 {
                            let n = left.min(payload.len());
                            if stream.write_all(&payload[..n]).is_err() {
                                return;
                            }
                            left -= n;
                        }
                    }
                    _ => {
                        let mut byte = [0u8; 1];
                        while stream.read_exact(&mut byte).is_ok() {
                            if stream.write_all(&byte).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

fn upload(socket: &Path, total: usize, payload: &[u8]) -> f64 {
    let mut stream = UnixStream::connect(socket).expect("connecting");
    let started = Instant::now();
    stream.write_all(b"u").expect("writing");
    let mut left = total;
    while left > 0 {
        let n = left.min(payload.len());
        stream.write_all(&payload[..n]).expect("writing");
        left -= n;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-closing");
    let mut ack = [0u8; 1];
    stream
        .read_exact(&mut ack)
        .expect("reading the acknowledgement");
    total as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64
}

fn download(socket: &Path, total: usize) -> f64 {
    let mut stream = UnixStream::connect(socket).expect("connecting");
    let started = Instant::now();
    stream.write_all(b"d").expect("writing");
    stream
        .write_all(&(total as u64).to_le_bytes())
        .expect("writing");
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0;
    while got < total {
        let n = stream.read(&mut buf).expect("reading");
        assert!(n > 0, "short download");
        got += n;
    }
    total as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64
}

fn round_trips(socket: &Path, count: usize) -> (Duration, Duration) {
    let mut stream = UnixStream::connect(socket).expect("connecting");
    stream.write_all(b"e").expect("writing");
    let mut times = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    for i in 0..count + 100 {
        let started = Instant::now();
        stream.write_all(&[i as u8]).expect("writing");
        stream.read_exact(&mut byte).expect("reading");
        if i >= 100 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(512);
    let text = args.iter().any(|a| a == "--text");
    let null_capture = args.iter().any(|a| a == "--null-capture");
    let total = mib << 20;
    // Incompressible payload: the worst case for the capture's zstd.
    let mut seed = 0x1234_5678_9abc_def0u64;
    let payload: Vec<u8> = (0..4 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let payload = if text {
        (0..)
            .map(|i| format!("/nix/store/{i:032x}-line {i}\n"))
            .flat_map(String::into_bytes)
            .take(4 << 20)
            .collect()
    } else {
        payload
    };
    let payload: &'static [u8] = Box::leak(payload.into_boxed_slice());

    let dir = PrivateDir::new().expect("creating a temporary directory");
    let server: PathBuf = dir.path().join("server.sock");
    start_server(&server, payload);
    let capture_path = dir.path().join("bench.nixcap");
    let file = std::fs::File::create(&capture_path).expect("creating the capture");
    let out: Box<dyn Write + Send> = if null_capture {
        Box::new(std::io::sink())
    } else {
        Box::new(file)
    };
    let recorder =
        BackgroundRecorder::start(Config::new(None, DaemonAddr::from_path(&server)), out)
            .expect("starting the recorder");
    let proxy = recorder.socket_path().to_owned();

    println!(
        "{mib} MiB each way, {} data, capture {}",
        if text { "text" } else { "incompressible" },
        if null_capture { "discarded" } else { "on disk" }
    );
    let (direct_p50, direct_p99) = round_trips(&server, 20_000);
    let (proxy_p50, proxy_p99) = round_trips(&proxy, 20_000);
    println!(
        "1-byte round trip: direct p50 {direct_p50:?} p99 {direct_p99:?}; through the recorder p50 {proxy_p50:?} p99 {proxy_p99:?}; added p50 {:?}",
        proxy_p50.saturating_sub(direct_p50)
    );
    // Warm up both paths, then alternate so both see the same machine state.
    upload(&server, 16 << 20, payload);
    upload(&proxy, 16 << 20, payload);
    let mut rows = Vec::new();
    for (name, f) in [
        (
            "upload",
            &(|s: &Path| upload(s, total, payload)) as &dyn Fn(&Path) -> f64,
        ),
        ("download", &|s: &Path| download(s, total)),
    ] {
        let direct = f(&server);
        let proxied = f(&proxy);
        let direct2 = f(&server);
        let proxied2 = f(&proxy);
        let direct = direct.max(direct2);
        let proxied = proxied.max(proxied2);
        rows.push((name, direct, proxied));
    }
    for (name, direct, proxied) in &rows {
        println!(
            "{name:>8}: direct {direct:8.0} MiB/s, through the recorder {proxied:8.0} MiB/s ({:.2}x)",
            proxied / direct
        );
    }
    let report = recorder.finish().expect("finishing");
    let size = std::fs::metadata(&capture_path)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "capture: {} connections, {} MiB written, complete: {}",
        report.stats.connections,
        size >> 20,
        report.capture_complete()
    );
}
