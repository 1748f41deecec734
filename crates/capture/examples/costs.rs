//! Measures what each step of writing a capture costs per byte on this
//! machine: SHA-256 (the per-stream digest), CRC-32C (the frame checksum),
//! zstd at the writer's level on incompressible and on protocol-like bytes,
//! a plain copy, and the whole `Writer` on both kinds of data (writing to
//! `io::sink()`, so without the kernel's cost of a file write).
//!
//! Run with `cargo run --release -p nixcap-capture --example costs -- [MiB]`
//! (default 256). Figures are CPU nanoseconds per byte on one thread; see
//! docs/BENCHMARKS.md for how they add up in the recorder.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use nixcap_capture::{Direction, Header, Writer, WriterOptions};
use sha2::{Digest, Sha256};

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let len = mib << 20;
    let random = pseudo_random(len);
    let text = protocol_like(len);
    let level = WriterOptions::default().zstd_level;
    println!("{mib} MiB per measurement; ns per byte, one thread");
    println!(
        "sha2 SHA-NI detected by cpufeatures: {}",
        std::arch::is_x86_feature_detected!("sha")
    );

    measure("copy (memcpy into a reused buffer)", len, || {
        let mut out = Vec::with_capacity(1 << 20);
        for chunk in random.chunks(1 << 20) {
            out.clear();
            out.extend_from_slice(chunk);
            black_box(&out);
        }
    });
    measure("SHA-256 (sha2)", len, || {
        let mut hasher = Sha256::new();
        hasher.update(&random);
        black_box(hasher.finalize());
    });
    measure("SHA-256 (sha2), one 64 KiB buffer in cache", len, || {
        let mut hasher = Sha256::new();
        for _ in 0..len / (64 << 10) {
            hasher.update(&random[..64 << 10]);
        }
        black_box(hasher.finalize());
    });
    measure("CRC-32C (crc32c)", len, || {
        black_box(crc32c::crc32c(&random));
    });
    for (name, data) in [("random", &random), ("protocol-like", &text)] {
        let mut compressor = zstd::bulk::Compressor::new(level).expect("zstd compressor");
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(4 << 20));
        let mut compressed = 0usize;
        measure(
            &format!("zstd level {level}, 4 MiB frames, {name}"),
            len,
            || {
                compressed = 0;
                for frame in data.chunks(4 << 20) {
                    out.clear();
                    compressor
                        .compress_to_buffer(frame, &mut out)
                        .expect("compressing");
                    compressed += out.len();
                }
            },
        );
        println!("    ratio {:.3}", compressed as f64 / len as f64);
    }
    for (name, data) in [("random", &random), ("protocol-like", &text)] {
        for store_incompressible in [false, true] {
            let options = WriterOptions {
                store_incompressible,
                ..WriterOptions::default()
            };
            let what = if store_incompressible {
                "stores incompressible"
            } else {
                "compresses all"
            };
            measure(
                &format!("Writer, 64 KiB chunks, {name}, {what}"),
                len,
                || write_capture(data, 64 << 10, &options),
            );
        }
    }
}

/// Writes `data` as one connection's stream in `chunk`-sized data blocks.
fn write_capture(data: &[u8], chunk: usize, options: &WriterOptions) {
    let header = Header {
        tool_version: "costs".to_owned(),
        start_unix_nanos: 0,
        metadata: BTreeMap::new(),
    };
    let mut writer = Writer::new(std::io::sink(), header, options.clone()).expect("writer");
    writer
        .open_connection(1, 0, None, BTreeMap::new())
        .expect("open");
    for (i, piece) in data.chunks(chunk).enumerate() {
        writer
            .data(1, Direction::ServerToClient, i as u64, piece)
            .expect("data");
    }
    let (_, summary) = writer.finish(u64::MAX / 2).expect("finish");
    black_box(summary);
}

/// Runs `f` three times and prints the least CPU time per byte (and the
/// wall time of that run): on a shared machine, the CPU time this thread
/// spent is what the step costs, and waiting for a core is not.
fn measure(name: &str, len: usize, mut f: impl FnMut()) {
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let cpu = thread_cpu_nanos();
        let start = Instant::now();
        f();
        let wall = start.elapsed().as_secs_f64() * 1e9;
        let cpu = thread_cpu_nanos().zip(cpu).map(|(b, a)| (b - a) as f64);
        let cpu = cpu.unwrap_or(wall);
        if cpu < best.0 {
            best = (cpu, wall);
        }
    }
    println!(
        "{name:<50} {:>6.3} ns/B CPU ({:>6.3} wall)",
        best.0 / len as f64,
        best.1 / len as f64
    );
}

/// Nanoseconds this thread has run on a CPU (Linux schedstat).
fn thread_cpu_nanos() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// xorshift bytes: incompressible to zstd.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Store paths and small integers, like worker-protocol metadata.
fn protocol_like(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&1u64.to_le_bytes());
        let path = format!("/nix/store/{:032x}-package-{}.drv", i * 0x9e37_79b9, i % 97);
        out.extend_from_slice(&(path.len() as u64).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(&0x616c_7473u64.to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}
