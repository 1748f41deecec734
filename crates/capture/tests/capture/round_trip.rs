//! What is written is read back identically, through every read path.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Write};

use nixcap_capture::{
    read_capture, read_index, Block, CloseReason, Direction, FooterStatus, ReadErrorKind,
    WriteError, Writer, WriterOptions,
};
use proptest::prelude::*;

use crate::support::{
    expected_blocks, fixed_header, manual_frames, noise, read_all, sample_steps, write_steps, Step,
};

#[test]
fn finished_capture_reads_back_identically() {
    let steps = sample_steps();
    let bytes = write_steps(&steps, manual_frames(), Some(10_000));
    let (blocks, footer, error) = read_all(&bytes);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(blocks, expected_blocks(&steps, Some(10_000)));

    let footer = footer.expect("a finished capture has a footer");
    assert_eq!(footer.end_nanos, 10_000);
    assert_eq!(
        footer.frames, 2,
        "the explicit flush and the frame written by finish"
    );
    assert_eq!(footer.blocks, blocks.len() as u64);
    assert_eq!(footer.annotations, 1);
    assert_eq!(footer.connections.len(), 5);
    assert_eq!(footer.bytes_client_to_server, 8 + 240);
    assert_eq!(footer.bytes_server_to_client, 8 + 3);
    let ids: Vec<u64> = footer.connections.iter().map(|c| c.conn).collect();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5],
        "the index lists connections in opening order"
    );
    let reasons: Vec<u32> = footer.connections.iter().map(|c| c.reason_code).collect();
    assert_eq!(reasons, [0, 2, 3, 1, 4]);
    assert_eq!(footer.frame_index.len(), 2);
    assert!(footer.frame_index_complete && footer.connections_complete);

    let index = read_index(Cursor::new(&bytes)).unwrap();
    assert_eq!(index.header, fixed_header());
    assert_eq!(index.file_len, bytes.len() as u64);
    match index.footer {
        FooterStatus::Present(indexed) => assert_eq!(indexed, footer),
        other => panic!("expected a footer, got {other:?}"),
    }
}

#[test]
fn capture_groups_chunks_per_connection() {
    let steps = sample_steps();
    let bytes = write_steps(&steps, manual_frames(), Some(10_000));
    let capture = read_capture(&bytes[..]).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(capture.header, fixed_header());
    assert_eq!(capture.connections.len(), 5);
    let one = capture.connection(1).unwrap();
    let directions: Vec<Direction> = one.chunks.iter().map(|c| c.direction).collect();
    assert_eq!(
        directions,
        [
            Direction::ClientToServer,
            Direction::ServerToClient,
            Direction::ClientToServer
        ]
    );
    let mut expected_c2s = 0x6e697863u64.to_le_bytes().to_vec();
    expected_c2s.extend_from_slice(&b"hello daemon".repeat(20));
    assert_eq!(one.stream(Direction::ClientToServer), expected_c2s);
    assert_eq!(one.closed.as_ref().unwrap().reason, CloseReason::CleanEof);
    assert_eq!(one.opened.peer.unwrap().pid, Some(4242));
    let five = capture.connection(5).unwrap();
    assert_eq!(five.closed.as_ref().unwrap().reason, CloseReason::Shutdown);
    assert_eq!(capture.annotations.len(), 1);
    assert_eq!(capture.annotations[0].0, 0);
    // Sequence numbers are positions in the whole capture.
    let seqs: Vec<u64> = one.chunks.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [2, 3, 6]);
    assert_eq!(capture.duration_nanos(), 10_000);
}

#[test]
fn unfinished_capture_keeps_every_block_and_reports_missing_footer() {
    let steps = sample_steps();
    let bytes = write_steps(&steps, manual_frames(), None);
    let (blocks, footer, error) = read_all(&bytes);
    assert_eq!(blocks, expected_blocks(&steps, None));
    assert!(footer.is_none());
    let error = error.expect("an unfinished capture ends with an error");
    assert!(
        matches!(error.kind, ReadErrorKind::MissingFooter { frames: 2 }),
        "{error}"
    );
    assert_eq!(error.location.offset, bytes.len() as u64);
    assert_eq!(error.location.open_connections, [5]);
    assert!(!error.is_unreadable());
    let index = read_index(Cursor::new(&bytes)).unwrap();
    assert!(matches!(index.footer, FooterStatus::Missing));
}

#[test]
fn dropped_writer_writes_its_open_frame() {
    let mut out = Vec::new();
    {
        let mut writer = Writer::new(&mut out, fixed_header(), manual_frames()).unwrap();
        writer.open_connection(7, 1, None, BTreeMap::new()).unwrap();
        writer
            .data(7, Direction::ClientToServer, 2, b"abc")
            .unwrap();
    }
    let (blocks, _, error) = read_all(&out);
    assert_eq!(blocks.len(), 2);
    assert!(matches!(
        error.unwrap().kind,
        ReadErrorKind::MissingFooter { frames: 1 }
    ));
}

#[test]
fn frames_are_cut_by_age_and_by_size() {
    let options = WriterOptions {
        frame_max_bytes: 1000,
        frame_max_age_nanos: 100,
        zstd_level: 1,
        ..WriterOptions::default()
    };
    let mut writer = Writer::new(Vec::new(), fixed_header(), options).unwrap();
    writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
    writer.data(1, Direction::ClientToServer, 50, b"x").unwrap();
    assert_eq!(writer.summary().frames, 0, "the frame is 50 ns old");
    assert!(!writer.flush_if_due(99).unwrap());
    assert!(writer.flush_if_due(100).unwrap(), "the frame is 100 ns old");
    assert_eq!(writer.summary().frames, 1);
    assert!(!writer.flush_if_due(10_000).unwrap(), "nothing pending");
    writer
        .data(1, Direction::ClientToServer, 200, b"y")
        .unwrap();
    writer
        .data(1, Direction::ClientToServer, 300, b"z")
        .unwrap();
    assert_eq!(
        writer.summary().frames,
        2,
        "a block 100 ns after the frame start cuts it"
    );
    writer
        .data(1, Direction::ServerToClient, 301, &[7u8; 999])
        .unwrap();
    assert_eq!(writer.summary().frames, 3, "1000 bytes cut the frame");
    let (bytes, summary) = writer.finish(400).unwrap();
    assert_eq!(
        summary.frames, 5,
        "the frame closing connection 1, and the footer frame"
    );
    assert_eq!(summary.bytes_client_to_server, 3);
    assert_eq!(summary.bytes_server_to_client, 999);
    assert_eq!(summary.compressed_bytes, bytes.len() as u64);
    let (blocks, footer, error) = read_all(&bytes);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(blocks.len(), 6);
    assert_eq!(footer.unwrap().frames, 4);
}

#[test]
fn data_above_the_chunk_limit_is_split_into_blocks() {
    let len = nixcap_capture::format::MAX_DATA_CHUNK_LEN + 5;
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut writer = Writer::new(Vec::new(), fixed_header(), WriterOptions::default()).unwrap();
    writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
    writer
        .data(1, Direction::ServerToClient, 10, &payload)
        .unwrap();
    let (bytes, _) = writer.finish(20).unwrap();
    let capture = read_capture(&bytes[..]).unwrap();
    assert!(capture.is_intact(), "{:?}", capture.damage);
    let conn = capture.connection(1).unwrap();
    let sizes: Vec<usize> = conn.chunks.iter().map(|c| c.bytes.len()).collect();
    assert_eq!(sizes, [nixcap_capture::format::MAX_DATA_CHUNK_LEN, 5]);
    assert!(conn.chunks.iter().all(|c| c.t_nanos == 10));
    assert_eq!(conn.stream(Direction::ServerToClient), payload);
}

#[test]
fn writer_refuses_misuse() {
    let mut writer = Writer::new(Vec::new(), fixed_header(), WriterOptions::default()).unwrap();
    writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
    assert!(matches!(
        writer.open_connection(1, 1, None, BTreeMap::new()),
        Err(WriteError::DuplicateConnection { conn: 1 })
    ));
    assert!(matches!(
        writer.data(2, Direction::ClientToServer, 1, b"x"),
        Err(WriteError::UnknownConnection { conn: 2 })
    ));
    writer
        .close_connection(1, 2, CloseReason::CleanEof)
        .unwrap();
    assert!(matches!(
        writer.data(1, Direction::ClientToServer, 3, b"x"),
        Err(WriteError::UnknownConnection { conn: 1 })
    ));
    assert!(matches!(
        writer.close_connection(1, 3, CloseReason::CleanEof),
        Err(WriteError::UnknownConnection { conn: 1 })
    ));
    assert!(matches!(
        writer.open_connection(1, 4, None, BTreeMap::new()),
        Err(WriteError::DuplicateConnection { conn: 1 })
    ));
    // Misuse does not damage the capture.
    let (bytes, _) = writer.finish(5).unwrap();
    let (blocks, _, error) = read_all(&bytes);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(blocks.len(), 2);
}

/// An output that fails after `budget` bytes.
struct FailingOutput {
    budget: usize,
    written: Vec<u8>,
}

impl Write for FailingOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_failure_poisons_the_writer_and_leaves_a_readable_prefix() {
    let out = FailingOutput {
        budget: 300,
        written: Vec::new(),
    };
    let mut writer = Writer::new(out, fixed_header(), manual_frames()).unwrap();
    writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
    writer
        .data(1, Direction::ClientToServer, 1, b"first")
        .unwrap();
    writer.flush_frame().unwrap();
    writer
        .data(1, Direction::ClientToServer, 2, &noise(4096, 1))
        .unwrap();
    let err = writer.flush_frame().unwrap_err();
    assert!(matches!(err, WriteError::Io { .. }), "{err}");
    assert!(matches!(
        writer.data(1, Direction::ClientToServer, 3, b"x"),
        Err(WriteError::Poisoned)
    ));
    let written = writer.get_ref().unwrap().written.clone();
    drop(writer);
    let (blocks, _, error) = read_all(&written);
    assert_eq!(blocks.len(), 2, "the first frame survives");
    let error = error.unwrap();
    assert!(
        matches!(error.kind, ReadErrorKind::Truncated { .. }),
        "{error}"
    );
    assert_eq!(error.location.frame_index, Some(1));
}

/// A random capture: connections with random chunks, randomly interleaved.
#[derive(Debug, Clone)]
struct Scenario {
    steps: Vec<Step>,
    options: WriterOptions,
    finish: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let chunk = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300));
    let connection = (prop::collection::vec(chunk, 0..12), 0u8..4);
    (
        prop::collection::vec(connection, 1..8),
        prop::collection::vec(any::<u16>(), 0..200),
        prop::option::of(1usize..2000),
        any::<bool>(),
    )
        .prop_map(|(connections, picks, frame_max, finish)| {
            // Each connection is a queue of steps: open, chunks, maybe close.
            let mut queues: Vec<Vec<Step>> = Vec::new();
            for (i, (chunks, close_kind)) in connections.into_iter().enumerate() {
                let conn = (i as u64) * 7 + 3;
                let mut queue = vec![Step::Open {
                    conn,
                    t: 0,
                    peer: None,
                    metadata: BTreeMap::from([("n".to_owned(), i.to_string())]),
                }];
                for (to_server, bytes) in chunks {
                    let direction = if to_server {
                        Direction::ClientToServer
                    } else {
                        Direction::ServerToClient
                    };
                    queue.push(Step::Data {
                        conn,
                        direction,
                        t: 0,
                        bytes,
                    });
                }
                let reason = match close_kind {
                    0 => None,
                    1 => Some(CloseReason::CleanEof),
                    2 => Some(CloseReason::Reset),
                    _ => Some(CloseReason::Error {
                        message: format!("error {i}"),
                    }),
                };
                if let Some(reason) = reason {
                    queue.push(Step::Close { conn, t: 0, reason });
                }
                queue.reverse();
                queues.push(queue);
            }
            // Interleave the queues as the random picks say, then drain them.
            let mut steps = Vec::new();
            let mut picks = picks.into_iter();
            loop {
                let live: Vec<usize> = (0..queues.len())
                    .filter(|&q| !queues[q].is_empty())
                    .collect();
                if live.is_empty() {
                    break;
                }
                let pick = picks.next().map_or(0, usize::from);
                if pick % 17 == 16 {
                    steps.push(Step::Flush);
                }
                let q = live[pick % live.len()];
                if let Some(step) = queues[q].pop() {
                    steps.push(step);
                }
            }
            // Timestamps increase by 1 µs per step.
            for (i, step) in steps.iter_mut().enumerate() {
                let now = (i as u64 + 1) * 1_000;
                match step {
                    Step::Open { t, .. } | Step::Data { t, .. } | Step::Close { t, .. } => *t = now,
                    Step::Annotate { t, .. } => *t = now,
                    Step::Flush => {}
                }
            }
            let options = WriterOptions {
                frame_max_bytes: frame_max.unwrap_or(4 << 20),
                frame_max_age_nanos: 50_000,
                zstd_level: 1,
                ..WriterOptions::default()
            };
            Scenario {
                steps,
                options,
                finish,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_interleavings_round_trip(s in scenario()) {
        let end = s.finish.then_some(u64::MAX / 2);
        let bytes = write_steps(&s.steps, s.options.clone(), end);
        let (blocks, footer, error) = read_all(&bytes);
        prop_assert_eq!(&blocks, &expected_blocks(&s.steps, end));
        if s.finish {
            prop_assert!(error.is_none(), "{:?}", error);
            prop_assert!(footer.is_some());
        } else {
            let error = error.unwrap();
            prop_assert!(matches!(error.kind, ReadErrorKind::MissingFooter { .. }), "{}", error);
        }
        // Per connection, the capture view holds the same chunks in the same order.
        let capture = read_capture(&bytes[..]).unwrap();
        for block in &blocks {
            if let Block::Data(data) = block {
                prop_assert!(capture.connection(data.conn).is_some());
            }
        }
        for connection in &capture.connections {
            let expected: Vec<(Direction, Vec<u8>)> = blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Data(d) if d.conn == connection.conn => Some((d.direction, d.bytes.clone())),
                    _ => None,
                })
                .collect();
            let actual: Vec<(Direction, Vec<u8>)> = connection
                .chunks
                .iter()
                .map(|c| (c.direction, c.bytes.clone()))
                .collect();
            prop_assert_eq!(actual, expected);
        }
    }
}

/// A frame of random bytes is stored (a zstd frame of raw blocks), a frame
/// of repetitive bytes compressed; both read back identically, and the
/// stored one costs only its framing.
#[test]
fn incompressible_frames_are_stored_and_read_back() {
    let random = noise(1 << 20, 7);
    let text: Vec<u8> = (0..1 << 20)
        .map(|i: u32| b"/nix/store/abc-hello-2.12.drv\0"[i as usize % 30])
        .collect();
    let mut writer = Writer::new(Vec::new(), fixed_header(), manual_frames()).unwrap();
    writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
    writer
        .data(1, Direction::ServerToClient, 1, &random)
        .unwrap();
    writer.flush_frame().unwrap();
    writer.data(1, Direction::ClientToServer, 2, &text).unwrap();
    writer.flush_frame().unwrap();
    let (bytes, _) = writer.finish(3).unwrap();

    let index = read_index(Cursor::new(&bytes)).unwrap();
    let FooterStatus::Present(footer) = index.footer else {
        panic!("no footer");
    };
    let stored = &footer.frame_index[0];
    let payload_at = stored.offset as usize + 20;
    // zstd magic, then the header descriptor of a single-segment frame with
    // a 4-byte content size, then that size.
    assert_eq!(
        &bytes[payload_at..payload_at + 5],
        &[0x28, 0xb5, 0x2f, 0xfd, 0xa0]
    );
    assert_eq!(
        u64::from(stored.compressed_len),
        u64::from(stored.uncompressed_len)
            + 9
            + 3 * u64::from(stored.uncompressed_len).div_ceil(128 << 10)
    );
    let compressed = &footer.frame_index[1];
    assert!(compressed.compressed_len * 20 < compressed.uncompressed_len);

    let capture = read_capture(Cursor::new(&bytes)).unwrap();
    let conn = &capture.connections[0];
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert!(
        conn.is_complete(),
        "both streams checked against their SHA-256"
    );
    assert_eq!(conn.stream(Direction::ServerToClient), random);
    assert_eq!(conn.stream(Direction::ClientToServer), text);
}

/// Bytes a compressor shrinks by about 2 %, under the probe's 1/32: stored
/// by default, compressed (a little) when storing is turned off.
#[test]
fn storing_can_be_turned_off() {
    let nearly_random: Vec<u8> = noise(512 << 10, 9).iter().map(|b| b % 231).collect();
    let frame_len = |store_incompressible: bool| {
        let options = WriterOptions {
            store_incompressible,
            ..manual_frames()
        };
        let mut writer = Writer::new(Vec::new(), fixed_header(), options).unwrap();
        writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
        writer
            .data(1, Direction::ServerToClient, 1, &nearly_random)
            .unwrap();
        let (bytes, _) = writer.finish(3).unwrap();
        let capture = read_capture(Cursor::new(&bytes)).unwrap();
        assert!(capture.is_intact(), "{:?}", capture.damage);
        assert_eq!(
            capture.connections[0].stream(Direction::ServerToClient),
            nearly_random
        );
        let index = read_index(Cursor::new(&bytes)).unwrap();
        let FooterStatus::Present(footer) = index.footer else {
            panic!("no footer");
        };
        let frame = &footer.frame_index[0];
        (frame.compressed_len, frame.uncompressed_len)
    };
    let (stored, raw) = frame_len(true);
    assert_eq!(stored, raw + 9 + 3 * raw.div_ceil(128 << 10));
    let (compressed, raw) = frame_len(false);
    assert!(compressed < raw, "{compressed} of {raw}");
}

/// Freeing the writer's frame buffers, with a frame open or not, changes
/// none of the bytes it writes.
#[test]
fn releasing_the_frame_buffers_changes_no_byte_written() {
    let random = noise(300 << 10, 7);
    let text = b"nix-store --add /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\n".repeat(4000);
    let write = |release: bool| {
        let mut writer = Writer::new(Vec::new(), fixed_header(), manual_frames()).unwrap();
        let release_now = |writer: &mut Writer<Vec<u8>>| {
            if release {
                writer.release_buffers();
            }
        };
        release_now(&mut writer);
        writer.open_connection(1, 0, None, BTreeMap::new()).unwrap();
        writer
            .data(1, Direction::ServerToClient, 1, &random)
            .unwrap();
        // A frame is open: its blocks stay.
        release_now(&mut writer);
        writer.data(1, Direction::ClientToServer, 2, &text).unwrap();
        writer.flush_frame().unwrap();
        release_now(&mut writer);
        writer
            .data(1, Direction::ServerToClient, 3, &random)
            .unwrap();
        writer.flush_frame().unwrap();
        release_now(&mut writer);
        writer.data(1, Direction::ClientToServer, 4, &text).unwrap();
        writer.flush_frame().unwrap();
        release_now(&mut writer);
        writer.finish(5).unwrap().0
    };
    let released = write(true);
    assert_eq!(released, write(false));
    let capture = read_capture(Cursor::new(&released)).unwrap();
    let conn = &capture.connections[0];
    assert!(capture.is_intact(), "{:?}", capture.damage);
    assert_eq!(
        conn.stream(Direction::ServerToClient),
        [random.clone(), random].concat()
    );
    assert_eq!(
        conn.stream(Direction::ClientToServer),
        [text.clone(), text].concat()
    );
}
