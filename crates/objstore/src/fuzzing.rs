//! Entry points for fuzzing (not a stable API): the fuzz targets
//! `objstore_read` and `aws_config` call these, and the crate's tests call
//! them on a few inputs, so they run in every `cargo test`.
//!
//! What comes from outside here is an object's bytes and the AWS shared
//! files. [`ranged_reads`] holds a [`RangedReader`] to the behaviour of a
//! `Cursor` over the same bytes, for any sequence of reads and seeks, and
//! for reading the object as a capture index; and it checks that an object
//! that changes under the reader gives an error or bytes, never a panic.
//! [`aws_profile`] parses any text as an AWS shared file.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutOptions, PutPayload};

use crate::{RangedReader, Secrets, Store};

/// A store in memory holding one object, `key`, with `bytes`.
fn in_memory(bytes: &[u8]) -> (Store, InMemoryHandle) {
    let inner = Arc::new(InMemory::new());
    let store = Store::finish(
        Arc::clone(&inner) as Arc<dyn ObjectStore>,
        "memory://".to_owned(),
        "",
        Secrets::default(),
    )
    .expect("a current-thread runtime");
    let handle = InMemoryHandle { inner };
    handle.put(&store, bytes);
    (store, handle)
}

struct InMemoryHandle {
    inner: Arc<InMemory>,
}

impl InMemoryHandle {
    fn put(&self, store: &Store, bytes: &[u8]) {
        let payload = PutPayload::from(bytes.to_vec());
        store
            .runtime
            .block_on(
                self.inner
                    .put_opts(&ObjectPath::from(KEY), payload, PutOptions::default()),
            )
            .expect("an in-memory put");
    }
}

const KEY: &str = "capture.nixcap";

/// One step of a script, from three bytes.
#[derive(Debug, Clone, Copy)]
enum Step {
    Read(usize),
    Start(u64),
    End(i64),
    Current(i64),
}

impl Step {
    fn of(bytes: [u8; 3], size: u64) -> Step {
        let n = u64::from(u16::from_le_bytes([bytes[1], bytes[2]]));
        // Scaled, so that a short script reaches every part of a large
        // object, and past its ends.
        let scaled = n.saturating_mul(size.max(1)) / 0x8000;
        let signed = scaled as i64 - (size as i64);
        match bytes[0] % 4 {
            0 => Step::Read(((n as usize) << (bytes[0] >> 4)).min(4 << 20)),
            1 => Step::Start(scaled),
            2 => Step::End(signed / 2),
            _ => Step::Current(signed),
        }
    }
}

/// Reads up to `len` bytes, as many `read`s as it takes; an error ends it.
fn read_up_to(reader: &mut impl Read, len: usize) -> Result<Vec<u8>, ()> {
    let mut out = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return Err(()),
        }
    }
    out.truncate(filled);
    Ok(out)
}

/// `data`: a length byte, then that many 3-byte steps, a size byte, then the
/// object's contents (repeated up to the size the size byte asks for, so
/// that windows grow to their largest).
pub fn ranged_reads(data: &[u8]) {
    let Some((&steps, rest)) = data.split_first() else {
        return;
    };
    let script_len = (usize::from(steps) % 24) * 3;
    if rest.len() < script_len + 1 {
        return;
    }
    let (script, rest) = rest.split_at(script_len);
    let (&size_byte, contents) = rest.split_first().expect("checked above");
    let mut bytes = contents.to_vec();
    let want = usize::from(size_byte & 0x7f) << 15;
    if !contents.is_empty() {
        while bytes.len() < want {
            let more = contents.len().min(want - bytes.len());
            bytes.extend_from_slice(&contents[..more]);
        }
    }
    let size = bytes.len() as u64;
    let (store, handle) = in_memory(&bytes);
    let mut reader = store.reader_of(KEY).expect("the object is there");
    assert_eq!(reader.size(), size);
    let mut cursor = Cursor::new(bytes.as_slice());
    let changes = size_byte & 0x80 != 0;
    for (index, step) in script.chunks_exact(3).enumerate() {
        let step = Step::of([step[0], step[1], step[2]], size);
        if changes && index == script.len() / 6 {
            // The object is replaced under the reader (a rotated file
            // uploaded again, a server that lies): the reader must fail or
            // give bytes, and never more than it was asked for.
            let mut other = bytes.clone();
            other.truncate(bytes.len() / 2);
            handle.put(&store, &other);
        }
        match step {
            Step::Read(len) => {
                let ours = read_up_to(&mut reader, len);
                if changes {
                    if let Ok(ours) = ours {
                        assert!(ours.len() <= len);
                    }
                    continue;
                }
                let theirs = read_up_to(&mut cursor, len);
                assert_eq!(ours, theirs, "{step:?}");
            }
            Step::Start(n) => compare_seek(&mut reader, &mut cursor, SeekFrom::Start(n), changes),
            Step::End(d) => compare_seek(&mut reader, &mut cursor, SeekFrom::End(d), changes),
            Step::Current(d) => {
                compare_seek(&mut reader, &mut cursor, SeekFrom::Current(d), changes)
            }
        }
    }
    if changes {
        return;
    }
    // The object read as a capture index, through ranges and from memory.
    let ranged = nixcap_capture::read_index(store.reader_of(KEY).expect("the object is there"))
        .map(|index| format!("{:?}", index.footer))
        .map_err(|err| err.to_string());
    let whole = nixcap_capture::read_index(Cursor::new(bytes.as_slice()))
        .map(|index| format!("{:?}", index.footer))
        .map_err(|err| err.to_string());
    assert_eq!(ranged, whole);
}

fn compare_seek(
    reader: &mut RangedReader,
    cursor: &mut Cursor<&[u8]>,
    to: SeekFrom,
    changes: bool,
) {
    let ours = reader.seek(to).map_err(|_| ());
    let theirs = cursor.seek(to).map_err(|_| ());
    if !changes {
        assert_eq!(ours, theirs, "{to:?}");
    }
}

/// Parses `data` (as text, where it is UTF-8) as an AWS shared file and
/// checks what comes out: keys lowercased, trimmed and free of `=`, values
/// trimmed, the first value of a key kept.
pub fn aws_profile(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let wanted = match which % 3 {
        0 => vec!["default".to_owned()],
        1 => vec!["profile farm".to_owned(), "farm".to_owned()],
        _ => Vec::new(),
    };
    let values = crate::credentials::profile_section(&text, &wanted);
    if wanted.is_empty() {
        assert!(values.is_empty());
    }
    for (key, value) in &values {
        assert_eq!(key.trim(), key);
        assert_eq!(&key.to_ascii_lowercase(), key);
        assert!(!key.contains('='));
        assert_eq!(value.trim(), value);
        assert!(text.contains(value.as_str()));
    }
    let secrets = values.values().fold(Secrets::default(), |secrets, value| {
        secrets.merged(&Secrets::of(value))
    });
    let scrubbed = secrets.scrub(&text);
    for value in values.values() {
        // A value too short to be a key is not scrubbed. The placeholder
        // can make a value again: one inside it (`acted`), or one with `<`
        // or `>` next to it (`id = <reda` around `<redacted>`), which shows
        // no secret byte; no key, secret or token looks like either.
        if value.len() >= 4 && !value.contains(['<', '>']) && !"<redacted>".contains(value.as_str())
        {
            assert!(!scrubbed.contains(value.as_str()), "{value:?} left in");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_of_reads_and_seeks_agree_with_a_cursor() {
        // Steps: read 1000, seek to the middle, read 70 000, seek from the
        // end, read, seek back before the start (an error for both), read.
        let mut data = vec![7];
        for step in [
            [0u8, 0xe8, 0x03],
            [1, 0x00, 0x40],
            [0x10, 0x70, 0x88],
            [2, 0x00, 0x60],
            [0, 0xff, 0x0f],
            [3, 0x00, 0x00],
            [0, 0x10, 0x00],
        ] {
            data.extend_from_slice(&step);
        }
        data.push(20);
        data.extend((0..4099u32).map(|i| (i * 31 % 251) as u8));
        ranged_reads(&data);
        // The same object changing under the reader.
        let at = 1 + 7 * 3;
        data[at] |= 0x80;
        ranged_reads(&data);
        // A real capture, read as an index through ranges.
        let capture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/captures/nix-2.8/build.nixcap"
        ))
        .unwrap();
        let mut data = vec![0, 0];
        data.extend_from_slice(&capture);
        ranged_reads(&data);
    }

    #[test]
    fn aws_files_of_any_shape_parse() {
        for text in [
            "[default]\naws_access_key_id = AKIDEFAULT\n",
            "\u{1}[profile farm]\n KEY = a = b \n[farm]\nkey=second\n",
            "\u{0}[default\n=\n = \n[default]]\n[ default ]\nregion=\n",
        ] {
            aws_profile(text.as_bytes());
        }
        // Found by the fuzzer: values the placeholder makes again.
        aws_profile(b"\x00[default]\nkey_id = acted\n");
        aws_profile(
            b"\x00[ default ]\x0a  AWS_Access_Key_Id\xa0=\x00\x00\x00\x00p u\x98 c#ess\x0a(=_K\x0a[defcess_efcess_gion =Key_Id = <reda\x0as_K\xff\xff\xff\xff\xff\xff\xff\xffey_Id = space\x0a[d[defKey_Id = space\x0as_K\xff\xff\xff\xff\xff\xff\xff\xffey_Id = spacee\x0a[d[defcess\x0a",
        );
    }
}
