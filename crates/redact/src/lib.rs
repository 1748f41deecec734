//! nixcap-redact: scrub secrets from a capture by protocol field, so that it
//! can be attached to a bug report.
//!
//! Redaction knows the protocol; it never searches bytes with patterns.
//! What it rewrites:
//!
//! - **Setting overrides** sent with `SetOptions` (for example
//!   `extra-substituters = https://user:password@cache`): every value, unless
//!   its name is in [`RedactOptions::keep_settings`]. The names stay.
//! - **Metadata**: every value of the file header's metadata (host name,
//!   recorder command line, socket paths, …) and of each connection's
//!   metadata, except the keys in [`KEPT_METADATA`].
//! - **Peer process ids**: dropped. The peer's uid and gid stay, because the
//!   daemon's trust decisions depend on them and they identify no one
//!   outside the machine.
//! - With [`RedactOptions::drop_nars`], the **contents of every regular file
//!   inside NARs**: NarFromPath downloads, inline NAR uploads, and framed or
//!   STDERR_READ uploads whose payload is a NAR or AddMultipleToStore's path
//!   info and NAR pairs (ImportPaths export streams are left as they are),
//!   and the NARs stored as store objects; build logs stored as store
//!   objects are replaced by a placeholder of the same length. Store objects
//!   are otherwise copied as they are.
//!
//! # Placeholders
//!
//! A redacted value becomes `redacted:` followed by 16 hex digits of
//! HMAC-SHA256 under a key drawn at random for each output file. Equal
//! values get equal placeholders within a file, so diffs and repeated
//! settings still line up, while nobody without the key can confirm a guess.
//!
//! # How a dropped NAR is represented
//!
//! File contents are overwritten in place with a placeholder of the **same
//! length**: the text `nixcap-redacted size=N hmac=H` (cut to the file's
//! size), then zero bytes. Because no length changes, the NAR's structure
//! (names, types, sizes, symlink targets), framed-chunk headers, `narSize`
//! fields and every other enclosing length stay valid without rewriting,
//! and the zero filler compresses to almost nothing. The path infos around
//! the NAR (`narHash`, `narSize`) are left as they were, so the original NAR
//! is still identified; it no longer matches its hash, so a capture with
//! dropped NARs is for reading, not for replaying.
//!
//! # Rewriting the streams
//!
//! Each connection is decoded with `nixcap_view`. A `SetOptions` request
//! with redacted values is re-encoded from the modified request by the
//! protocol encoder, so its lengths and padding are right by construction.
//! Original chunk boundaries and timestamps are kept by mapping each chunk's
//! start and end offsets into the new stream (a re-encoded event goes whole
//! into the chunk where the original event ended). The output is written
//! with `nixcap_capture::Writer`, which computes fresh SHA-256 close
//! records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use nixcap_capture::{Direction, Header, StoreObjectKind, WriteError, Writer, WriterOptions};
use nixcap_view::{DecodedCapture, DecodedConnection};
use nixcap_wire::nar::{NarEvent, NarNodeKind, NarOptions, NarParser};
use nixcap_wire::ops::Request;
use nixcap_wire::primitives::Reader;
use nixcap_wire::session::{EventKind, PayloadKind};
use nixcap_wire::types::ValidPathInfo;
use nixcap_wire::ByteString;
use sha2::{Digest, Sha256};

/// Metadata keys whose values are kept: they identify the tool, not the
/// person or machine.
pub const KEPT_METADATA: &[&str] = &["version"];

/// The header metadata key that records that a file was redacted.
pub const REDACTED_KEY: &str = "redacted";

/// What to redact.
#[derive(Clone)]
pub struct RedactOptions {
    /// Names of setting overrides whose values are kept.
    pub keep_settings: BTreeSet<String>,
    /// Whether to blank the contents of files inside NARs.
    pub drop_nars: bool,
    /// The key of the placeholders' HMAC. Use [`RedactOptions::new`] for a
    /// fresh random one.
    pub key: [u8; 32],
}

impl std::fmt::Debug for RedactOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs: with it, placeholders can be checked
        // against guesses.
        f.debug_struct("RedactOptions")
            .field("keep_settings", &self.keep_settings)
            .field("drop_nars", &self.drop_nars)
            .finish_non_exhaustive()
    }
}

impl RedactOptions {
    /// Redact everything, keep NARs, with a random key.
    pub fn new() -> Self {
        RedactOptions {
            keep_settings: BTreeSet::new(),
            drop_nars: false,
            key: rand::random(),
        }
    }
}

impl Default for RedactOptions {
    fn default() -> Self {
        RedactOptions::new()
    }
}

/// Kinds of redacted things, as counted in [`RedactReport::counts`].
pub mod kind {
    /// A `SetOptions` override value.
    pub const SETTING: &str = "setting values";
    /// A file header metadata value.
    pub const HEADER_METADATA: &str = "header metadata values";
    /// A connection metadata value.
    pub const CONNECTION_METADATA: &str = "connection metadata values";
    /// A peer process id.
    pub const PEER_PID: &str = "peer pids";
    /// A NAR whose file contents were blanked.
    pub const NAR: &str = "NARs";
    /// A regular file inside a NAR whose contents were blanked.
    pub const NAR_FILE: &str = "NAR files";
    /// Bytes of NAR file contents blanked.
    pub const NAR_BYTES: &str = "NAR content bytes";
    /// A build log stored as a store object whose text was blanked.
    pub const BUILD_LOG: &str = "build logs";
}

/// What a redaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedactReport {
    /// How many things of each kind (see [`kind`]) were redacted.
    pub counts: BTreeMap<&'static str, u64>,
    /// The names of the settings whose values were redacted, with counts.
    pub settings: BTreeMap<String, u64>,
    /// The names of the settings kept on request, with counts.
    pub kept_settings: BTreeMap<String, u64>,
    /// Connections of the input with undecoded bytes: fields inside those
    /// bytes could not be found, so they were not redacted.
    pub undecoded_connections: Vec<u64>,
    /// Redacted setting and metadata values (of at least 4 bytes) that still
    /// occur verbatim somewhere in the output streams, for example echoed in
    /// a log message, with the number of occurrences. Each is named by its
    /// placeholder, never by the value.
    pub residual: BTreeMap<String, u64>,
    /// Blocks of block types this nixcap does not know, which were dropped.
    pub dropped_unknown_blocks: u64,
}

impl RedactReport {
    fn add(&mut self, kind: &'static str, n: u64) {
        *self.counts.entry(kind).or_insert(0) += n;
    }
}

/// Why a redaction failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedactError {
    /// Writing the output capture failed.
    #[error("writing the redacted capture failed: {source}")]
    Write {
        /// The writer's error.
        #[from]
        source: WriteError,
    },
}

/// HMAC-SHA256 (RFC 2104), enough for placeholders.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (i, byte) in key.iter().enumerate() {
        inner_pad[i] ^= byte;
        outer_pad[i] ^= byte;
    }
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Placeholders and the values they replaced, for one output file.
struct Placeholders {
    key: [u8; 32],
    /// Placeholder of each redacted value, for the residual check.
    values: BTreeMap<Vec<u8>, String>,
}

impl Placeholders {
    fn for_value(&mut self, value: &[u8]) -> String {
        let placeholder = format!(
            "redacted:{}",
            hex::encode(&hmac_sha256(&self.key, value)[..8])
        );
        self.values.insert(value.to_vec(), placeholder.clone());
        placeholder
    }
}

/// The placeholder that replaces the contents of a NAR file of `size`
/// bytes: a description cut to the size, then zero bytes.
fn nar_file_placeholder(key: &[u8; 32], contents: &[u8]) -> Vec<u8> {
    let size = contents.len();
    let text = format!(
        "nixcap-redacted size={size} hmac={}\n",
        hex::encode(&hmac_sha256(key, contents)[..8])
    );
    let mut out = text.into_bytes();
    out.resize(size, 0);
    out
}

/// Redacts `capture` and writes the result to `out` as a new capture.
pub fn redact<W: Write>(
    capture: &DecodedCapture,
    out: W,
    options: &RedactOptions,
) -> Result<(W, RedactReport), RedactError> {
    let mut report = RedactReport::default();
    let mut placeholders = Placeholders {
        key: options.key,
        values: BTreeMap::new(),
    };
    let input = &capture.capture;

    let mut header = Header {
        tool_version: input.header.tool_version.clone(),
        start_unix_nanos: input.header.start_unix_nanos,
        metadata: redact_metadata(
            &input.header.metadata,
            &mut placeholders,
            &mut report,
            kind::HEADER_METADATA,
        ),
    };
    let mut what = vec!["settings", "metadata", "peer pids"];
    if options.drop_nars {
        what.push("NAR contents");
    }
    header.metadata.insert(
        REDACTED_KEY.to_owned(),
        format!(
            "by nixcap {}: {}",
            env!("CARGO_PKG_VERSION"),
            what.join(", ")
        ),
    );

    // Rewrite every connection's streams first.
    let mut rewritten = Vec::with_capacity(capture.connections.len());
    for (decoded, raw) in capture.connections.iter().zip(&input.connections) {
        if !decoded.fully_decoded() {
            report.undecoded_connections.push(decoded.conn);
        }
        rewritten.push(rewrite_connection(
            decoded,
            raw,
            options,
            &mut placeholders,
            &mut report,
        ));
    }

    // Check that no redacted value survives elsewhere in the streams.
    for (value, placeholder) in &placeholders.values {
        if value.len() < 4 {
            continue;
        }
        let mut hits = 0u64;
        for connection in &rewritten {
            for chunk in &connection.chunks {
                hits += count_occurrences(&chunk.bytes, value);
            }
        }
        if !options.drop_nars {
            for stored in &input.store_objects {
                hits += count_occurrences(&stored.contents, value);
            }
        }
        if hits > 0 {
            report.residual.insert(placeholder.clone(), hits);
        }
    }

    // Then write the blocks in the original capture order.
    let timeline = build_timeline(capture);
    report.dropped_unknown_blocks = input.unknown_blocks.len() as u64;
    let mut writer = Writer::new(out, header, WriterOptions::default())?;
    for item in timeline {
        match item {
            Item::Open(i) => {
                let opened = &input.connections[i].opened;
                let mut peer = opened.peer;
                if let Some(p) = peer.as_mut() {
                    if p.pid.take().is_some() {
                        report.add(kind::PEER_PID, 1);
                    }
                }
                let metadata = redact_metadata(
                    &opened.metadata,
                    &mut placeholders,
                    &mut report,
                    kind::CONNECTION_METADATA,
                );
                writer.open_connection(opened.conn, opened.t_nanos, peer, metadata)?;
            }
            Item::Data(i, j) => {
                let chunk = &rewritten[i].chunks[j];
                writer.data(
                    input.connections[i].conn,
                    chunk.direction,
                    chunk.t_nanos,
                    &chunk.bytes,
                )?;
            }
            Item::Close(i) => {
                if let Some(closed) = &input.connections[i].closed {
                    writer.close_connection(closed.conn, closed.t_nanos, closed.reason.clone())?;
                }
            }
            Item::Annotation(k) => {
                let annotation = &input.annotations[k].1;
                writer.annotate(annotation.t_nanos, &annotation.text)?;
            }
            Item::StoreObject(k) => {
                let stored = &input.store_objects[k];
                let object = &stored.object;
                if !stored.is_complete() {
                    let reason = if object.is_present() {
                        "the capture this was redacted from ends inside the contents"
                    } else {
                        object.missing.as_str()
                    };
                    writer.missing_store_object(
                        object.t_nanos,
                        object.kind,
                        &object.name,
                        reason,
                    )?;
                    continue;
                }
                let contents = if options.drop_nars {
                    blank_store_object(object.kind, &stored.contents, &options.key, &mut report)
                } else {
                    stored.contents.clone()
                };
                writer.store_object(object.t_nanos, object.kind, &object.name, &contents)?;
            }
        }
    }
    let (out, _) = writer.finish(capture.capture.duration_nanos())?;
    Ok((out, report))
}

fn count_occurrences(haystack: &[u8], needle: &[u8]) -> u64 {
    if needle.is_empty() || haystack.len() < needle.len() {
        return 0;
    }
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count() as u64
}

fn redact_metadata(
    metadata: &BTreeMap<String, String>,
    placeholders: &mut Placeholders,
    report: &mut RedactReport,
    what: &'static str,
) -> BTreeMap<String, String> {
    metadata
        .iter()
        .map(|(key, value)| {
            if KEPT_METADATA.contains(&key.as_str()) || value.is_empty() {
                (key.clone(), value.clone())
            } else {
                report.add(what, 1);
                (key.clone(), placeholders.for_value(value.as_bytes()))
            }
        })
        .collect()
}

/// One block to write, by index into the input capture.
enum Item {
    Open(usize),
    Data(usize, usize),
    Close(usize),
    Annotation(usize),
    StoreObject(usize),
}

/// The blocks of the capture in capture order. Opened, data and annotation
/// blocks carry their position; a close block does not, so it goes after its
/// connection's last block and after every later block no younger than it.
fn build_timeline(capture: &DecodedCapture) -> Vec<Item> {
    let input = &capture.capture;
    // (position, tiebreak, t_nanos, item)
    let mut items: Vec<(u64, u64, u64, Item)> = Vec::new();
    for (i, connection) in input.connections.iter().enumerate() {
        items.push((
            connection.opened_seq,
            0,
            connection.opened.t_nanos,
            Item::Open(i),
        ));
        for (j, chunk) in connection.chunks.iter().enumerate() {
            items.push((chunk.seq, 0, chunk.t_nanos, Item::Data(i, j)));
        }
    }
    for (k, (seq, annotation)) in input.annotations.iter().enumerate() {
        items.push((*seq, 0, annotation.t_nanos, Item::Annotation(k)));
    }
    for (k, stored) in input.store_objects.iter().enumerate() {
        items.push((stored.seq, 0, stored.object.t_nanos, Item::StoreObject(k)));
    }
    items.sort_by_key(|item| (item.0, item.1));
    let positions: Vec<(u64, u64)> = items.iter().map(|item| (item.0, item.2)).collect();
    for (i, connection) in input.connections.iter().enumerate() {
        let Some(closed) = &connection.closed else {
            continue;
        };
        let own_last = connection
            .chunks
            .last()
            .map_or(connection.opened_seq, |chunk| chunk.seq);
        let start = positions.partition_point(|p| p.0 <= own_last);
        let after = start + positions[start..].partition_point(|p| p.1 <= closed.t_nanos);
        let position = positions
            .get(after.wrapping_sub(1))
            .map_or(own_last, |p| p.0);
        items.push((position, 1 + i as u64, closed.t_nanos, Item::Close(i)));
    }
    items.sort_by_key(|item| (item.0, item.1));
    items.into_iter().map(|item| item.3).collect()
}

/// A chunk of the output.
struct OutChunk {
    direction: Direction,
    t_nanos: u64,
    bytes: Vec<u8>,
}

/// A connection's rewritten chunks, in the original order.
struct RewrittenConnection {
    chunks: Vec<OutChunk>,
}

fn dir_index(direction: Direction) -> usize {
    usize::from(direction.code())
}

fn rewrite_connection(
    decoded: &DecodedConnection,
    raw: &nixcap_capture::Connection,
    options: &RedactOptions,
    placeholders: &mut Placeholders,
    report: &mut RedactReport,
) -> RewrittenConnection {
    let mut streams = [
        raw.stream(Direction::ClientToServer),
        raw.stream(Direction::ServerToClient),
    ];

    if options.drop_nars {
        blank_nars(decoded, &mut streams, &options.key, report);
    }

    // Length-changing patches of the client stream: (start, end, bytes).
    let mut patches: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    if let Some(negotiated) = decoded.session.negotiated.as_ref() {
        for timed in &decoded.events {
            let EventKind::Request { seq, request } = &timed.event.kind else {
                continue;
            };
            let Request::SetOptions { settings } = request.as_ref() else {
                continue;
            };
            let mut settings = settings.clone();
            let mut changed = false;
            for (name, value) in &mut settings.overrides {
                if options.keep_settings.contains(name) {
                    *report.kept_settings.entry(name.clone()).or_insert(0) += 1;
                    continue;
                }
                if value.is_empty() {
                    continue;
                }
                *value = ByteString::from(placeholders.for_value(value.as_bytes()));
                *report.settings.entry(name.clone()).or_insert(0) += 1;
                report.add(kind::SETTING, 1);
                changed = true;
            }
            if changed {
                let kind = EventKind::Request {
                    seq: *seq,
                    request: Box::new(Request::SetOptions { settings }),
                };
                patches.push((
                    timed.event.offset,
                    timed.event.end(),
                    kind.to_bytes(negotiated),
                ));
            }
        }
    }
    patches.sort_by_key(|p| p.0);

    let client = &streams[0];
    let mut new_client = Vec::with_capacity(client.len());
    let mut at = 0usize;
    for (start, end, bytes) in &patches {
        let (start, end) = (*start as usize, *end as usize);
        new_client.extend_from_slice(&client[at..start]);
        new_client.extend_from_slice(bytes);
        at = end;
    }
    new_client.extend_from_slice(&client[at..]);

    // Maps an offset of the original client stream to the new one. An
    // offset inside a patched event maps to the patch's start, so the
    // replacement goes whole to the chunk holding the event's end.
    let map = |pos: u64| -> u64 {
        let mut delta: i64 = 0;
        for (start, end, bytes) in &patches {
            if pos <= *start {
                break;
            }
            if pos < *end {
                return (*start as i64 + delta) as u64;
            }
            delta += bytes.len() as i64 - (*end - *start) as i64;
        }
        (pos as i64 + delta) as u64
    };

    let new_streams = [new_client, std::mem::take(&mut streams[1])];
    let mut offsets = [0u64; 2];
    let mut chunks = Vec::with_capacity(raw.chunks.len());
    for chunk in &raw.chunks {
        let d = dir_index(chunk.direction);
        let begin = offsets[d];
        let end = begin + chunk.bytes.len() as u64;
        offsets[d] = end;
        let (new_begin, new_end) = if d == 0 {
            (map(begin), map(end))
        } else {
            (begin, end)
        };
        let bytes = new_streams[d][new_begin as usize..new_end as usize].to_vec();
        if bytes.is_empty() && !chunk.bytes.is_empty() {
            continue;
        }
        chunks.push(OutChunk {
            direction: chunk.direction,
            t_nanos: chunk.t_nanos,
            bytes,
        });
    }
    RewrittenConnection { chunks }
}

/// Where the bytes of one upload or download payload lie in a stream.
#[derive(Default)]
struct Payload {
    direction: usize,
    kind: Option<PayloadKind>,
    /// (stream offset, length) of each piece, in payload order.
    pieces: Vec<(u64, u64)>,
    bytes: Vec<u8>,
}

impl Payload {
    /// Overwrites payload range `at..at + replacement.len()` in `stream`.
    fn overwrite(&self, stream: &mut [u8], at: u64, replacement: &[u8]) {
        let end = at + replacement.len() as u64;
        let mut payload_pos = 0u64;
        for &(stream_offset, len) in &self.pieces {
            let piece_end = payload_pos + len;
            let lo = at.max(payload_pos);
            let hi = end.min(piece_end);
            if lo < hi {
                let dst = (stream_offset + lo - payload_pos) as usize;
                let src = (lo - at) as usize;
                let n = (hi - lo) as usize;
                if let (Some(target), Some(source)) =
                    (stream.get_mut(dst..dst + n), replacement.get(src..src + n))
                {
                    target.copy_from_slice(source);
                }
            }
            payload_pos = piece_end;
        }
    }
}

/// The contents of a store object with `--drop-nars`: a NAR keeps its
/// structure and loses its file contents, a build log is replaced by a
/// placeholder of the same length; other kinds are kept.
fn blank_store_object(
    object_kind: StoreObjectKind,
    contents: &[u8],
    key: &[u8; 32],
    report: &mut RedactReport,
) -> Vec<u8> {
    let mut out = contents.to_vec();
    match object_kind {
        StoreObjectKind::Nar => {
            let files = nar_files(contents);
            if !files.is_empty() {
                report.add(kind::NAR, 1);
            }
            for (offset, size) in files {
                let hi = (offset + size).min(out.len());
                if offset >= hi {
                    continue;
                }
                let replacement = nar_file_placeholder(key, &contents[offset..hi]);
                out[offset..hi].copy_from_slice(&replacement);
                report.add(kind::NAR_FILE, 1);
                report.add(kind::NAR_BYTES, (hi - offset) as u64);
            }
        }
        StoreObjectKind::BuildLog => {
            out = nar_file_placeholder(key, contents);
            report.add(kind::BUILD_LOG, 1);
        }
        _ => {}
    }
    out
}

/// Blanks the file contents of every NAR found in the connection's payloads.
fn blank_nars(
    decoded: &DecodedConnection,
    streams: &mut [Vec<u8>; 2],
    key: &[u8; 32],
    report: &mut RedactReport,
) {
    // Payloads by (direction, op, transport).
    let mut payloads: BTreeMap<(usize, u64, u8), Payload> = BTreeMap::new();
    let mut requests: BTreeMap<u64, PayloadKind> = BTreeMap::new();
    for timed in &decoded.events {
        let event = &timed.event;
        let direction = match event.direction {
            nixcap_wire::session::Direction::ClientToDaemon => 0,
            nixcap_wire::session::Direction::DaemonToClient => 1,
        };
        let (seq, transport, offset, data) = match &event.kind {
            EventKind::Request { seq, request } => {
                requests.insert(*seq, PayloadKind::of(request));
                continue;
            }
            EventKind::NarData { seq, data, .. } => (*seq, 0u8, event.offset, data),
            EventKind::FramedData { seq, data, .. } => (*seq, 1u8, event.offset, data),
            // The string's 8-byte length comes before its contents.
            EventKind::ReadAnswer { seq, data, .. } => (*seq, 2u8, event.offset + 8, data),
            _ => continue,
        };
        let payload = payloads.entry((direction, seq, transport)).or_default();
        payload.direction = direction;
        payload.kind = if transport == 0 {
            Some(PayloadKind::Nar)
        } else {
            requests.get(&seq).copied()
        };
        payload.pieces.push((offset, data.len() as u64));
        payload.bytes.extend_from_slice(data.as_bytes());
    }

    for payload in payloads.values() {
        let nar_starts: Vec<usize> = match payload.kind {
            Some(PayloadKind::Nar) => vec![0],
            Some(PayloadKind::MultipleToStore) => multiple_to_store_nars(&payload.bytes),
            _ => continue,
        };
        for start in nar_starts {
            let files = nar_files(&payload.bytes[start..]);
            if files.is_empty() {
                continue;
            }
            report.add(kind::NAR, 1);
            for (offset, size) in files {
                let lo = start + offset;
                let hi = (lo + size).min(payload.bytes.len());
                if lo >= hi {
                    continue;
                }
                let replacement = nar_file_placeholder(key, &payload.bytes[lo..hi]);
                payload.overwrite(&mut streams[payload.direction], lo as u64, &replacement);
                report.add(kind::NAR_FILE, 1);
                report.add(kind::NAR_BYTES, (hi - lo) as u64);
            }
        }
    }
}

/// The NAR start offsets in an AddMultipleToStore payload: a count, then
/// (path info in the 1.16 layout, NAR) pairs.
fn multiple_to_store_nars(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut r = Reader::new(bytes);
    let Ok(count) = r.u64() else {
        return starts;
    };
    let mut at = r.position();
    for _ in 0..count {
        let mut r = Reader::new(&bytes[at..]);
        if ValidPathInfo::decode_1_16(&mut r).is_err() {
            break;
        }
        let start = at + r.position();
        starts.push(start);
        let mut parser = NarParser::new(NarOptions {
            strict_names: false,
            ..NarOptions::default()
        });
        let mut events = Vec::new();
        let progress = parser.feed(&bytes[start..], &mut events);
        if !parser.is_done() {
            break;
        }
        at = start + progress.consumed;
    }
    starts
}

/// The (offset, size) of every regular file's contents in the NAR at the
/// start of `bytes`, as far as the bytes go.
fn nar_files(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut parser = NarParser::new(NarOptions {
        strict_names: false,
        detect_stderr_error: true,
        ..NarOptions::default()
    });
    let mut events = Vec::new();
    parser.feed(bytes, &mut events);
    events
        .into_iter()
        .filter_map(|event| match event {
            NarEvent::Node(node) => match node.kind {
                NarNodeKind::Regular { size, .. } => Some((node.known_at as usize, size as usize)),
                _ => None,
            },
            NarEvent::Issue { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
