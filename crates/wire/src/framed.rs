//! Framed byte streams (protocol reference §2.8): the chunked encoding that
//! AddToStore (≥ 1.25), AddToStoreNar (≥ 1.23), AddMultipleToStore and
//! AddBuildLog use for their uploads.
//!
//! ```text
//! repeat:  u64 n (n > 0) | n raw bytes      <- no padding after the data
//! end:     u64 0
//! ```
//!
//! [`FramedDecoder`] walks such a stream piece by piece without ever holding
//! a whole chunk: chunk data is handed out as slices of the caller's input,
//! in pieces as small as the caller likes. Chunk boundaries carry no
//! meaning; the payload is the concatenation of all chunk data.

use crate::primitives::Writer;

/// One piece of a framed stream, borrowed from the caller's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramedPart<'a> {
    /// A chunk header announcing `len` bytes of data (never 0).
    Header {
        /// Data bytes that follow.
        len: u64,
    },
    /// Some or all of the current chunk's data.
    Data(&'a [u8]),
    /// The terminating `u64 0`; the stream is over.
    End,
}

impl FramedPart<'_> {
    /// Encoded length of the piece in bytes.
    pub fn wire_len(&self) -> usize {
        match self {
            FramedPart::Header { .. } | FramedPart::End => 8,
            FramedPart::Data(data) => data.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data { remaining: u64 },
    Done,
}

/// A streaming decoder for one framed stream.
#[derive(Debug, Clone)]
pub struct FramedDecoder {
    state: State,
    payload_len: u64,
    chunks: u64,
}

impl Default for FramedDecoder {
    fn default() -> Self {
        FramedDecoder::new()
    }
}

impl FramedDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        FramedDecoder {
            state: State::Header,
            payload_len: 0,
            chunks: 0,
        }
    }

    /// Whether the terminating `u64 0` has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes seen so far (the sum of chunk data).
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Chunks seen so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Data bytes still to come in the current chunk (0 between chunks).
    pub fn chunk_remaining(&self) -> u64 {
        match self.state {
            State::Data { remaining } => remaining,
            _ => 0,
        }
    }

    /// Decodes the next piece at the start of `input`. Data pieces are at
    /// most `max_data` bytes long, and shorter when the input or the chunk
    /// ends first. Returns `None` when `input` does not hold the next piece
    /// yet (fewer than 8 bytes of a header, or no data), or after the end.
    /// The caller drops `part.wire_len()` bytes of its input afterwards.
    pub fn next_part<'a>(&mut self, input: &'a [u8], max_data: usize) -> Option<FramedPart<'a>> {
        match self.state {
            State::Done => None,
            State::Header => {
                let word: [u8; 8] = input.get(..8)?.try_into().ok()?;
                let len = u64::from_le_bytes(word);
                if len == 0 {
                    self.state = State::Done;
                    Some(FramedPart::End)
                } else {
                    self.chunks += 1;
                    self.state = State::Data { remaining: len };
                    Some(FramedPart::Header { len })
                }
            }
            State::Data { remaining } => {
                let n = remaining.min(input.len() as u64).min(max_data as u64) as usize;
                if n == 0 {
                    return None;
                }
                let remaining = remaining - n as u64;
                self.payload_len += n as u64;
                self.state = if remaining == 0 {
                    State::Header
                } else {
                    State::Data { remaining }
                };
                Some(FramedPart::Data(&input[..n]))
            }
        }
    }
}

/// Writes `payload` as a framed stream with chunks of at most `chunk_len`
/// bytes (at least 1), followed by the terminator.
pub fn encode_framed(w: &mut Writer, payload: &[u8], chunk_len: usize) {
    for chunk in payload.chunks(chunk_len.max(1)) {
        w.u64(chunk.len() as u64).raw(chunk);
    }
    w.u64(0);
}

/// Decodes a whole framed stream at the start of `input`: the payload and
/// the stream's encoded length, or `None` if the stream is cut short.
pub fn decode_framed(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut decoder = FramedDecoder::new();
    let mut pos = 0;
    let mut payload = Vec::new();
    while let Some(part) = decoder.next_part(&input[pos..], usize::MAX) {
        pos += part.wire_len();
        if let FramedPart::Data(data) = part {
            payload.extend_from_slice(data);
        }
    }
    decoder.is_done().then_some((payload, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_not_padded_and_end_with_zero() {
        let mut w = Writer::new();
        encode_framed(&mut w, b"hello", 3);
        let bytes = w.into_bytes();
        let mut expected = Vec::new();
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"hel");
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(b"lo");
        expected.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(bytes, expected);
        let mut with_junk = bytes.clone();
        with_junk.extend_from_slice(b"next op");
        assert_eq!(
            decode_framed(&with_junk),
            Some((b"hello".to_vec(), bytes.len()))
        );
    }

    #[test]
    fn data_comes_in_pieces_no_larger_than_asked() {
        let mut w = Writer::new();
        encode_framed(&mut w, &[7u8; 100], 64);
        let bytes = w.into_bytes();
        let mut decoder = FramedDecoder::new();
        let mut pos = 0;
        let mut parts = Vec::new();
        while let Some(part) = decoder.next_part(&bytes[pos..], 10) {
            pos += part.wire_len();
            parts.push(match part {
                FramedPart::Header { len } => format!("h{len}"),
                FramedPart::Data(d) => format!("d{}", d.len()),
                FramedPart::End => "end".into(),
            });
        }
        assert_eq!(pos, bytes.len());
        assert_eq!(
            parts.join(" "),
            "h64 d10 d10 d10 d10 d10 d10 d4 h36 d10 d10 d10 d6 end"
        );
        assert_eq!(decoder.payload_len(), 100);
        assert_eq!(decoder.chunks(), 2);
    }

    #[test]
    fn a_huge_chunk_header_is_not_allocated() {
        let bytes = u64::MAX.to_le_bytes();
        let mut decoder = FramedDecoder::new();
        assert_eq!(
            decoder.next_part(&bytes, 1 << 16),
            Some(FramedPart::Header { len: u64::MAX })
        );
        assert_eq!(
            decoder.next_part(&[1, 2, 3], 1 << 16),
            Some(FramedPart::Data(&[1, 2, 3]))
        );
        assert_eq!(decoder.chunk_remaining(), u64::MAX - 3);
    }

    #[test]
    fn a_short_header_waits() {
        let mut decoder = FramedDecoder::new();
        assert_eq!(decoder.next_part(&[0, 0, 0], 16), None);
        assert_eq!(decode_framed(&[5, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }
}
