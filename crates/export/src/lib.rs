//! nixcap-export: a capture as a pcapng file, for Wireshark and tshark, and
//! as an op table (`optable`, written as Parquet by `parquet`) for DuckDB,
//! Spark or Trino.
//!
//! Each connection of the capture becomes a synthetic TCP connection over
//! IPv4 loopback: the client is `127.0.0.1` on a port of its own (from
//! [`ExportOptions::first_client_port`] up, one per connection in the order
//! they were opened), the server is `127.0.0.1:`[`ExportOptions::server_port`].
//! A connection opens with a three-way handshake at the time it was opened,
//! carries every data chunk at its recorded time with correct sequence and
//! acknowledgement numbers (chunks larger than
//! [`ExportOptions::max_segment`] are split into several packets), and ends
//! with FIN, FIN, ACK at its close time (RST for a reset; nothing for a
//! connection the capture never saw closed). Wireshark's "Follow TCP stream"
//! therefore shows each connection's bytes exactly.
//!
//! Decoded op names go into packet comments (`opt_comment`): the packet
//! carrying the first byte of each request gets `QueryPathInfo (op 3)`, and
//! each SYN names the capture's connection id and peer.
//!
//! # Why a hand-written pcapng writer
//!
//! The subset needed is small (a section header, one interface description,
//! enhanced packet blocks with comment options; see `pcapng`), and the
//! candidate crate, `pcap-file`, has had no stable release since 2.0.0 in
//! 2022; its 3.0 line is a release candidate needing a newer Rust than this
//! workspace supports. Writing the four block layouts directly costs about a
//! hundred lines, tested here and read back by tshark in the command's tests.

pub mod chrome;
pub mod optable;
pub mod parquet;
pub mod pcapng;
pub mod tcp;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::Ipv4Addr;

use nixcap_capture::{CloseReason, Direction};
use nixcap_view::{DecodedCapture, DecodedConnection};
use nixcap_wire::session::EventKind;

use crate::pcapng::{PcapngWriter, LINKTYPE_RAW};
use crate::tcp::{flags, Side, TcpFlow, MAX_PAYLOAD};

/// How connections are laid out as TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The server's port. Default: 9.
    pub server_port: u16,
    /// The client port of the first connection; the next connections count
    /// up from it (wrapping back to it past 65535). Default: 40000.
    pub first_client_port: u16,
    /// Largest payload of one packet; larger chunks are split. Clamped to
    /// what an IPv4 datagram holds. Default: 65000.
    pub max_segment: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            server_port: 9,
            first_client_port: 40000,
            max_segment: 65000,
        }
    }
}

/// How one connection was exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedConnection {
    /// The capture's connection id.
    pub conn: u64,
    /// The synthetic client address.
    pub client_addr: Ipv4Addr,
    /// The synthetic client port.
    pub client_port: u16,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// The connections, in the order they were opened.
    pub connections: Vec<ExportedConnection>,
    /// Packets written.
    pub packets: u64,
    /// Packets that carry data.
    pub data_packets: u64,
    /// Comments written.
    pub comments: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing the output failed.
    #[error("writing the pcapng output failed: {source}")]
    Io {
        /// The I/O error.
        #[from]
        source: io::Error,
    },
}

/// One packet, before it is written.
struct Packet {
    t_nanos: u64,
    data: Vec<u8>,
    comments: Vec<String>,
    has_payload: bool,
}

/// The synthetic endpoint of the `index`th connection. Ports count up from
/// `first_client_port`; each time they run out, the client address moves
/// on (`127.0.0.1`, `127.0.1.1`, …) so that no two connections share an
/// address and port.
fn client_endpoint(options: &ExportOptions, index: usize) -> (Ipv4Addr, u16) {
    let first = usize::from(options.first_client_port.max(1));
    let span = 65536 - first;
    let port = (first + index % span) as u16;
    let round = index / span;
    let addr = Ipv4Addr::new(127, (round >> 8) as u8, round as u8, 1);
    (addr, port)
}

/// Writes `capture` to `out` as pcapng. See the crate documentation.
pub fn export_pcapng<W: Write>(
    capture: &DecodedCapture,
    out: W,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let max_segment = options.max_segment.clamp(1, MAX_PAYLOAD);
    let start = capture.capture.header.start_unix_nanos;
    let mut summary = ExportSummary::default();
    let mut packets = Vec::new();
    for (index, connection) in capture.connections.iter().enumerate() {
        let (client_addr, client_port) = client_endpoint(options, index);
        summary.connections.push(ExportedConnection {
            conn: connection.conn,
            client_addr,
            client_port,
        });
        let raw = &capture.capture.connections[index];
        connection_packets(
            connection,
            raw,
            (client_addr, client_port),
            options.server_port,
            max_segment,
            &mut packets,
        );
    }
    // Connections are generated one by one with non-decreasing times; a
    // stable sort interleaves them by time and keeps each one's order.
    packets.sort_by_key(|p| p.t_nanos);

    let application = format!("nixcap {}", env!("CARGO_PKG_VERSION"));
    let mut writer = PcapngWriter::new(out, &application, LINKTYPE_RAW, "nixcap")?;
    for packet in &packets {
        writer.packet(
            start.saturating_add(packet.t_nanos),
            &packet.data,
            &packet.comments,
        )?;
        summary.packets += 1;
        summary.comments += packet.comments.len() as u64;
        if packet.has_payload {
            summary.data_packets += 1;
        }
    }
    writer.finish()?;
    Ok(summary)
}

/// The comments to attach at client-stream offsets: one per request, at
/// the offset of its first byte.
fn request_comments(connection: &DecodedConnection) -> BTreeMap<u64, Vec<String>> {
    let mut comments: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for exchange in &connection.exchanges {
        let request = exchange.events.iter().find_map(|&i| {
            let event = &connection.events[i].event;
            matches!(event.kind, EventKind::Request { .. }).then_some(event.offset)
        });
        if let Some(offset) = request {
            comments.entry(offset).or_default().push(format!(
                "{} (op {})",
                exchange.op_name(),
                exchange.seq
            ));
        }
    }
    comments
}

fn connection_packets(
    connection: &DecodedConnection,
    raw: &nixcap_capture::Connection,
    client: (Ipv4Addr, u16),
    server_port: u16,
    max_segment: usize,
    packets: &mut Vec<Packet>,
) {
    let server = (Ipv4Addr::LOCALHOST, server_port);
    // Fixed initial sequence numbers keep exports reproducible.
    let mut flow = TcpFlow::new(client, server, 1_000_000, 2_000_000);
    let mut now = connection.opened.t_nanos;
    let mut push = |t: u64, data: Vec<u8>, comments: Vec<String>, has_payload: bool| {
        // Clamp so that a connection's packets never go back in time.
        now = now.max(t);
        packets.push(Packet {
            t_nanos: now,
            data,
            comments,
            has_payload,
        });
    };

    let mut syn_comment = format!("nixcap connection {}", connection.conn);
    if let Some(peer) = connection.opened.peer {
        syn_comment.push_str(&format!(", peer uid {} gid {}", peer.uid, peer.gid));
        if let Some(pid) = peer.pid {
            syn_comment.push_str(&format!(" pid {pid}"));
        }
    }
    if let Some(version) = connection.session.negotiated.as_ref() {
        syn_comment.push_str(&format!(", protocol {}", version.version));
    }
    let t_open = connection.opened.t_nanos;
    push(
        t_open,
        flow.segment(Side::Client, flags::SYN, &[]),
        vec![syn_comment],
        false,
    );
    push(
        t_open,
        flow.segment(Side::Server, flags::SYN | flags::ACK, &[]),
        Vec::new(),
        false,
    );
    push(
        t_open,
        flow.segment(Side::Client, flags::ACK, &[]),
        Vec::new(),
        false,
    );

    let mut comments = request_comments(connection);
    let mut offsets = [0u64; 2];
    for chunk in &raw.chunks {
        let (side, d) = match chunk.direction {
            Direction::ClientToServer => (Side::Client, 0),
            Direction::ServerToClient => (Side::Server, 1),
        };
        let pieces: Vec<&[u8]> = chunk.bytes.chunks(max_segment).collect();
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            let begin = offsets[d];
            let end = begin + piece.len() as u64;
            let mut notes = Vec::new();
            if side == Side::Client {
                let keys: Vec<u64> = comments.range(begin..end).map(|(k, _)| *k).collect();
                for key in keys {
                    notes.extend(comments.remove(&key).unwrap_or_default());
                }
            }
            let mut bits = flags::ACK;
            if i == last {
                bits |= flags::PSH;
            }
            push(chunk.t_nanos, flow.segment(side, bits, piece), notes, true);
            offsets[d] = end;
        }
    }

    if let Some(closed) = &connection.closed {
        let t = closed.t_nanos;
        if closed.reason == CloseReason::Reset {
            push(
                t,
                flow.segment(Side::Client, flags::RST | flags::ACK, &[]),
                Vec::new(),
                false,
            );
        } else {
            push(
                t,
                flow.segment(Side::Client, flags::FIN | flags::ACK, &[]),
                Vec::new(),
                false,
            );
            push(
                t,
                flow.segment(Side::Server, flags::FIN | flags::ACK, &[]),
                Vec::new(),
                false,
            );
            push(
                t,
                flow.segment(Side::Client, flags::ACK, &[]),
                Vec::new(),
                false,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_endpoints_are_distinct() {
        let options = ExportOptions {
            first_client_port: 65530,
            ..ExportOptions::default()
        };
        let endpoints: Vec<_> = (0..20).map(|i| client_endpoint(&options, i)).collect();
        let mut unique = endpoints.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), endpoints.len());
        assert_eq!(endpoints[0], (Ipv4Addr::new(127, 0, 0, 1), 65530));
        assert_eq!(endpoints[6], (Ipv4Addr::new(127, 0, 1, 1), 65530));
    }
}
