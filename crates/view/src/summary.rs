//! The summary of a capture, like capinfos: what `nixcap info` prints.
//!
//! The container statistics come from the footer index when the capture was
//! finished, so they cost a few kilobytes of I/O whatever the capture's
//! size. Without a usable footer (the recorder was killed, or the end of the
//! file is damaged) the whole file is scanned instead, and the report says
//! so. The protocol part ([`protocol_report`]) decodes the capture through
//! [`DecodedCapture`].
//!
//! Captures are read through a [`Source`]: anything that can name itself
//! and open the bytes again (a local path here; the CLI adds objects in a
//! store). A set of captures is summed by [`SetReport::add`].
//!
//! Printing is the caller's: every report is a serializable value.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use nixcap_capture::{
    read_capture, read_index, Block, Capture, CloseReason, Direction, FooterStatus, Location,
    ReadError, ReadErrorKind, Reader, StoreObjectKind,
};
use serde::Serialize;

use crate::{DecodedCapture, SessionInfo};

/// A readable, seekable byte source.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Where a capture's bytes come from.
pub trait Source {
    /// The name to show: the path or URL as given.
    fn name(&self) -> String;

    /// Opens the bytes from the start.
    fn open(&self) -> io::Result<Box<dyn ReadSeek>>;

    /// Reads the whole capture, as `nixcap_capture::read_capture_file` does.
    fn read_capture(&self) -> Result<Capture, ReadError> {
        let input = self
            .open()
            .map_err(|source| ReadError::new(ReadErrorKind::Io { source }, Location::default()))?;
        read_capture(input)
    }
}

impl Source for Path {
    fn name(&self) -> String {
        self.display().to_string()
    }

    fn open(&self) -> io::Result<Box<dyn ReadSeek>> {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            File::open(self)?,
        )))
    }
}

impl Source for PathBuf {
    fn name(&self) -> String {
        self.as_path().name()
    }

    fn open(&self) -> io::Result<Box<dyn ReadSeek>> {
        self.as_path().open()
    }
}

/// Why a capture could not be summarised.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The bytes could not be opened.
    #[error("cannot open {name}")]
    Open {
        /// The capture's name.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The capture could not be read (its header or index, or, for the
    /// protocol summary, the capture as a whole).
    #[error("cannot read {name}")]
    Read {
        /// The capture's name.
        name: String,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// The full scan of a capture without a usable footer could not start.
    #[error("cannot read the capture")]
    Scan(#[source] ReadError),
}

/// Everything `nixcap info` reports about one capture.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file as given on the command line.
    pub file: String,
    /// Its size in bytes.
    pub file_size: u64,
    /// The container format version, `major.minor`.
    pub format_version: String,
    /// The tool that wrote the capture.
    pub tool_version: String,
    /// Where the statistics come from: `footer` or `scan`.
    pub source: &'static str,
    /// Whether the capture was finished (it has an intact footer and trailer).
    pub complete: bool,
    /// Why the capture is not complete or intact, when it is not.
    pub problem: Option<String>,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Wall-clock start, RFC 3339 in UTC.
    pub start_time: String,
    /// Time from start to end, in nanoseconds.
    pub duration_nanos: u64,
    /// Number of connections.
    pub connections: u64,
    /// Connections per close reason (`open` for ones without a close record).
    pub close_reasons: BTreeMap<String, u64>,
    /// Data bytes client to server.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client.
    pub bytes_server_to_client: u64,
    /// Number of block frames.
    pub frames: u64,
    /// Number of blocks.
    pub blocks: u64,
    /// Number of annotations.
    pub annotations: u64,
    /// Size of the blocks, uncompressed.
    pub uncompressed_bytes: u64,
    /// Size of the compressed frame payloads.
    pub compressed_bytes: u64,
    /// `uncompressed_bytes / compressed_bytes`.
    pub compression_ratio: Option<f64>,
    /// The header's free metadata.
    pub metadata: BTreeMap<String, String>,
    /// One entry per connection, in opening order.
    pub connection_list: Vec<ConnectionReport>,
    /// What the decoded protocol says (absent with `--no-decode`).
    pub protocol: Option<ProtocolReport>,
}

/// The protocol-level summary of a capture.
#[derive(Debug, Serialize)]
pub struct ProtocolReport {
    /// The distinct handshakes seen: versions, daemon Nix version, features,
    /// trust, and how many connections had each.
    pub sessions: Vec<SessionReport>,
    /// How many times each operation was sent, by name.
    pub op_histogram: BTreeMap<String, u64>,
    /// Connections with bytes the decoder could not decode.
    pub connections_with_undecoded_bytes: u64,
    /// Store objects: contents the recorder fetched outside the connections.
    pub store_objects: StoreObjectsReport,
}

/// The store objects of a capture (format 1.1).
#[derive(Debug, Default, Serialize)]
pub struct StoreObjectsReport {
    /// NARs present.
    pub nars: u64,
    /// Build logs present.
    pub build_logs: u64,
    /// Objects of kinds this nixcap does not know.
    pub other: u64,
    /// Bytes of contents.
    pub bytes: u64,
    /// Objects recorded as missing: name and why.
    pub missing: Vec<MissingObject>,
}

/// A store object the recorder could not fetch.
#[derive(Debug, Serialize)]
pub struct MissingObject {
    /// `nar` or `build-log`.
    pub kind: String,
    /// The store path or derivation.
    pub name: String,
    /// Why it is missing.
    pub reason: String,
}

/// One distinct handshake.
#[derive(Debug, Serialize)]
pub struct SessionReport {
    /// Connections that had it.
    pub connections: u64,
    /// The handshake.
    #[serde(flatten)]
    pub session: SessionInfo,
}

/// One connection in the report.
#[derive(Debug, Serialize)]
pub struct ConnectionReport {
    /// The connection id.
    pub conn: u64,
    /// When it was opened, nanoseconds after the start.
    pub opened_nanos: u64,
    /// When it was closed, if it was.
    pub closed_nanos: Option<u64>,
    /// How it was closed (`open` if it was not).
    pub close_reason: String,
    /// Data bytes client to server.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client.
    pub bytes_server_to_client: u64,
}

/// What `nixcap info` reports for a set of captures.
#[derive(Debug, Serialize)]
pub struct SetReport {
    /// The directory or prefix as given.
    pub prefix: String,
    /// Number of captures.
    pub captures: u64,
    /// How many of them are complete.
    pub complete: u64,
    /// Their total size in bytes.
    pub total_size: u64,
    /// Earliest start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Earliest start, RFC 3339 in UTC.
    pub start_time: String,
    /// Latest end, RFC 3339 in UTC.
    pub end_time: String,
    /// Connections, summed.
    pub connections: u64,
    /// Connections per close reason, summed.
    pub close_reasons: BTreeMap<String, u64>,
    /// Data bytes client to server, summed.
    pub bytes_client_to_server: u64,
    /// Data bytes server to client, summed.
    pub bytes_server_to_client: u64,
    /// Operations by name, summed (absent with `--no-decode`).
    pub op_histogram: Option<BTreeMap<String, u64>>,
    /// One entry per capture, in name order.
    pub files: Vec<SetMember>,
}

/// One capture of a set.
#[derive(Debug, Serialize)]
pub struct SetMember {
    /// Its path or URL.
    pub file: String,
    /// Its size in bytes.
    pub file_size: u64,
    /// Its start, RFC 3339 in UTC.
    pub start_time: String,
    /// Its duration in nanoseconds.
    pub duration_nanos: u64,
    /// Its connections.
    pub connections: u64,
    /// Whether it is complete.
    pub complete: bool,
    /// Why not, when it is not.
    pub problem: Option<String>,
}

/// Sums the reports of `members` into the report of a set named `prefix`;
/// with `decode`, their op histograms too.
pub fn set_report<S: Source>(
    prefix: &str,
    members: &[S],
    decode: bool,
) -> Result<SetReport, SummaryError> {
    let mut set = SetReport {
        prefix: prefix.to_owned(),
        captures: 0,
        complete: 0,
        total_size: 0,
        start_unix_nanos: u64::MAX,
        start_time: String::new(),
        end_time: String::new(),
        connections: 0,
        close_reasons: BTreeMap::new(),
        bytes_client_to_server: 0,
        bytes_server_to_client: 0,
        op_histogram: decode.then(BTreeMap::new),
        files: Vec::new(),
    };
    let mut end = 0u64;
    for member in members {
        let report = build_report(member)?;
        set.captures += 1;
        set.complete += u64::from(report.complete);
        set.total_size += report.file_size;
        set.start_unix_nanos = set.start_unix_nanos.min(report.start_unix_nanos);
        end = end.max(
            report
                .start_unix_nanos
                .saturating_add(report.duration_nanos),
        );
        set.connections += report.connections;
        for (reason, n) in &report.close_reasons {
            *set.close_reasons.entry(reason.clone()).or_default() += n;
        }
        set.bytes_client_to_server += report.bytes_client_to_server;
        set.bytes_server_to_client += report.bytes_server_to_client;
        if let Some(histogram) = &mut set.op_histogram {
            for (op, n) in protocol_report(member)?.op_histogram {
                *histogram.entry(op).or_default() += n;
            }
        }
        set.files.push(SetMember {
            file: report.file,
            file_size: report.file_size,
            start_time: report.start_time,
            duration_nanos: report.duration_nanos,
            connections: report.connections,
            complete: report.complete,
            problem: report.problem,
        });
    }
    if set.captures == 0 {
        set.start_unix_nanos = 0;
    }
    set.start_time = rfc3339_utc(set.start_unix_nanos);
    set.end_time = rfc3339_utc(end.max(set.start_unix_nanos));
    Ok(set)
}

/// Builds the report of the capture at `input`.
pub fn build_report<S: Source + ?Sized>(input: &S) -> Result<Report, SummaryError> {
    let name = input.name();
    let open = || {
        input.open().map_err(|source| SummaryError::Open {
            name: name.clone(),
            source,
        })
    };
    let index = read_index(open()?).map_err(|source| SummaryError::Read {
        name: name.clone(),
        source,
    })?;
    let mut report = Report {
        file: name.clone(),
        file_size: index.file_len,
        format_version: index.version.to_string(),
        tool_version: index.header.tool_version.clone(),
        source: "footer",
        complete: true,
        problem: None,
        start_unix_nanos: index.header.start_unix_nanos,
        start_time: rfc3339_utc(index.header.start_unix_nanos),
        duration_nanos: 0,
        connections: 0,
        close_reasons: BTreeMap::new(),
        bytes_client_to_server: 0,
        bytes_server_to_client: 0,
        frames: 0,
        blocks: 0,
        annotations: 0,
        uncompressed_bytes: 0,
        compressed_bytes: 0,
        compression_ratio: None,
        metadata: index.header.metadata.clone(),
        connection_list: Vec::new(),
        protocol: None,
    };
    match index.footer {
        FooterStatus::Present(footer) => {
            report.duration_nanos = footer.end_nanos;
            report.connections = footer.connections.len() as u64;
            for c in &footer.connections {
                *report
                    .close_reasons
                    .entry(reason_label(c.reason_code))
                    .or_default() += 1;
                report.connection_list.push(ConnectionReport {
                    conn: c.conn,
                    opened_nanos: c.opened_nanos,
                    closed_nanos: Some(c.closed_nanos),
                    close_reason: reason_label(c.reason_code),
                    bytes_client_to_server: c.bytes_client_to_server,
                    bytes_server_to_client: c.bytes_server_to_client,
                });
            }
            if !footer.connections_complete {
                report.problem = Some(format!(
                    "the footer lists only the first {} connections",
                    footer.connections.len()
                ));
            }
            report.bytes_client_to_server = footer.bytes_client_to_server;
            report.bytes_server_to_client = footer.bytes_server_to_client;
            report.frames = footer.frames;
            report.blocks = footer.blocks;
            report.annotations = footer.annotations;
            report.uncompressed_bytes = footer.uncompressed_bytes;
            report.compressed_bytes = footer.compressed_bytes;
        }
        other => {
            let footer_damaged = matches!(other, FooterStatus::Damaged(_));
            scan(open()?, &mut report, footer_damaged)?;
        }
    }
    if report.compressed_bytes > 0 {
        report.compression_ratio =
            Some(report.uncompressed_bytes as f64 / report.compressed_bytes as f64);
    }
    Ok(report)
}

/// Decodes the capture at `input` and summarises its protocol: what damage
/// the container has is already in the main report, so whatever is readable
/// is decoded here.
pub fn protocol_report<S: Source + ?Sized>(input: &S) -> Result<ProtocolReport, SummaryError> {
    let capture = input.read_capture().map_err(|source| SummaryError::Read {
        name: input.name(),
        source,
    })?;
    let mut store_objects = StoreObjectsReport::default();
    for stored in &capture.store_objects {
        let object = &stored.object;
        if !object.is_present() {
            store_objects.missing.push(MissingObject {
                kind: object.kind.name(),
                name: object.name.clone(),
                reason: object.missing.clone(),
            });
            continue;
        }
        store_objects.bytes += stored.contents.len() as u64;
        match object.kind {
            StoreObjectKind::Nar => store_objects.nars += 1,
            StoreObjectKind::BuildLog => store_objects.build_logs += 1,
            _ => store_objects.other += 1,
        }
    }
    let decoded = DecodedCapture::new(capture);
    let mut sessions: Vec<SessionReport> = Vec::new();
    for connection in &decoded.connections {
        match sessions
            .iter_mut()
            .find(|s| s.session == connection.session)
        {
            Some(existing) => existing.connections += 1,
            None => sessions.push(SessionReport {
                connections: 1,
                session: connection.session.clone(),
            }),
        }
    }
    Ok(ProtocolReport {
        sessions,
        op_histogram: decoded.op_histogram(),
        connections_with_undecoded_bytes: decoded
            .connections
            .iter()
            .filter(|c| !c.fully_decoded())
            .count() as u64,
        store_objects,
    })
}

/// Fills `report` by reading every block of the capture; `footer_damaged`
/// says whether the file ends with a damaged trailer or footer (rather than
/// with none).
fn scan(
    input: impl io::Read,
    report: &mut Report,
    footer_damaged: bool,
) -> Result<(), SummaryError> {
    report.source = "scan";
    let mut reader = Reader::new(input).map_err(SummaryError::Scan)?;
    let mut positions: BTreeMap<u64, usize> = BTreeMap::new();
    let mut problem = None;
    for item in reader.by_ref() {
        let block = match item {
            Ok(block) => block,
            Err(err) => {
                problem = Some(err);
                break;
            }
        };
        match block {
            Block::ConnectionOpened(b) => {
                positions.insert(b.conn, report.connection_list.len());
                report.connection_list.push(ConnectionReport {
                    conn: b.conn,
                    opened_nanos: b.t_nanos,
                    closed_nanos: None,
                    close_reason: "open".to_owned(),
                    bytes_client_to_server: 0,
                    bytes_server_to_client: 0,
                });
            }
            Block::Data(b) => {
                if let Some(c) = positions
                    .get(&b.conn)
                    .and_then(|&i| report.connection_list.get_mut(i))
                {
                    match b.direction {
                        Direction::ClientToServer => {
                            c.bytes_client_to_server += b.bytes.len() as u64;
                        }
                        Direction::ServerToClient => {
                            c.bytes_server_to_client += b.bytes.len() as u64;
                        }
                    }
                }
            }
            Block::ConnectionClosed(b) => {
                if let Some(c) = positions
                    .get(&b.conn)
                    .and_then(|&i| report.connection_list.get_mut(i))
                {
                    c.closed_nanos = Some(b.t_nanos);
                    c.close_reason = reason_label(b.reason.code());
                }
            }
            _ => {}
        }
    }
    let stats = reader.stats();
    report.duration_nanos = reader
        .footer()
        .map_or(stats.last_t_nanos.unwrap_or(0), |f| f.end_nanos);
    report.connections = stats.connections;
    for c in &report.connection_list {
        *report
            .close_reasons
            .entry(c.close_reason.clone())
            .or_default() += 1;
    }
    report.bytes_client_to_server = stats.bytes_client_to_server;
    report.bytes_server_to_client = stats.bytes_server_to_client;
    report.frames = stats.frames;
    report.blocks = stats.blocks;
    report.annotations = stats.annotations;
    report.uncompressed_bytes = stats.uncompressed_bytes;
    report.compressed_bytes = stats.compressed_bytes;
    report.complete = stats.trailer;
    report.problem = Some(match problem {
        Some(err) if matches!(err.kind, ReadErrorKind::MissingFooter { .. }) => {
            format!("{err}; the recorder was killed or is still running; statistics cover every intact frame")
        }
        Some(err) => format!("scan stopped at damage: {err}; statistics cover what precedes it"),
        None if footer_damaged => {
            "the footer could not be read, but a full scan found no damage".to_owned()
        }
        None => "the footer could not be found, but a full scan found no damage".to_owned(),
    });
    Ok(())
}

/// A short name for a close reason code.
fn reason_label(code: u32) -> String {
    match CloseReason::from_code(code, String::new()) {
        CloseReason::CleanEof => "clean EOF".to_owned(),
        CloseReason::Reset => "reset".to_owned(),
        CloseReason::UpstreamUnreachable { .. } => "upstream unreachable".to_owned(),
        CloseReason::Error { .. } => "error".to_owned(),
        CloseReason::Shutdown => "recorder shutdown".to_owned(),
        CloseReason::Continued => "continued in the next file".to_owned(),
        _ => format!("reason {code}"),
    }
}

/// Formats a Unix time in nanoseconds as RFC 3339 in UTC, with nanoseconds.
pub fn rfc3339_utc(unix_nanos: u64) -> String {
    nixcap_capture::utc::UtcTime::from_unix_nanos(unix_nanos).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_utc(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339_utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_utc(4_102_444_799_999_999_999),
            "2099-12-31T23:59:59.999999999Z"
        );
    }
}
