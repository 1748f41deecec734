//! Benchmark clients: a worker-protocol client built on the wire codec (the
//! handshake, SetOptions, then IsValidPath round trips), and the byte pump's
//! client.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nixcap_wire::handshake::{ClientHandshake, ClientHello, DaemonHandshake};
use nixcap_wire::ops::{Op, Reply, Request};
use nixcap_wire::primitives::Writer;
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::types::{ClientSettings, StorePath};
use nixcap_wire::{Negotiated, ProtocolVersion};

use crate::error::{Error, IoContext, Result};
use crate::upstream::{read_until, write_repeating, PUMP_HEADER_LEN, PUMP_SINK, PUMP_SOURCE};

/// How long connecting is retried while a relay is still coming up.
const CONNECT_RETRY_FOR: Duration = Duration::from_secs(5);

/// The version the client announces: that of Nix 2.8, so that every daemon
/// and the fake one speak the same framing.
const CLIENT_VERSION: ProtocolVersion = ProtocolVersion::new(1, 34);

/// The store path the latency client asks about. It is well formed; whether
/// the store holds it does not matter.
pub const QUERY_PATH: &str = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixcap-bench";

/// Connects to `path`, retrying while the socket is not there or not yet
/// listening.
pub fn connect(path: &Path) -> Result<UnixStream> {
    let deadline = Instant::now() + CONNECT_RETRY_FOR;
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e).doing(|| format!("connecting to {}", path.display())),
        }
    }
}

/// A worker-protocol client past the handshake.
#[derive(Debug)]
pub struct WireClient {
    stream: UnixStream,
    buf: Vec<u8>,
    negotiated: Negotiated,
}

impl WireClient {
    /// Connects, does the handshake and sends SetOptions.
    pub fn connect(path: &Path) -> Result<WireClient> {
        let mut stream = connect(path)?;
        let mut out = Writer::new();
        ClientHello {
            version: CLIENT_VERSION,
        }
        .encode(&mut out);
        stream
            .write_all(out.as_bytes())
            .doing(|| "sending the client hello".to_owned())?;
        let mut buf = Vec::new();
        let (daemon_version, _) = read_until(&mut stream, &mut buf, |r| {
            let hello = nixcap_wire::handshake::DaemonHello::decode(r)?;
            Ok(hello.version)
        })
        .doing(|| "reading the daemon hello".to_owned())?;
        let negotiated =
            Negotiated::new(ProtocolVersion::negotiate(CLIENT_VERSION, daemon_version));
        if negotiated.at_least(38) {
            return Err(Error::Protocol(
                "negotiated a version with features".to_owned(),
            ));
        }
        let mut out = Writer::new();
        let handshake = ClientHandshake::typical(CLIENT_VERSION, negotiated.version, Vec::new());
        handshake.encode(&mut out);
        // The hello went out already.
        stream
            .write_all(&out.as_bytes()[ClientHello::LEN..])
            .doing(|| "sending the client handshake".to_owned())?;
        let (handshake, used) = read_until(&mut stream, &mut buf, |r| {
            DaemonHandshake::decode(r, CLIENT_VERSION)
        })
        .doing(|| "reading the daemon handshake".to_owned())?;
        buf.drain(..used);
        if let Some(StderrMessage::Error(error)) = handshake.drain.last() {
            return Err(Error::Protocol(format!(
                "the daemon refused the handshake: {}",
                String::from_utf8_lossy(&error.message().0)
            )));
        }
        let mut client = WireClient {
            stream,
            buf,
            negotiated,
        };
        let settings = ClientSettings {
            keep_failed: false,
            keep_going: false,
            try_fallback: false,
            verbosity: 0,
            max_build_jobs: 1,
            max_silent_time: 0,
            use_build_hook: 1,
            verbose_build: 7,
            log_type: 0,
            print_build_trace: 0,
            build_cores: 0,
            use_substitutes: false,
            overrides: Vec::new(),
        };
        let request = client.encode(&Request::SetOptions { settings });
        client.round_trip(&request, Op::SetOptions)?;
        Ok(client)
    }

    /// The bytes of `request`, to send with [`WireClient::round_trip`].
    pub fn encode(&self, request: &Request) -> Vec<u8> {
        let mut w = Writer::new();
        request.encode(&mut w, &self.negotiated);
        w.into_bytes()
    }

    /// Sends an encoded request and reads the log messages up to
    /// `STDERR_LAST` and the reply.
    pub fn round_trip(&mut self, request: &[u8], op: Op) -> Result<Reply> {
        self.stream
            .write_all(request)
            .doing(|| format!("sending {}", op.name()))?;
        let negotiated = &self.negotiated;
        let (outcome, used) = read_until(&mut self.stream, &mut self.buf, |r| loop {
            let message = StderrMessage::decode(r, negotiated)?;
            match message {
                StderrMessage::Last => return Ok(Ok(Reply::decode(op, r, negotiated)?)),
                StderrMessage::Error(error) => {
                    return Ok(Err(String::from_utf8_lossy(&error.message().0).into_owned()))
                }
                _ => {}
            }
        })
        .doing(|| format!("reading the reply to {}", op.name()))?;
        self.buf.drain(..used);
        outcome.map_err(|message| Error::Protocol(format!("{} failed: {message}", op.name())))
    }

    /// Runs `warmup` untimed and then `count` timed IsValidPath round trips;
    /// returns the timed ones' durations in microseconds.
    pub fn is_valid_path_loop(&mut self, warmup: usize, count: usize) -> Result<Vec<f64>> {
        let request = self.encode(&Request::IsValidPath {
            path: StorePath::new(QUERY_PATH),
        });
        for _ in 0..warmup {
            self.round_trip(&request, Op::IsValidPath)?;
        }
        let mut micros = Vec::with_capacity(count);
        for _ in 0..count {
            let start = Instant::now();
            let reply = self.round_trip(&request, Op::IsValidPath)?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            if !matches!(reply, Reply::IsValidPath { .. }) {
                return Err(Error::Protocol(format!("unexpected reply {reply:?}")));
            }
        }
        Ok(micros)
    }
}

/// Which way the pump moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpDirection {
    /// Client to upstream (like an upload of a NAR to the daemon).
    Upload,
    /// Upstream to client (like a NAR download).
    Download,
}

/// Moves `len` bytes through the pump at `path`; returns the wall time from
/// connecting until the last byte (upload: until the pump confirms it got
/// them all).
///
/// The bytes come from `random` (or the pump's own block) starting at
/// `offset`; give every transfer of one capture its own offset, so that the
/// capture cannot find one transfer's bytes in another.
pub fn pump(
    path: &Path,
    direction: PumpDirection,
    len: u64,
    offset: u64,
    random: &[u8],
) -> Result<Duration> {
    let start = Instant::now();
    let mut stream = connect(path)?;
    let mode = match direction {
        PumpDirection::Upload => PUMP_SINK,
        PumpDirection::Download => PUMP_SOURCE,
    };
    let mut header = [0u8; PUMP_HEADER_LEN];
    header[..8].copy_from_slice(&mode.to_le_bytes());
    header[8..16].copy_from_slice(&len.to_le_bytes());
    header[16..].copy_from_slice(&offset.to_le_bytes());
    stream
        .write_all(&header)
        .doing(|| "sending the pump header".to_owned())?;
    match direction {
        PumpDirection::Upload => {
            write_repeating(&mut stream, random, offset, len).doing(|| "uploading".to_owned())?;
            let mut ack = [0u8; 8];
            stream
                .read_exact(&mut ack)
                .doing(|| "reading the pump's count".to_owned())?;
            let got = u64::from_le_bytes(ack);
            if got != len {
                return Err(Error::Protocol(format!(
                    "the pump got {got} of {len} bytes"
                )));
            }
        }
        PumpDirection::Download => {
            let mut buffer = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            loop {
                let n = stream
                    .read(&mut buffer)
                    .doing(|| "downloading".to_owned())?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            if got != len {
                return Err(Error::Protocol(format!(
                    "got {got} of {len} bytes from the pump"
                )));
            }
        }
    }
    let elapsed = start.elapsed();
    let _ = stream.shutdown(Shutdown::Both);
    Ok(elapsed)
}
