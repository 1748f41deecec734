//! A writer killed with SIGKILL in the middle of a capture leaves a file from
//! which every flushed block reads back.
//!
//! The test re-runs its own test binary as the child (selected by an
//! environment variable). The child writes a deterministic stream of blocks
//! with real timestamps, calling `flush_if_due` as a recorder would, and
//! prints the number of blocks on disk after each frame. The parent kills it
//! once several frames are out, then reads the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nixcap_capture::{Block, CloseReason, Direction, ReadErrorKind, Reader, Writer, WriterOptions};

use crate::support::fixed_header;

const CHILD_ENV: &str = "NIXCAP_CAPTURE_TEST_KILLED_WRITER_OUTPUT";
const TEST_NAME: &str =
    "killed_writer::writer_killed_mid_stream_leaves_every_flushed_block_readable";
const MAX_AGE: u64 = 100_000_000;

/// Step `i` of the child's script; each step writes exactly one block.
#[derive(Debug, PartialEq)]
enum Op {
    Open(u64),
    Data(u64, Direction, Vec<u8>),
    Close(u64),
}

fn op(i: u64) -> Op {
    let conn = i / 40 + 1;
    match i % 40 {
        0 => Op::Open(conn),
        39 => Op::Close(conn),
        k => {
            let direction = if k % 3 == 0 {
                Direction::ServerToClient
            } else {
                Direction::ClientToServer
            };
            let len = (i * 37 % 500 + 1) as usize;
            let bytes = (0..len)
                .map(|j| ((i * 131 + j as u64 * 7) % 251) as u8)
                .collect();
            Op::Data(conn, direction, bytes)
        }
    }
}

/// The child: writes until killed (or gives up after a minute).
fn run_child(path: &std::ffi::OsStr) {
    let file = File::create(path).unwrap();
    let options = WriterOptions {
        frame_max_bytes: 64 << 10,
        frame_max_age_nanos: MAX_AGE,
        zstd_level: 3,
        ..WriterOptions::default()
    };
    let mut writer = Writer::new(BufWriter::new(file), fixed_header(), options).unwrap();
    let start = Instant::now();
    let now = || start.elapsed().as_nanos() as u64;
    let mut stdout = std::io::stdout();
    let mut frames = 0;
    for i in 0.. {
        match op(i) {
            Op::Open(conn) => writer
                .open_connection(conn, now(), None, BTreeMap::new())
                .unwrap(),
            Op::Data(conn, direction, bytes) => {
                writer.data(conn, direction, now(), &bytes).unwrap()
            }
            Op::Close(conn) => writer
                .close_connection(conn, now(), CloseReason::CleanEof)
                .unwrap(),
        }
        writer.flush_if_due(now()).unwrap();
        let summary = writer.summary();
        if summary.frames != frames {
            frames = summary.frames;
            writeln!(stdout, "flushed {}", summary.blocks).unwrap();
            stdout.flush().unwrap();
        }
        if start.elapsed() > Duration::from_secs(60) {
            std::process::exit(3);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

#[test]
fn writer_killed_mid_stream_leaves_every_flushed_block_readable() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        run_child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.nixcap");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let flushed = |line: &str| {
        line.strip_prefix("flushed ")
            .map(|n| n.parse::<u64>().unwrap())
    };
    let mut reported = 0;
    let mut reports = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while reports < 8 {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some(n) = flushed(&line) {
            reported = n;
            reports += 1;
        }
        assert!(Instant::now() < deadline, "the child is too slow");
    }
    // Land the kill at a varying point of the write cycle.
    std::thread::sleep(Duration::from_micros(
        u64::from(std::process::id() % 40) * 1000,
    ));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child was not killed: {status}"
        );
    }
    // Reports the child printed before dying are still in the pipe.
    for line in lines {
        if let Some(n) = flushed(&line.unwrap()) {
            reported = n;
        }
    }

    let bytes = std::fs::read(&path).unwrap();
    let mut reader = Reader::new(&bytes[..]).unwrap();
    let mut blocks = 0u64;
    let mut frame_times: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut last_t = 0;
    let mut error = None;
    while let Some(item) = reader.next() {
        let block = match item {
            Ok(block) => block,
            Err(err) => {
                error = Some(err);
                break;
            }
        };
        let expected = op(blocks);
        let t = block.t_nanos().unwrap();
        match (&block, &expected) {
            (Block::ConnectionOpened(b), Op::Open(conn)) => assert_eq!(b.conn, *conn),
            (Block::Data(b), Op::Data(conn, direction, bytes)) => {
                assert_eq!((b.conn, b.direction, &b.bytes), (*conn, *direction, bytes));
            }
            (Block::ConnectionClosed(b), Op::Close(conn)) => assert_eq!(b.conn, *conn),
            _ => panic!("block {blocks} is {block:?}, expected {expected:?}"),
        }
        assert!(t >= last_t, "timestamps go backwards at block {blocks}");
        last_t = t;
        let frame = reader.frame_index().unwrap();
        let entry = frame_times.entry(frame).or_insert((t, t));
        entry.1 = t;
        blocks += 1;
    }
    let error = error.expect("a killed writer leaves no footer");
    assert!(
        matches!(
            error.kind,
            ReadErrorKind::MissingFooter { .. } | ReadErrorKind::Truncated { .. }
        ),
        "{error}"
    );
    assert!(
        blocks >= reported,
        "{blocks} blocks read, but the child had flushed {reported}: {error}"
    );
    assert!(frame_times.len() >= 8);
    // No frame spans much more than the age limit: the block that reaches it
    // closes the frame.
    for (frame, (first, last)) in &frame_times {
        assert!(
            last - first < MAX_AGE + 50_000_000,
            "frame {frame} spans {} ms",
            (last - first) / 1_000_000
        );
    }
    eprintln!(
        "killed writer: {} bytes on disk, {blocks} blocks in {} frames read back, {reported} reported flushed; {error}",
        bytes.len(),
        frame_times.len()
    );
}
