//! [`RangedReader`]: one object as a blocking `Read + Seek`, fetched by
//! byte ranges.
//!
//! A read outside the buffered window fetches a new window starting at the
//! read position. Windows start at 64 KiB and double while reads stay
//! sequential (up to 8 MiB), and drop back to 64 KiB after a seek, so a
//! full scan costs few requests and reading a footer index (header at the
//! start, trailer and footer at the end) costs three small ones.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;

use crate::Store;

const MIN_WINDOW: u64 = 64 << 10;
const MAX_WINDOW: u64 = 8 << 20;

/// How much a reader fetched: requests and bytes.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Range requests made.
    pub requests: AtomicU64,
    /// Bytes received.
    pub bytes: AtomicU64,
}

/// One object, read by ranges; see the module documentation.
#[derive(Debug)]
pub struct RangedReader {
    store: Store,
    key: String,
    size: u64,
    pos: u64,
    window: Bytes,
    window_start: u64,
    next_window: u64,
    fetched: Arc<Fetched>,
}

impl RangedReader {
    pub(crate) fn new(store: Store, key: String, size: u64) -> RangedReader {
        RangedReader {
            store,
            key,
            size,
            pos: 0,
            window: Bytes::new(),
            window_start: 0,
            next_window: MIN_WINDOW,
            fetched: Arc::default(),
        }
    }

    /// The object's size, from the store.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The object's URL.
    pub fn url(&self) -> String {
        self.store.url_of(&self.key)
    }

    /// What this reader fetched so far (shared; it keeps counting).
    pub fn fetched(&self) -> Arc<Fetched> {
        Arc::clone(&self.fetched)
    }

    fn fill(&mut self) -> io::Result<()> {
        let sequential =
            self.pos == self.window_start + self.window.len() as u64 && !self.window.is_empty();
        self.next_window = if sequential {
            (self.next_window * 2).min(MAX_WINDOW)
        } else {
            MIN_WINDOW
        };
        let end = self.pos.saturating_add(self.next_window).min(self.size);
        let path = ObjectPath::from(self.key.as_str());
        let range = self.pos..end;
        let bytes = self
            .store
            .runtime
            .block_on(self.store.inner.get_range(&path, range))
            .map_err(|e| {
                io::Error::other(
                    self.store
                        .request_error(&self.url(), "reading", e)
                        .to_string(),
                )
            })?;
        if bytes.len() as u64 != end - self.pos {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: asked for bytes {}..{end}, got {}",
                    self.url(),
                    self.pos,
                    bytes.len()
                ),
            ));
        }
        self.fetched.requests.fetch_add(1, Ordering::Relaxed);
        self.fetched
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.window = bytes;
        self.window_start = self.pos;
        Ok(())
    }
}

impl Read for RangedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let in_window = self.pos >= self.window_start
            && self.pos < self.window_start + self.window.len() as u64;
        if !in_window {
            self.fill()?;
        }
        let offset = (self.pos - self.window_start) as usize;
        let available = &self.window[offset..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(len: usize) -> (tempfile::TempDir, Store, String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("obj"), &bytes).unwrap();
        let url = format!("file://{}/obj", dir.path().display());
        let store = Store::open(&url).unwrap();
        let key = store.prefix().to_owned();
        (dir, store, key, bytes)
    }

    #[test]
    fn reads_and_seeks_like_a_file() {
        let (_dir, store, key, bytes) = object(3 << 20);
        let mut reader = store.reader_of(&key).unwrap();
        assert_eq!(reader.size(), bytes.len() as u64);
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, bytes);
        // Sequential reading grows the windows: far fewer requests than 64 KiB ones.
        let requests = reader.fetched().requests.load(Ordering::Relaxed);
        assert!(requests <= 7, "{requests} requests");

        let mut tail = [0u8; 10];
        reader.seek(SeekFrom::End(-10)).unwrap();
        reader.read_exact(&mut tail).unwrap();
        assert_eq!(&tail[..], &bytes[bytes.len() - 10..]);
        reader.seek(SeekFrom::Start(100)).unwrap();
        reader.seek(SeekFrom::Current(-50)).unwrap();
        let mut mid = [0u8; 4];
        reader.read_exact(&mut mid).unwrap();
        assert_eq!(&mid[..], &bytes[50..54]);
        assert!(reader.seek(SeekFrom::Current(-100)).is_err());
        reader.seek(SeekFrom::Start(1 << 30)).unwrap();
        assert_eq!(reader.read(&mut mid).unwrap(), 0);
    }

    #[test]
    fn a_capture_index_is_read_with_a_few_small_ranges() {
        // A finished capture with a few megabytes of data.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.nixcap");
        let header = nixcap_capture::Header {
            tool_version: "test".to_owned(),
            start_unix_nanos: 1,
            metadata: Default::default(),
        };
        let mut writer = nixcap_capture::Writer::new(
            std::fs::File::create(&path).unwrap(),
            header,
            nixcap_capture::WriterOptions::default(),
        )
        .unwrap();
        writer
            .open_connection(1, 1, None, Default::default())
            .unwrap();
        // Incompressible bytes (xorshift), so the file is as large as the data.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; 1 << 16];
        for i in 0..64u64 {
            for byte in chunk.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            writer
                .data(1, nixcap_capture::Direction::ClientToServer, 2 + i, &chunk)
                .unwrap();
        }
        writer
            .close_connection(1, 100, nixcap_capture::CloseReason::CleanEof)
            .unwrap();
        writer.finish(101).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();

        let store = Store::open(&format!("file://{}", path.display())).unwrap();
        let reader = store.reader().unwrap();
        let fetched = reader.fetched();
        let index = nixcap_capture::read_index(reader).unwrap();
        assert!(matches!(
            index.footer,
            nixcap_capture::FooterStatus::Present(_)
        ));
        let bytes = fetched.bytes.load(Ordering::Relaxed);
        assert!(bytes < size / 4, "fetched {bytes} of {size} bytes");
        assert!(fetched.requests.load(Ordering::Relaxed) <= 4);
    }
}
