//! Primitive encodings of the worker protocol: u64 integers, booleans,
//! padded byte strings, lists, sets and maps.
//!
//! Everything on the wire is built from these (protocol reference §2).
//! [`Reader`] is a cursor over a byte slice that never reads past its end:
//! when a value is cut short it returns [`ReadError::Incomplete`], which the
//! layers above turn into a "need more bytes" value rather than a failure.
//! [`Writer`] appends canonical encodings to a `Vec<u8>`.

use std::fmt;

/// Longest string the decoder will buffer when no tighter limit applies.
///
/// Ordinary protocol strings have no cap in Nix (log lines, settings and JSON
/// can be large), but a decoder that buffers a whole value must not let a
/// corrupt length field make it allocate gigabytes. 64 MiB is far above any
/// real log line or setting and far below the memory of a build machine.
pub const MAX_STRING_LEN: u64 = 64 * 1024 * 1024;

/// Most elements a list, set or map may announce before the decoder refuses
/// it. Real closures have tens of thousands of paths at most.
pub const MAX_COLLECTION_LEN: u64 = 16 * 1024 * 1024;

/// Why a primitive read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The input ends before the value does; `needed` more bytes (at least)
    /// would let the read make progress. This is not a failure.
    #[error("incomplete input: at least {needed} more bytes needed")]
    Incomplete {
        /// Minimum number of additional bytes needed.
        needed: usize,
    },
    /// The bytes cannot be the value expected here.
    #[error("at byte {offset}: {kind}")]
    Invalid {
        /// Offset of the offending bytes, relative to the start of the
        /// reader's buffer.
        offset: usize,
        /// What is wrong.
        kind: InvalidKind,
    },
}

/// What made a value invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKind {
    /// A length field is above the decoder's limit.
    #[error("length {len} exceeds the limit of {max}")]
    LengthLimitExceeded {
        /// The announced length.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// The padding after a string holds non-zero bytes.
    #[error("non-zero padding after a {len}-byte string")]
    NonZeroPadding {
        /// Length of the string the padding follows.
        len: u64,
    },
    /// A boolean field holds a value other than 0 or 1. Nix readers accept
    /// any non-zero value as true, but no Nix writer sends one, and accepting
    /// it would make re-encoding lossy.
    #[error("boolean field holds {0}, not 0 or 1")]
    NonCanonicalBool(u64),
    /// An integer is outside the range of the field it encodes.
    #[error("{field} value {value} is out of range")]
    OutOfRange {
        /// Name of the field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A string that must be UTF-8 is not.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 {
        /// Name of the field.
        field: &'static str,
    },
    /// Anything else, described in words.
    #[error("{0}")]
    Other(String),
}

/// Result of a primitive read.
pub type ReadResult<T> = Result<T, ReadError>;

/// Number of zero bytes that follow a `len`-byte string on the wire.
pub const fn padding_len(len: u64) -> usize {
    ((8 - (len % 8)) % 8) as usize
}

/// Encoded size of a `len`-byte string: length word, bytes and padding.
pub const fn string_wire_len(len: u64) -> u64 {
    8 + len + padding_len(len) as u64
}

/// A cursor over a byte slice that decodes primitives.
///
/// Reads either succeed and advance, or fail and leave the position where
/// the failed value started only if the caller discards the reader; callers
/// that need to retry on more input re-create the reader from the start of
/// the unit they are decoding (see the session decoder).
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("pos", &self.pos)
            .field("len", &self.buf.len())
            .finish()
    }
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// An `Invalid` error at the reader's current position.
    pub fn invalid(&self, kind: InvalidKind) -> ReadError {
        ReadError::Invalid {
            offset: self.pos,
            kind,
        }
    }

    /// An `Invalid` error at an earlier position.
    pub fn invalid_at(&self, offset: usize, kind: InvalidKind) -> ReadError {
        ReadError::Invalid { offset, kind }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> ReadResult<&'a [u8]> {
        let available = self.buf.len() - self.pos;
        if available < n {
            return Err(ReadError::Incomplete {
                needed: n - available,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Looks at the next u64 without consuming it.
    pub fn peek_u64(&self) -> ReadResult<u64> {
        self.clone().u64()
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> ReadResult<u64> {
        let bytes = self.bytes(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    }

    /// A boolean: exactly 0 or 1 (see [`InvalidKind::NonCanonicalBool`]).
    pub fn bool(&mut self) -> ReadResult<bool> {
        let start = self.pos;
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid_at(start, InvalidKind::NonCanonicalBool(other))),
        }
    }

    /// A length or count, checked against `max` before anything is allocated.
    pub fn len(&mut self, max: u64) -> ReadResult<u64> {
        let start = self.pos;
        let len = self.u64()?;
        if len > max {
            return Err(self.invalid_at(start, InvalidKind::LengthLimitExceeded { len, max }));
        }
        Ok(len)
    }

    /// A padded byte string of at most [`MAX_STRING_LEN`] bytes.
    pub fn string(&mut self) -> ReadResult<&'a [u8]> {
        self.string_limited(MAX_STRING_LEN)
    }

    /// A padded byte string of at most `max` bytes; padding must be zero.
    pub fn string_limited(&mut self, max: u64) -> ReadResult<&'a [u8]> {
        let len = self.len(max)?;
        let pad = padding_len(len);
        // Ask for the whole field at once so `needed` is exact.
        let total = len as usize + pad;
        let available = self.buf.len() - self.pos;
        if available < total {
            return Err(ReadError::Incomplete {
                needed: total - available,
            });
        }
        let data = self.bytes(len as usize)?;
        let pad_start = self.pos;
        let padding = self.bytes(pad)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(self.invalid_at(pad_start, InvalidKind::NonZeroPadding { len }));
        }
        Ok(data)
    }

    /// A padded string that must be UTF-8 (store paths, names, settings).
    pub fn utf8(&mut self, field: &'static str) -> ReadResult<String> {
        let start = self.pos;
        let bytes = self.string()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.invalid_at(start, InvalidKind::NotUtf8 { field })),
        }
    }

    /// A list of `count` elements, each read by `item`.
    pub fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> ReadResult<T>,
    ) -> ReadResult<Vec<T>> {
        let count = self.len(MAX_COLLECTION_LEN)?;
        // Each element takes at least 8 bytes, so a count larger than the
        // remaining input can be reported as incomplete without allocating.
        let mut out = Vec::with_capacity((count as usize).min(self.remaining().len() / 8));
        for _ in 0..count {
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// A list of UTF-8 strings.
    pub fn string_list(&mut self, field: &'static str) -> ReadResult<Vec<String>> {
        self.list(|r| r.utf8(field))
    }
}

/// Appends canonical encodings to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Raw bytes, unpadded.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A little-endian u64.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.buf.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A boolean as 0 or 1.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.u64(value as u64)
    }

    /// A padded byte string.
    pub fn string(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        let bytes = bytes.as_ref();
        self.u64(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self.buf
            .extend_from_slice(&[0u8; 8][..padding_len(bytes.len() as u64)]);
        self
    }

    /// A list of strings.
    pub fn string_list<S: AsRef<[u8]>>(&mut self, items: &[S]) -> &mut Self {
        self.u64(items.len() as u64);
        for item in items {
            self.string(item);
        }
        self
    }

    /// A list whose elements are written by `item`.
    pub fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.u64(items.len() as u64);
        for element in items {
            item(self, element);
        }
        self
    }
}

#[cfg(test)]
mod tests;
