//! Shared helpers: a scripted upstream server, a client that exchanges
//! pseudo-random payloads, capture sinks, and capture checks.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nixcap_capture::{read_capture, Capture, CloseReason, Direction};
use nixcap_record::{Config, DaemonAddr, Options};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// A deterministic pseudo-random byte generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.fill(&mut buf);
        buf
    }

    /// A number in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next_u64() % max as u64) as usize
    }
}

/// Byte count and SHA-256 of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest256 {
    pub bytes: u64,
    pub sha256: [u8; 32],
}

impl Digest256 {
    pub fn of(data: &[u8]) -> Self {
        Self {
            bytes: data.len() as u64,
            sha256: Sha256::digest(data).into(),
        }
    }
}

/// Hashes a stream as it goes.
#[derive(Default)]
pub struct Hashing {
    hasher: Sha256,
    bytes: u64,
}

impl Hashing {
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn finish(self) -> Digest256 {
        Digest256 {
            bytes: self.bytes,
            sha256: self.hasher.finalize().into(),
        }
    }
}

/// What the scripted upstream does with each connection.
#[derive(Debug, Clone, Copy)]
pub enum Script {
    /// Reads a 16-byte request (seed, reply length), then at the same time
    /// reads the rest of the client's stream to EOF and sends `reply length`
    /// pseudo-random bytes from the seed, then shuts down its write side.
    Exchange,
    /// Reads to EOF, then answers `received N bytes` and closes. Needs the
    /// client's half-close to reach it.
    CountAfterEof,
    /// Sends `hello`, shuts down its write side, then reads to EOF and
    /// reports what it read.
    GreetThenRead,
}

/// What the upstream saw on one connection.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub received: Digest256,
    pub sent: Digest256,
}

/// A scripted upstream server on a Unix socket in a temporary directory.
pub struct Upstream {
    pub path: PathBuf,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Upstream {
    pub async fn start(script: Script) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upstream.sock");
        let mut upstream = Self::start_at(&path, script).await;
        upstream._dir = Some(dir);
        upstream
    }

    pub async fn start_at(path: &Path, script: Script) -> Self {
        let listener = UnixListener::bind(path).unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(seen) = serve(stream, script).await {
                        let _ = tx.send(seen);
                    }
                });
            }
        });
        Self {
            path: path.to_owned(),
            seen,
            task,
            _dir: None,
        }
    }

    pub fn addr(&self) -> DaemonAddr {
        DaemonAddr::from_path(&self.path)
    }

    /// Waits for the next connection report.
    pub async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(30), self.seen.recv())
            .await
            .expect("the upstream reported no connection within 30 s")
            .expect("the upstream stopped")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: UnixStream, script: Script) -> io::Result<Seen> {
    let (mut rd, mut wr) = stream.into_split();
    match script {
        Script::Exchange => {
            let mut request = [0u8; 16];
            rd.read_exact(&mut request).await?;
            let seed = u64::from_le_bytes(request[..8].try_into().unwrap());
            let reply_len = u64::from_le_bytes(request[8..].try_into().unwrap()) as usize;
            let reading = async move {
                let mut hashing = Hashing::default();
                hashing.update(&request);
                read_all_hashing(&mut rd, &mut hashing).await?;
                Ok::<_, io::Error>(hashing.finish())
            };
            let writing = async move {
                let mut hashing = Hashing::default();
                let mut prng = Prng::new(seed);
                let mut left = reply_len;
                let mut sizes = Prng::new(seed ^ 0x5555);
                while left > 0 {
                    let n = sizes.size(100_000).min(left);
                    let chunk = prng.bytes(n);
                    wr.write_all(&chunk).await?;
                    hashing.update(&chunk);
                    left -= n;
                }
                wr.shutdown().await?;
                Ok::<_, io::Error>(hashing.finish())
            };
            let (received, sent) = tokio::try_join!(reading, writing)?;
            Ok(Seen { received, sent })
        }
        Script::CountAfterEof => {
            let mut hashing = Hashing::default();
            read_all_hashing(&mut rd, &mut hashing).await?;
            let received = hashing.finish();
            let reply = format!("received {} bytes", received.bytes);
            wr.write_all(reply.as_bytes()).await?;
            wr.shutdown().await?;
            Ok(Seen {
                received,
                sent: Digest256::of(reply.as_bytes()),
            })
        }
        Script::GreetThenRead => {
            wr.write_all(b"hello").await?;
            wr.shutdown().await?;
            let mut hashing = Hashing::default();
            read_all_hashing(&mut rd, &mut hashing).await?;
            Ok(Seen {
                received: hashing.finish(),
                sent: Digest256::of(b"hello"),
            })
        }
    }
}

async fn read_all_hashing<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    hashing: &mut Hashing,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rd.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        hashing.update(&buf[..n]);
    }
}

/// What the client of an exchange sent and received.
#[derive(Debug, Clone, Copy)]
pub struct Exchanged {
    pub sent: Digest256,
    pub received: Digest256,
}

/// Runs one [`Script::Exchange`] connection through `socket`: sends
/// `up_len` pseudo-random bytes (after the 16-byte request) in random chunk
/// sizes while receiving `down_len` bytes, half-closing after sending.
pub async fn exchange(socket: &Path, seed: u64, up_len: usize, down_len: usize) -> Exchanged {
    let stream = UnixStream::connect(socket).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let sending = async move {
        let mut hashing = Hashing::default();
        let mut request = [0u8; 16];
        request[..8].copy_from_slice(&seed.to_le_bytes());
        request[8..].copy_from_slice(&(down_len as u64).to_le_bytes());
        wr.write_all(&request).await.unwrap();
        hashing.update(&request);
        let mut prng = Prng::new(seed ^ 0xc1e7);
        let mut sizes = Prng::new(seed ^ 0xaaaa);
        let mut left = up_len;
        while left > 0 {
            let n = sizes.size(70_000).min(left);
            let chunk = prng.bytes(n);
            wr.write_all(&chunk).await.unwrap();
            hashing.update(&chunk);
            left -= n;
        }
        wr.shutdown().await.unwrap();
        hashing.finish()
    };
    let receiving = async move {
        let mut hashing = Hashing::default();
        read_all_hashing(&mut rd, &mut hashing).await.unwrap();
        hashing.finish()
    };
    let (sent, received) = tokio::join!(sending, receiving);
    Exchanged { sent, received }
}

/// A capture sink that can be read while the recorder still owns a clone.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that sleeps on every write, like a very slow disk.
pub struct SlowSink {
    pub inner: SharedBuf,
    pub delay: Duration,
}

impl Write for SlowSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(self.delay);
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that accepts `capacity` bytes, then fails like a full disk.
pub struct FullDisk {
    pub inner: SharedBuf,
    pub capacity: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let used = self.inner.0.lock().unwrap().len();
        if used >= self.capacity {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf.len().min(self.capacity - used);
        self.inner.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A recorder configuration for tests: private socket, quiet.
pub fn test_config(upstream: DaemonAddr) -> Config {
    let mut config = Config::new(None, upstream);
    config.options = Options {
        log_to_stderr: false,
        shutdown_grace: Duration::from_millis(500),
        ..Options::default()
    };
    config
}

pub fn parse(bytes: &[u8]) -> Capture {
    read_capture(bytes).unwrap()
}

/// Checks that connection `conn` of `capture` holds exactly the streams
/// described, in its data blocks and in its close record.
pub fn assert_recorded(capture: &Capture, conn: u64, up: Digest256, down: Digest256) {
    let connection = capture
        .connection(conn)
        .unwrap_or_else(|| panic!("connection {conn} is not in the capture"));
    for (direction, expected) in [
        (Direction::ClientToServer, up),
        (Direction::ServerToClient, down),
    ] {
        assert_eq!(
            Digest256::of(&connection.stream(direction)),
            expected,
            "connection {conn} {direction}: data blocks"
        );
        let closed = connection
            .closed
            .as_ref()
            .unwrap_or_else(|| panic!("connection {conn} has no close record"));
        let digest = closed.digest(direction);
        assert_eq!(
            Digest256 {
                bytes: digest.bytes,
                sha256: digest.sha256
            },
            expected,
            "connection {conn} {direction}: close record"
        );
    }
}

/// The close reason of connection `conn`.
pub fn close_reason(capture: &Capture, conn: u64) -> CloseReason {
    capture
        .connection(conn)
        .and_then(|c| c.closed.as_ref())
        .map(|c| c.reason.clone())
        .unwrap_or_else(|| panic!("connection {conn} has no close record"))
}
