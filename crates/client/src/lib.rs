//! nixcap-client: a small blocking client for the Nix daemon worker
//! protocol, built on the sans-IO codec of `nixcap-wire`.
//!
//! [`Client::connect`] opens a `unix://` store's socket and does the
//! handshake at the highest version both sides speak (the client announces
//! [`ProtocolVersion::LATEST`] unless told otherwise, so the daemon's version
//! wins). After that, one operation at a time:
//!
//! - [`Client::request`] sends a typed [`Request`] without an upload, reads the
//!   log stream and decodes the typed [`Reply`] into a [`Response`].
//! - [`Client::send_request`] / [`Client::send_raw`] / [`Client::finish`] do
//!   the same in steps, for operations with an upload (the caller writes the
//!   payload bytes) or requests built by hand.
//! - [`Client::query_path_info`], [`Client::nar_from_path`] and
//!   [`Client::add_build_log`] wrap the common operations. No version of the
//!   protocol has an operation that reads a build log back; AddBuildLog is the
//!   only build-log operation there is.
//!
//! Every read and write has a timeout ([`ClientOptions::timeout`]); every
//! byte from the daemon goes through the codec, and anything it cannot
//! decode is a [`ClientError`] naming what was read and at which offset of
//! the daemon's stream. A [`ClientError::Daemon`] (the daemon answered with
//! `STDERR_ERROR` before its reply) leaves the connection usable; after any
//! other error, [`ClientError::DumpFailed`] included, the connection should
//! be dropped.

mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nixcap_wire::framed::encode_framed;
use nixcap_wire::handshake::{
    Affinity, ClientHello, DaemonHello, DaemonNixVersion, FeatureList, ReserveSpace, Trust,
};
use nixcap_wire::nar::{NarOptions, NarParser, NarStatus};
use nixcap_wire::ops::{Op, Reply, Request, Upload};
use nixcap_wire::primitives::{ReadError, ReadResult, Reader, Writer};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::types::{StorePath, UnkeyedValidPathInfo};
use nixcap_wire::{Negotiated, ProtocolVersion};

pub use error::ClientError;

/// Result of a client operation.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How the client behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The version the client announces; the lower of it and the daemon's
    /// is used.
    pub client_version: ProtocolVersion,
    /// The features the client offers (used from 1.38 on).
    pub features: Vec<String>,
    /// How long one read or write may wait for the daemon.
    pub timeout: Duration,
    /// Largest NAR [`Client::nar_from_path`] accepts into memory.
    pub max_nar_len: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_version: ProtocolVersion::LATEST,
            features: Vec::new(),
            timeout: Duration::from_secs(60),
            max_nar_len: 4 << 30,
        }
    }
}

impl ClientOptions {
    /// The defaults with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The defaults with another announced version.
    pub fn with_client_version(mut self, version: ProtocolVersion) -> Self {
        self.client_version = version;
        self
    }
}

/// What the daemon said about itself in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaemonInfo {
    /// The version the daemon announced.
    pub version: ProtocolVersion,
    /// Its Nix version (from 1.33 on).
    pub nix_version: Option<String>,
    /// Whether it trusts this client (from 1.35 on).
    pub trust: Option<Trust>,
    /// The features it offered (from 1.38 on).
    pub features: Vec<String>,
    /// Log messages it sent before ending the handshake.
    pub logs: Vec<StderrMessage>,
}

/// The answer to one operation: the log messages the daemon sent while it
/// worked (STDERR_NEXT, activities, STDERR_WRITE data, …; not the closing
/// STDERR_LAST), then the typed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The log stream, in order.
    pub logs: Vec<StderrMessage>,
    /// The reply.
    pub reply: Reply,
}

/// The socket path of a store address: `unix:///path`, `unix:/path` or a
/// plain absolute path; a `?query` is ignored. Other stores are refused.
pub fn socket_path(address: &str) -> Result<PathBuf> {
    let refuse = |reason| ClientError::Address {
        address: address.to_owned(),
        reason,
    };
    let rest = if let Some(rest) = address.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = address.strip_prefix("unix:") {
        rest
    } else if address.starts_with('/') {
        address
    } else {
        return Err(refuse("only unix:// stores and socket paths are supported"));
    };
    let path = rest.split('?').next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(refuse("the socket path must be absolute"));
    }
    Ok(PathBuf::from(path))
}

/// A connection to a daemon, after the handshake.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    /// Bytes received and not yet decoded.
    buf: Vec<u8>,
    /// Offset in the daemon's stream of `buf[0]`.
    offset: u64,
    options: ClientOptions,
    negotiated: Negotiated,
    daemon: DaemonInfo,
}

/// How many bytes one socket read asks for.
const READ_CHUNK: usize = 64 * 1024;

/// Chunk size of framed uploads, as Nix's writer uses.
const FRAME_CHUNK: usize = 32 * 1024;

impl Client {
    /// Connects to a store address (see [`socket_path`]) and does the
    /// handshake.
    pub fn connect(address: &str, options: ClientOptions) -> Result<Client> {
        Self::connect_path(&socket_path(address)?, options)
    }

    /// Connects to a daemon socket and does the handshake.
    pub fn connect_path(path: &Path, options: ClientOptions) -> Result<Client> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Self::from_stream(stream, options)
    }

    /// Does the handshake on a socket that is already connected.
    pub fn from_stream(stream: UnixStream, options: ClientOptions) -> Result<Client> {
        let timeouts = stream
            .set_read_timeout(Some(options.timeout))
            .and_then(|()| stream.set_write_timeout(Some(options.timeout)));
        timeouts.map_err(|source| ClientError::Io {
            what: "setting the socket timeouts".to_owned(),
            source,
        })?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
            offset: 0,
            negotiated: Negotiated::new(options.client_version),
            daemon: DaemonInfo {
                version: options.client_version,
                nix_version: None,
                trust: None,
                features: Vec::new(),
                logs: Vec::new(),
            },
            options,
        };
        client.handshake()?;
        Ok(client)
    }

    fn handshake(&mut self) -> Result<()> {
        let what = "the handshake";
        let mut w = Writer::new();
        ClientHello {
            version: self.options.client_version,
        }
        .encode(&mut w);
        self.send_raw(w.as_bytes())?;
        let hello = self.decode(what, DaemonHello::decode)?;
        if !hello.version.at_least(10) || hello.version.major != 1 {
            return Err(ClientError::VersionTooOld {
                version: hello.version.to_string(),
            });
        }
        let version = ProtocolVersion::negotiate(self.options.client_version, hello.version);
        self.daemon.version = hello.version;
        self.negotiated = Negotiated::new(version);
        if version.at_least(38) {
            let mut w = Writer::new();
            FeatureList(self.options.features.clone()).encode(&mut w);
            self.send_raw(w.as_bytes())?;
            let FeatureList(features) = self.decode(what, FeatureList::decode)?;
            self.negotiated = Negotiated::from_announced(
                self.options.client_version,
                hello.version,
                &self.options.features,
                &features,
            );
            self.daemon.features = features;
        }
        let mut w = Writer::new();
        if version.at_least(14) {
            Affinity::default().encode(&mut w);
        }
        if version.at_least(11) {
            ReserveSpace(0).encode(&mut w);
        }
        self.send_raw(w.as_bytes())?;
        if version.at_least(33) {
            let DaemonNixVersion(nix) = self.decode(what, DaemonNixVersion::decode)?;
            self.daemon.nix_version = Some(nix.to_string_lossy().into_owned());
        }
        if version.at_least(35) {
            self.daemon.trust = Some(self.decode(what, Trust::decode)?);
        }
        self.daemon.logs = self.read_logs(what, "the handshake")?;
        Ok(())
    }

    /// What the connection negotiated.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The protocol version in use.
    pub fn version(&self) -> ProtocolVersion {
        self.negotiated.version
    }

    /// What the daemon said in the handshake.
    pub fn daemon(&self) -> &DaemonInfo {
        &self.daemon
    }

    /// Bytes received from the daemon so far (decoded or not).
    pub fn daemon_offset(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    /// Sends a request without an upload and reads its log stream and reply.
    pub fn request(&mut self, request: &Request) -> Result<Response> {
        let op = request.op();
        if op.upload(&self.negotiated) != Upload::None {
            return Err(ClientError::Unsupported {
                operation: "Client::request",
                version: self.negotiated.version.to_string(),
                reason: "this operation has an upload; use send_request, send_raw and finish",
            });
        }
        self.send_request(request)?;
        self.finish(op)
    }

    /// Sends a request's op number and fields, encoded at the connection's
    /// version. The caller then sends any upload with [`Client::send_raw`]
    /// and reads the answer with [`Client::finish`].
    pub fn send_request(&mut self, request: &Request) -> Result<()> {
        let mut w = Writer::new();
        request.encode(&mut w, &self.negotiated);
        self.send_raw(w.as_bytes())
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let timeout = self.options.timeout;
        self.stream.write_all(bytes).map_err(|source| {
            if is_timeout(&source) {
                ClientError::Timeout {
                    what: "sending to the daemon".to_owned(),
                    timeout,
                }
            } else {
                ClientError::Io {
                    what: "sending to the daemon".to_owned(),
                    source,
                }
            }
        })
    }

    /// Reads the log stream of `op` up to STDERR_LAST, then its reply.
    pub fn finish(&mut self, op: Op) -> Result<Response> {
        let logs = self.read_logs(&format!("the {op} log stream"), op.name())?;
        let negotiated = self.negotiated.clone();
        let reply = self.decode(&format!("the {op} reply"), |r| {
            Reply::decode(op, r, &negotiated)
        })?;
        Ok(Response { logs, reply })
    }

    /// Reads log messages until STDERR_LAST. STDERR_ERROR becomes
    /// [`ClientError::Daemon`]; STDERR_READ, which this client cannot answer
    /// here, becomes [`ClientError::UnexpectedRead`].
    pub fn read_logs(&mut self, what: &str, op: &str) -> Result<Vec<StderrMessage>> {
        let mut logs = Vec::new();
        loop {
            let negotiated = self.negotiated.clone();
            let message = self.decode(what, |r| StderrMessage::decode(r, &negotiated))?;
            match message {
                StderrMessage::Last => return Ok(logs),
                StderrMessage::Error(error) => {
                    return Err(ClientError::Daemon {
                        op: op.to_owned(),
                        error,
                    })
                }
                StderrMessage::Read { max_len } => {
                    return Err(ClientError::UnexpectedRead {
                        what: what.to_owned(),
                        max_len,
                    })
                }
                other => logs.push(other),
            }
        }
    }

    /// QueryPathInfo: the path's metadata, or `None` if it is not valid.
    pub fn query_path_info(&mut self, path: &str) -> Result<Option<UnkeyedValidPathInfo>> {
        let response = self.request(&Request::QueryPathInfo {
            path: StorePath::new(path),
        })?;
        match response.reply {
            Reply::QueryPathInfo { info } => Ok(info),
            other => Err(unexpected_reply(Op::QueryPathInfo, &other)),
        }
    }

    /// NarFromPath: the path's NAR serialisation, read into memory (at most
    /// [`ClientOptions::max_nar_len`] bytes).
    pub fn nar_from_path(&mut self, path: &str) -> Result<Vec<u8>> {
        let mut nar = Vec::new();
        self.nar_from_path_to(path, &mut nar)?;
        Ok(nar)
    }

    /// NarFromPath, writing the NAR to `sink` as it arrives; returns its
    /// length. The end of the NAR is found by parsing it.
    pub fn nar_from_path_to(&mut self, path: &str, sink: &mut dyn Write) -> Result<u64> {
        self.request(&Request::NarFromPath {
            path: StorePath::new(path),
        })?;
        let what = format!("the NAR of {path}");
        let start = self.offset;
        let mut parser = NarParser::new(NarOptions {
            strict_names: false,
            detect_stderr_error: true,
            ..NarOptions::default()
        });
        let mut events = Vec::new();
        loop {
            let progress = parser.feed(&self.buf, &mut events);
            events.clear();
            let consumed = progress.consumed;
            if consumed > 0 {
                sink.write_all(&self.buf[..consumed])
                    .map_err(|source| ClientError::Io {
                        what: format!("writing {what}"),
                        source,
                    })?;
                self.consume(consumed);
            }
            let len = parser.position();
            if len > self.options.max_nar_len {
                return Err(ClientError::TooLarge {
                    what,
                    len,
                    max: self.options.max_nar_len,
                });
            }
            match progress.status {
                NarStatus::Done => return Ok(len),
                NarStatus::NeedMore => self.fill(&what, 1)?,
                NarStatus::DumpFailed => {
                    // The daemon failed part-way and sent STDERR_ERROR.
                    let negotiated = self.negotiated.clone();
                    let message = self.decode(&what, |r| StderrMessage::decode(r, &negotiated))?;
                    return Err(match message {
                        StderrMessage::Error(error) => ClientError::DumpFailed {
                            path: path.to_owned(),
                            error,
                        },
                        _ => ClientError::Closed {
                            what,
                            offset: self.offset,
                        },
                    });
                }
                NarStatus::Failed(source) => {
                    return Err(ClientError::Nar {
                        what,
                        offset: start,
                        source,
                    })
                }
            }
        }
    }

    /// AddBuildLog (1.32 and later): stores `log` as the build log of the
    /// derivation `drv_base_name` (`<hash>-<name>.drv`, without the store
    /// directory).
    pub fn add_build_log(&mut self, drv_base_name: &str, log: &[u8]) -> Result<()> {
        if !self.negotiated.at_least(32) {
            return Err(ClientError::Unsupported {
                operation: "AddBuildLog",
                version: self.negotiated.version.to_string(),
                reason: "the operation exists from protocol 1.32 on",
            });
        }
        self.send_request(&Request::AddBuildLog {
            base_name: drv_base_name.to_owned(),
        })?;
        let mut w = Writer::new();
        encode_framed(&mut w, log, FRAME_CHUNK);
        self.send_raw(w.as_bytes())?;
        self.finish(Op::AddBuildLog).map(|_| ())
    }

    /// Decodes one value from the received bytes, reading more from the
    /// socket while the value is incomplete.
    fn decode<T>(
        &mut self,
        what: &str,
        mut decode: impl FnMut(&mut Reader<'_>) -> ReadResult<T>,
    ) -> Result<T> {
        loop {
            let mut r = Reader::new(&self.buf);
            match decode(&mut r) {
                Ok(value) => {
                    let used = r.position();
                    self.consume(used);
                    return Ok(value);
                }
                Err(ReadError::Incomplete { needed }) => self.fill(what, needed)?,
                Err(source @ ReadError::Invalid { offset, .. }) => {
                    return Err(ClientError::Decode {
                        what: what.to_owned(),
                        offset: self.offset + offset as u64,
                        source,
                    })
                }
                Err(source) => {
                    return Err(ClientError::Decode {
                        what: what.to_owned(),
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.offset += n as u64;
    }

    /// Reads at least `needed` more bytes (or one read's worth).
    fn fill(&mut self, what: &str, needed: usize) -> Result<()> {
        let target = self.buf.len() + needed.max(1);
        while self.buf.len() < target {
            let old = self.buf.len();
            let want = (target - old).max(READ_CHUNK);
            self.buf.resize(old + want, 0);
            let result = self.stream.read(&mut self.buf[old..]);
            match result {
                Ok(0) => {
                    self.buf.truncate(old);
                    return Err(ClientError::Closed {
                        what: what.to_owned(),
                        offset: self.daemon_offset(),
                    });
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(error) => {
                    self.buf.truncate(old);
                    return Err(if is_timeout(&error) {
                        ClientError::Timeout {
                            what: what.to_owned(),
                            timeout: self.options.timeout,
                        }
                    } else {
                        ClientError::Io {
                            what: format!("reading {what}"),
                            source: error,
                        }
                    });
                }
            }
        }
        Ok(())
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn unexpected_reply(op: Op, reply: &Reply) -> ClientError {
    ClientError::Decode {
        what: format!("the {op} reply"),
        offset: 0,
        source: ReadError::Invalid {
            offset: 0,
            kind: nixcap_wire::primitives::InvalidKind::Other(format!(
                "a {} reply where {op} was expected",
                reply.op()
            )),
        },
    }
}
