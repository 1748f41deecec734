//! Synthetic IPv4/TCP packets: headers, checksums and per-connection
//! sequence numbers, enough for Wireshark to reassemble a byte stream.
//!
//! Packets are raw IPv4 datagrams (pcap link type `RAW`), with no Ethernet
//! header. Every checksum is computed, so Wireshark's checksum validation
//! (off by default) passes too.

use std::net::Ipv4Addr;

/// TCP flag bits (the low byte of the flags field).
pub mod flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push the data to the application.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
}

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;
/// The window-scale shift announced in the SYNs, so that a 16-bit window
/// field of 65535 stands for about 8 MiB and Wireshark does not flag full
/// windows when a connection sends large chunks.
pub const WINDOW_SHIFT: u8 = 7;
/// Largest TCP payload one packet may carry: an IPv4 datagram is at most
/// 65535 bytes, headers included.
pub const MAX_PAYLOAD: usize = 65535 - IPV4_HEADER_LEN - TCP_HEADER_LEN;

/// The one's-complement sum of `data` as big-endian 16-bit words (a last
/// odd byte is padded with zero), added to `initial`, not yet folded.
fn ones_complement_sum(initial: u32, data: &[u8]) -> u32 {
    let mut sum = initial;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
        // Fold early so the sum never overflows, however long the data.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = words.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    fold(ones_complement_sum(0, data))
}

/// The TCP checksum of `segment` (header with a zero checksum field, then
/// the payload) between `src` and `dst`, over the IPv4 pseudo-header.
pub fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = 6;
    // Segments are at most MAX_PAYLOAD + header bytes long, which fits.
    pseudo[10..12].copy_from_slice(&(segment.len() as u16).to_be_bytes());
    let sum = ones_complement_sum(0, &pseudo);
    fold(ones_complement_sum(sum, segment))
}

/// One TCP segment to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// The IPv4 identification field.
    pub ip_id: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (sent with the ACK flag).
    pub ack: u32,
    /// Flag bits, see [`flags`].
    pub flags: u8,
    /// The payload; at most [`MAX_PAYLOAD`] bytes.
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// The whole IPv4 datagram. SYN segments carry the window-scale option
    /// ([`WINDOW_SHIFT`]). A payload longer than [`MAX_PAYLOAD`] is cut to it.
    pub fn to_ipv4(&self) -> Vec<u8> {
        let payload = &self.payload[..self.payload.len().min(MAX_PAYLOAD)];
        let options: &[u8] = if self.flags & flags::SYN != 0 {
            // No-operation, then window scale (kind 3, length 3, shift).
            &[1, 3, 3, WINDOW_SHIFT]
        } else {
            &[]
        };
        let tcp_len = TCP_HEADER_LEN + options.len() + payload.len();
        let total_len = IPV4_HEADER_LEN + tcp_len;

        let mut packet = Vec::with_capacity(total_len);
        // IPv4 header.
        packet.push(0x45); // Version 4, header length 5 words.
        packet.push(0); // DSCP/ECN.
        packet.extend_from_slice(&(total_len as u16).to_be_bytes());
        packet.extend_from_slice(&self.ip_id.to_be_bytes());
        packet.extend_from_slice(&0x4000u16.to_be_bytes()); // Don't fragment.
        packet.push(64); // TTL.
        packet.push(6); // Protocol: TCP.
        packet.extend_from_slice(&[0, 0]); // Checksum, filled in below.
        packet.extend_from_slice(&self.src.0.octets());
        packet.extend_from_slice(&self.dst.0.octets());
        let ip_checksum = internet_checksum(&packet[..IPV4_HEADER_LEN]);
        packet[10..12].copy_from_slice(&ip_checksum.to_be_bytes());

        // TCP header.
        let tcp_start = packet.len();
        packet.extend_from_slice(&self.src.1.to_be_bytes());
        packet.extend_from_slice(&self.dst.1.to_be_bytes());
        packet.extend_from_slice(&self.seq.to_be_bytes());
        let ack = if self.flags & flags::ACK != 0 {
            self.ack
        } else {
            0
        };
        packet.extend_from_slice(&ack.to_be_bytes());
        let data_offset_words = ((TCP_HEADER_LEN + options.len()) / 4) as u8;
        packet.push(data_offset_words << 4);
        packet.push(self.flags);
        packet.extend_from_slice(&0xffffu16.to_be_bytes()); // Window.
        packet.extend_from_slice(&[0, 0]); // Checksum, filled in below.
        packet.extend_from_slice(&[0, 0]); // Urgent pointer.
        packet.extend_from_slice(options);
        packet.extend_from_slice(payload);
        let checksum = tcp_checksum(self.src.0, self.dst.0, &packet[tcp_start..]);
        packet[tcp_start + 16..tcp_start + 18].copy_from_slice(&checksum.to_be_bytes());
        packet
    }
}

/// The sequence-number state of one synthetic TCP connection.
#[derive(Debug, Clone)]
pub struct TcpFlow {
    /// Client address and port.
    pub client: (Ipv4Addr, u16),
    /// Server address and port.
    pub server: (Ipv4Addr, u16),
    /// Next sequence number of each side: client, server.
    next_seq: [u32; 2],
    /// Next IPv4 identification of each side.
    next_id: [u16; 2],
}

/// Which side of a [`TcpFlow`] sends a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that connected.
    Client,
    /// The side that accepted.
    Server,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

impl TcpFlow {
    /// A flow whose initial sequence numbers are `client_isn` and `server_isn`.
    pub fn new(
        client: (Ipv4Addr, u16),
        server: (Ipv4Addr, u16),
        client_isn: u32,
        server_isn: u32,
    ) -> Self {
        TcpFlow {
            client,
            server,
            next_seq: [client_isn, server_isn],
            next_id: [1, 1],
        }
    }

    /// The next sequence number of `side`.
    pub fn next_seq(&self, side: Side) -> u32 {
        self.next_seq[side.index()]
    }

    /// Builds one segment from `side` and advances its sequence number by
    /// the payload length, plus one for SYN and FIN.
    pub fn segment(&mut self, side: Side, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst) = match side {
            Side::Client => (self.client, self.server),
            Side::Server => (self.server, self.client),
        };
        let i = side.index();
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        let packet = Segment {
            src,
            dst,
            ip_id: self.next_id[i],
            seq: self.next_seq[i],
            ack: self.next_seq[side.other().index()],
            flags,
            payload,
        }
        .to_ipv4();
        let mut advance = payload.len() as u32;
        if flags & (flags::SYN | flags::FIN) != 0 {
            advance = advance.wrapping_add(1);
        }
        self.next_seq[i] = self.next_seq[i].wrapping_add(advance);
        self.next_id[i] = self.next_id[i].wrapping_add(1);
        packet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_matches_the_textbook_example() {
        // The example header from RFC 1071's usual illustration (Wikipedia,
        // "Internet checksum"): 192.168.0.1 → 192.168.0.199, UDP, checksum b861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&header), 0xb861);
        let mut with_sum = header;
        with_sum[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet_checksum(&with_sum), 0);
    }

    #[test]
    fn rfc1071_sum_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (before
        // complementing).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn tcp_checksum_of_a_known_segment() {
        // A SYN from 10.0.0.1:12345 to 10.0.0.2:80, seq 0, no options and no
        // payload. Worked by hand: the pseudo-header words 0a00 0001 0a00
        // 0002 0006 0014 sum to 0x141d, the header words 3039 0050 5002 ffff
        // (the rest are zero) to 0x1808a; the total 0x194a7 folds to 0x94a8,
        // whose complement is 0x6b57.
        let segment = [
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ];
        let sum = tcp_checksum(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            &segment,
        );
        assert_eq!(sum, 0x6b57);
    }

    #[test]
    fn built_packets_verify() {
        let client = (Ipv4Addr::LOCALHOST, 40000);
        let server = (Ipv4Addr::LOCALHOST, 9);
        let mut flow = TcpFlow::new(client, server, 1000, 5000);
        let syn = flow.segment(Side::Client, flags::SYN, &[]);
        let data = flow.segment(Side::Client, flags::ACK | flags::PSH, b"hello, odd length");
        assert_eq!(flow.next_seq(Side::Client), 1000 + 1 + 17);
        for packet in [syn, data] {
            assert_eq!(internet_checksum(&packet[..IPV4_HEADER_LEN]), 0);
            let tcp = &packet[IPV4_HEADER_LEN..];
            let mut zeroed = tcp.to_vec();
            zeroed[16] = 0;
            zeroed[17] = 0;
            let expected = tcp_checksum(client.0, server.0, &zeroed);
            assert_eq!(u16::from_be_bytes([tcp[16], tcp[17]]), expected);
            let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            assert_eq!(total, packet.len());
        }
    }

    #[test]
    fn payloads_are_capped_at_the_datagram_limit() {
        let big = vec![7u8; MAX_PAYLOAD + 10];
        let mut flow = TcpFlow::new((Ipv4Addr::LOCALHOST, 1), (Ipv4Addr::LOCALHOST, 2), 0, 0);
        let packet = flow.segment(Side::Server, flags::ACK, &big);
        assert_eq!(packet.len(), 65535);
        assert_eq!(flow.next_seq(Side::Server), MAX_PAYLOAD as u32);
    }
}
