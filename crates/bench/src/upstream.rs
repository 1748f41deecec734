//! Synthetic upstreams on Unix sockets, served by threads of this process:
//! a byte pump that sinks or sources bytes as fast as it can, and a fake
//! daemon that answers the handshake, SetOptions and IsValidPath.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nixcap_wire::handshake::{DaemonHello, DaemonNixVersion};
use nixcap_wire::ops::{Reply, Request};
use nixcap_wire::primitives::{ReadError, Reader, Writer};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::version::WORKER_MAGIC_1;
use nixcap_wire::{ByteString, Negotiated, ProtocolVersion};

use crate::error::{IoContext, Result};

/// The pump's request header: mode, length and offset, three little-endian u64s.
pub const PUMP_HEADER_LEN: usize = 24;

/// The pump's request: sink this many bytes, then answer with the count.
pub const PUMP_SINK: u64 = 1;
/// The pump's request: send this many bytes, then close.
pub const PUMP_SOURCE: u64 = 2;

/// The protocol version the fake daemon announces (that of Nix 2.8).
pub const FAKE_DAEMON_VERSION: ProtocolVersion = ProtocolVersion::new(1, 34);

/// Size of the pseudo-random block the pump and the pump client send over
/// and over. Larger than any zstd window the capture writer uses, so the
/// capture cannot compress it.
pub const RANDOM_BLOCK: usize = 8 << 20;

/// Which synthetic upstream to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sinks or sources bytes (see [`PUMP_SINK`], [`PUMP_SOURCE`]).
    Pump,
    /// Speaks just enough of the worker protocol for the latency client.
    FakeDaemon,
}

/// A running synthetic upstream. Dropping it stops accepting.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts serving `kind` on a fresh socket.
    pub fn start(kind: Kind) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("nxu")
            .tempdir()
            .doing(|| "creating a socket directory".to_owned())?;
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).doing(|| format!("binding {}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let random: Arc<[u8]> =
            nixcap_test_support::scenarios::pseudo_random_bytes(RANDOM_BLOCK, 0x5eed).into();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("bench-upstream".to_owned())
                .spawn(move || accept_loop(listener, kind, &stop, random))
                .doing(|| "starting the upstream thread".to_owned())?
        };
        Ok(Server {
            path,
            stop,
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop up so that it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: UnixListener, kind: Kind, stop: &AtomicBool, random: Arc<[u8]>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let random = Arc::clone(&random);
        // Connection threads are detached: each ends when its client goes.
        let _ = std::thread::Builder::new()
            .name("bench-upstream-conn".to_owned())
            .spawn(move || {
                // A connection that fails (a relay probing, a client that
                // gives up) only ends that connection.
                let _ = match kind {
                    Kind::Pump => serve_pump(stream, &random),
                    Kind::FakeDaemon => serve_fake_daemon(stream),
                };
            });
    }
}

fn serve_pump(mut stream: UnixStream, random: &[u8]) -> io::Result<()> {
    let mut header = [0u8; PUMP_HEADER_LEN];
    stream.read_exact(&mut header)?;
    let word = |i: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&header[i * 8..i * 8 + 8]);
        u64::from_le_bytes(word)
    };
    let (mode, len, offset) = (word(0), word(1), word(2));
    match mode {
        PUMP_SINK => {
            let mut buffer = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            while got < len {
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            stream.write_all(&got.to_le_bytes())?;
        }
        PUMP_SOURCE => {
            write_repeating(&mut stream, random, offset, len)?;
            stream.shutdown(Shutdown::Write)?;
            // Wait for the client to close, so that nothing is reset.
            let mut rest = [0u8; 64];
            while stream.read(&mut rest)? > 0 {}
        }
        _ => {}
    }
    Ok(())
}

/// Writes `len` bytes to `out`, cycling through `block` from `start`.
pub fn write_repeating(out: &mut impl Write, block: &[u8], start: u64, len: u64) -> io::Result<()> {
    let mut left = len;
    let mut offset = (start % block.len().max(1) as u64) as usize;
    // Writes of 256 KiB: large enough to be cheap, small enough to keep
    // every relay's buffers busy rather than one giant write.
    const STEP: usize = 256 * 1024;
    while left > 0 {
        let end = (offset + STEP).min(block.len());
        let take = ((end - offset) as u64).min(left) as usize;
        out.write_all(&block[offset..offset + take])?;
        left -= take as u64;
        offset = if offset + take >= block.len() {
            0
        } else {
            offset + take
        };
    }
    Ok(())
}

/// Reads from `stream` into `buf` until `parse` stops reporting incomplete
/// input; returns the value and the number of bytes it used.
pub(crate) fn read_until<T>(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    mut parse: impl FnMut(&mut Reader<'_>) -> std::result::Result<T, ReadError>,
) -> io::Result<(T, usize)> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let mut r = Reader::new(buf);
        match parse(&mut r) {
            Ok(value) => return Ok((value, r.position())),
            Err(ReadError::Incomplete { .. }) => {}
            Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn serve_fake_daemon(mut stream: UnixStream) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut out = Writer::new();
    // Magic 1, then the client's version (older clients send it only after
    // the daemon's hello; this one waits for the magic alone).
    let ((), used) = read_until(&mut stream, &mut buf, |r| {
        let magic = r.u64()?;
        if magic == WORKER_MAGIC_1 {
            Ok(())
        } else {
            Err(r.invalid(nixcap_wire::primitives::InvalidKind::OutOfRange {
                field: "magic",
                value: magic,
            }))
        }
    })?;
    buf.drain(..used);
    DaemonHello {
        version: FAKE_DAEMON_VERSION,
    }
    .encode(&mut out);
    stream.write_all(out.as_bytes())?;
    let (client_version, used) = read_until(&mut stream, &mut buf, |r| r.u64())?;
    buf.drain(..used);
    let negotiated = Negotiated::new(ProtocolVersion::negotiate(
        ProtocolVersion::from_wire(client_version),
        FAKE_DAEMON_VERSION,
    ));
    // CPU affinity (with its CPU when set) and reserveSpace.
    let ((), used) = read_until(&mut stream, &mut buf, |r| {
        if negotiated.at_least(14) && r.u64()? != 0 {
            r.u64()?;
        }
        if negotiated.at_least(11) {
            r.u64()?;
        }
        Ok(())
    })?;
    buf.drain(..used);
    let mut out = Writer::new();
    if negotiated.at_least(33) {
        DaemonNixVersion(ByteString::from(b"2.8.0 (nixcap-bench fake)".to_vec())).encode(&mut out);
    }
    StderrMessage::Last.encode(&mut out);
    stream.write_all(out.as_bytes())?;
    loop {
        let request = match read_until(&mut stream, &mut buf, |r| {
            Request::decode_with_op(r, &negotiated)
        }) {
            Ok((request, used)) => {
                buf.drain(..used);
                request
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let reply = match request {
            Request::IsValidPath { .. } => Reply::IsValidPath { valid: true },
            Request::SetOptions { .. } => Reply::SetOptions {},
            _ => return Ok(()),
        };
        let mut out = Writer::new();
        StderrMessage::Last.encode(&mut out);
        reply.encode(&mut out, &negotiated);
        stream.write_all(out.as_bytes())?;
    }
}
