//! A minimal pcapng writer: one section header block, one interface
//! description block, and enhanced packet blocks with comments.
//!
//! The block layouts follow the pcapng specification
//! (draft-ietf-opsawg-pcapng): every block is `type (u32)`, `total length
//! (u32)`, body, `total length (u32)` again; options are `code (u16)`,
//! `length (u16)`, value padded to 4 bytes, ending with `opt_endofopt`.
//! Everything is written little-endian, which the byte-order magic of the
//! section header announces.

use std::io::{self, Write};

const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// Link type of raw IPv4/IPv6 packets (`LINKTYPE_RAW`).
pub const LINKTYPE_RAW: u16 = 101;

/// Longest option value: the length field is 16 bits.
const MAX_OPTION_LEN: usize = 0xffff;

/// Writes a pcapng file with a single interface whose timestamps are in
/// nanoseconds.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    out: W,
    packets: u64,
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn push_option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(MAX_OPTION_LEN)];
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.resize(body.len() + pad4(value.len()), 0);
}

/// Cuts `text` to at most `max` bytes at a character boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header (naming `application`) and the interface
    /// description (`link_type`, nanosecond timestamps, named `if_name`).
    pub fn new(mut out: W, application: &str, link_type: u16, if_name: &str) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // Major version.
        shb.extend_from_slice(&0u16.to_le_bytes()); // Minor version.
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // Section length: unknown.
        push_option(&mut shb, SHB_USERAPPL, application.as_bytes());
        push_option(&mut shb, OPT_ENDOFOPT, &[]);
        write_block(&mut out, BLOCK_SHB, &shb)?;

        let mut idb = Vec::new();
        idb.extend_from_slice(&link_type.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes()); // Reserved.
        idb.extend_from_slice(&0u32.to_le_bytes()); // Snap length: no limit.
        push_option(&mut idb, IF_NAME, if_name.as_bytes());
        push_option(&mut idb, IF_TSRESOL, &[9]); // 10^-9 s.
        push_option(&mut idb, OPT_ENDOFOPT, &[]);
        write_block(&mut out, BLOCK_IDB, &idb)?;
        Ok(PcapngWriter { out, packets: 0 })
    }

    /// Writes one packet captured at `unix_nanos` (nanoseconds since the Unix
    /// epoch), with zero or more comments (each cut to 65535 bytes).
    pub fn packet(&mut self, unix_nanos: u64, data: &[u8], comments: &[String]) -> io::Result<()> {
        let mut epb = Vec::with_capacity(20 + data.len() + 8);
        epb.extend_from_slice(&0u32.to_le_bytes()); // Interface 0.
        epb.extend_from_slice(&((unix_nanos >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(unix_nanos as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes()); // Captured.
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes()); // Original.
        epb.extend_from_slice(data);
        epb.resize(epb.len() + pad4(data.len()), 0);
        if !comments.is_empty() {
            for comment in comments {
                push_option(
                    &mut epb,
                    OPT_COMMENT,
                    truncate_utf8(comment, MAX_OPTION_LEN).as_bytes(),
                );
            }
            push_option(&mut epb, OPT_ENDOFOPT, &[]);
        }
        write_block(&mut self.out, BLOCK_EPB, &epb)?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_block(out: &mut impl Write, block_type: u32, body: &[u8]) -> io::Result<()> {
    let total = u32::try_from(12 + body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too long"))?;
    let mut block = Vec::with_capacity(total as usize);
    block.extend_from_slice(&block_type.to_le_bytes());
    block.extend_from_slice(&total.to_le_bytes());
    block.extend_from_slice(body);
    block.extend_from_slice(&total.to_le_bytes());
    out.write_all(&block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn blocks_are_framed_and_padded() {
        let mut writer = PcapngWriter::new(Vec::new(), "test", LINKTYPE_RAW, "lo").unwrap();
        writer
            .packet((7u64 << 32) | 5, &[1, 2, 3], &["hé".to_owned()])
            .unwrap();
        let bytes = writer.finish().unwrap();

        // Walk the blocks: each starts and ends with its total length.
        let mut at = 0;
        let mut types = Vec::new();
        while at < bytes.len() {
            let len = u32_at(&bytes, at + 4) as usize;
            assert_eq!(len % 4, 0);
            assert_eq!(u32_at(&bytes, at + len - 4) as usize, len);
            types.push(u32_at(&bytes, at));
            at += len;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(types, [BLOCK_SHB, BLOCK_IDB, BLOCK_EPB]);
        assert_eq!(u32_at(&bytes, 8), BYTE_ORDER_MAGIC);

        // The enhanced packet block: timestamp halves, lengths, padded data,
        // then the comment option ("hé" is 3 bytes, padded to 4) and the end.
        let epb = &bytes[bytes.len() - u32_at(&bytes, bytes.len() - 4) as usize..];
        assert_eq!(u32_at(epb, 12), 7);
        assert_eq!(u32_at(epb, 16), 5);
        assert_eq!(u32_at(epb, 20), 3);
        assert_eq!(&epb[28..32], &[1, 2, 3, 0]);
        assert_eq!(&epb[32..36], &[1, 0, 3, 0]);
        assert_eq!(&epb[36..40], "hé\0".as_bytes());
        assert_eq!(&epb[40..44], &[0, 0, 0, 0]);
        assert_eq!(epb.len(), 48);
    }

    #[test]
    fn long_comments_are_cut_at_a_character_boundary() {
        let text = "é".repeat(40_000);
        let cut = truncate_utf8(&text, MAX_OPTION_LEN);
        assert!(cut.len() <= MAX_OPTION_LEN);
        assert_eq!(cut.len(), 65534);
    }
}
