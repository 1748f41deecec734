//! The capture file, written around the page cache.
//!
//! A recorder writes every byte it forwards once and does not read it back.
//! Through the page cache that costs the kernel a copy into freshly
//! allocated cache pages, and, on a machine whose memory is full of other
//! work's cache, reclaiming those pages first: the profile in
//! docs/BENCHMARKS.md shows this write as the largest single cost of a
//! recording, above SHA-256. [`CaptureFile`] therefore writes whole aligned
//! blocks with `O_DIRECT` (the device takes them from the recorder's own
//! buffer) and only the unaligned end of each write through the page cache,
//! on a second descriptor of the same file.
//!
//! Every `write` has handed all its bytes to the kernel when it returns, as
//! a plain file's does, so a recorder killed at any moment loses nothing
//! that was written. Where `O_DIRECT` is refused (tmpfs, some network file
//! systems, an unusual alignment), the file falls back to ordinary writes,
//! for good.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The alignment of `O_DIRECT` offsets, lengths and buffers: 4 KiB suits
/// every common device and file system (most need 512 bytes).
const BLOCK: usize = 4096;

/// How much is staged per direct write.
const STAGING: usize = 1 << 20;

/// A capture file that bypasses the page cache for whole blocks.
#[derive(Debug)]
pub struct CaptureFile {
    buffered: File,
    direct: Option<File>,
    /// Bytes in the file.
    len: u64,
    /// The file's bytes from its last block boundary to `len`.
    tail: Vec<u8>,
    /// Backing store of the aligned staging area.
    staging: Vec<u8>,
}

impl CaptureFile {
    /// Wraps `file`, an empty file just created at `path`, opening `path` a
    /// second time with `O_DIRECT` if the file system allows it.
    pub fn new(file: File, path: &Path) -> CaptureFile {
        let direct = Self::open_direct(&file, path);
        CaptureFile {
            buffered: file,
            staging: if direct.is_some() {
                vec![0; STAGING + BLOCK]
            } else {
                Vec::new()
            },
            direct,
            len: 0,
            tail: Vec::with_capacity(BLOCK),
        }
    }

    /// Wraps `file` without bypassing the page cache.
    pub fn buffered(file: File) -> CaptureFile {
        CaptureFile {
            buffered: file,
            direct: None,
            len: 0,
            tail: Vec::new(),
            staging: Vec::new(),
        }
    }

    fn open_direct(file: &File, path: &Path) -> Option<File> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() != 0 {
            return None;
        }
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()?;
        // The same file, not one that replaced it at that path meanwhile.
        let same = direct
            .metadata()
            .is_ok_and(|d| d.dev() == meta.dev() && d.ino() == meta.ino());
        same.then_some(direct)
    }

    /// Whether whole blocks still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The file, for reading its metadata.
    pub fn get_ref(&self) -> &File {
        &self.buffered
    }

    /// The aligned staging area.
    fn stage(staging: &mut [u8]) -> &mut [u8] {
        let skip = staging.as_ptr().align_offset(BLOCK).min(BLOCK);
        &mut staging[skip..skip + STAGING]
    }

    /// Writes `parts`, one after the other: whole blocks from the staging
    /// area with `O_DIRECT`, the unaligned end through the page cache.
    fn write_direct<'a>(&mut self, parts: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        let mut parts = parts.into_iter().filter(|part| !part.is_empty()).peekable();
        let Some(direct) = &self.direct else {
            for part in parts {
                self.write_buffered(part)?;
            }
            return Ok(());
        };
        let stage = Self::stage(&mut self.staging);
        // `stage` holds the bytes from file offset `start` (a block
        // boundary) on; its first `in_file` bytes are in the file already
        // (the old tail), the rest up to `carried` not yet.
        let mut carried = self.tail.len();
        stage[..carried].copy_from_slice(&self.tail);
        let mut in_file = carried;
        let mut start = self.len - carried as u64;
        // What is left of the part being staged.
        let mut bytes: &[u8] = &[];
        loop {
            while carried < STAGING {
                if bytes.is_empty() {
                    match parts.next() {
                        Some(part) => bytes = part,
                        None => break,
                    }
                }
                let take = bytes.len().min(STAGING - carried);
                stage[carried..carried + take].copy_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                carried += take;
            }
            let filled = carried;
            let aligned = filled / BLOCK * BLOCK;
            if aligned > 0 {
                if let Err(error) = direct.write_all_at(&stage[..aligned], start) {
                    if error.raw_os_error() != Some(libc::EINVAL) {
                        return Err(error);
                    }
                    // Refused after all: what is staged, and everything
                    // after it, goes through the page cache from now on.
                    self.direct = None;
                    self.buffered
                        .write_all_at(&stage[in_file..filled], start + in_file as u64)?;
                    self.len = start + filled as u64;
                    self.tail.clear();
                    self.write_buffered(bytes)?;
                    for part in parts {
                        self.write_buffered(part)?;
                    }
                    return Ok(());
                }
                // The old tail was in the first block written.
                in_file = 0;
            }
            // Less than a block is left; the next round, or the page
            // cache, takes it.
            stage.copy_within(aligned..filled, 0);
            start += aligned as u64;
            carried = filled - aligned;
            if bytes.is_empty() && parts.peek().is_none() {
                // The end of this write goes through the page cache, so
                // that it is in the file when the call returns.
                if carried > in_file {
                    self.buffered
                        .write_all_at(&stage[in_file..carried], start + in_file as u64)?;
                }
                self.len = start + carried as u64;
                self.tail.clear();
                self.tail.extend_from_slice(&stage[..carried]);
                return Ok(());
            }
        }
    }

    fn write_buffered(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buffered.write_all_at(bytes, self.len)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

impl Write for CaptureFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_direct([buf])
    }

    /// Writes every buffer (a capture writer hands a stored frame over in
    /// pieces, so that its bytes are copied once, into the staging area).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.write_direct(bufs.iter().map(|buf| &**buf))?;
        Ok(bufs.iter().map(|buf| buf.len()).sum())
    }

    /// Every write is in the kernel when it returns: nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 31 + seed * 7) % 251) as u8)
            .collect()
    }

    /// A new capture file in a temporary directory, with `O_DIRECT` or not.
    fn new_capture_file(direct: bool) -> (tempfile::TempDir, std::path::PathBuf, CaptureFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture");
        let file = File::create(&path).unwrap();
        let out = if direct {
            CaptureFile::new(file, &path)
        } else {
            CaptureFile::buffered(file)
        };
        (dir, path, out)
    }

    /// Writes of every awkward size, in both modes, leave exactly the bytes
    /// written, and the file is whole after every single write.
    #[test]
    fn writes_of_any_size_land_in_order() {
        let sizes = [
            1,
            BLOCK - 1,
            1,
            BLOCK,
            3 * BLOCK + 5,
            STAGING,
            STAGING + BLOCK + 17,
            10,
            2 * STAGING - 3,
            BLOCK - 10,
            0,
            7,
        ];
        for direct in [true, false] {
            let (_dir, path, mut out) = new_capture_file(direct);
            let mut expected = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let bytes = pattern(*size, i);
                out.write_all(&bytes).unwrap();
                expected.extend_from_slice(&bytes);
                assert_eq!(std::fs::read(&path).unwrap(), expected, "after write {i}");
            }
            if direct && !out.is_direct() {
                eprintln!("O_DIRECT is not available in the temporary directory");
            }
        }
    }

    /// A vectored write is the writes of its buffers one after the other,
    /// empty buffers and buffers that straddle the staging area included.
    #[test]
    fn vectored_writes_land_in_order() {
        let groups: [&[usize]; 5] = [
            &[9, 3, 131_072, 3, 131_072, 3, 7],
            &[0, BLOCK, 0, 1],
            &[STAGING - 5, 3, STAGING + 11, 3, 2 * BLOCK],
            &[1],
            &[],
        ];
        for direct in [true, false] {
            let (_dir, path, mut out) = new_capture_file(direct);
            let mut expected = Vec::new();
            for (i, sizes) in groups.iter().enumerate() {
                let parts: Vec<Vec<u8>> = sizes
                    .iter()
                    .enumerate()
                    .map(|(j, size)| pattern(*size, i * 10 + j))
                    .collect();
                let slices: Vec<io::IoSlice<'_>> =
                    parts.iter().map(|part| io::IoSlice::new(part)).collect();
                let total: usize = sizes.iter().sum();
                assert_eq!(out.write_vectored(&slices).unwrap(), total);
                for part in &parts {
                    expected.extend_from_slice(part);
                }
                assert_eq!(std::fs::read(&path).unwrap(), expected, "after group {i}");
            }
        }
    }

    #[test]
    fn a_file_that_is_not_empty_is_written_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capture");
        std::fs::write(&path, b"x").unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(!CaptureFile::new(file, &path).is_direct());
    }
}
