//! Both directions of the connection handshake at every protocol version
//! from 1.10 to 1.38 (protocol reference §5).
//!
//! The handshake is a sequence of pieces, and which pieces appear depends on
//! the negotiated version:
//!
//! ```text
//! C→S  magic 1, client version                        [`ClientHello`]
//! S→C  magic 2, daemon version                        [`DaemonHello`]
//! C→S  client feature list              (≥ 1.38)      [`FeatureList`]
//! S→C  daemon feature list              (≥ 1.38)      [`FeatureList`]
//! C→S  CPU affinity flag (+ CPU)        (≥ 1.14)      [`Affinity`]
//! C→S  reserveSpace                     (≥ 1.11)      [`ReserveSpace`]
//! S→C  daemon Nix version string        (≥ 1.33)      [`DaemonNixVersion`]
//! S→C  trust                            (≥ 1.35)      [`Trust`]
//! S→C  log messages, then STDERR_LAST                 [`StderrMessage`]
//! ```
//!
//! Each piece has its own `decode`/`encode`, so a fake daemon can write its
//! side piece by piece as the client's bytes arrive, and a passive decoder
//! can decode each direction as far as its knowledge of the other allows.
//! [`ClientHandshake`] and [`DaemonHandshake`] bundle the pieces of one
//! side for callers that have all the bytes at once.

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer, MAX_COLLECTION_LEN};
use crate::stderr::StderrMessage;
use crate::types::TrustedFlag;
use crate::version::{Negotiated, ProtocolVersion, WORKER_MAGIC_1, WORKER_MAGIC_2};

/// Reads a version word, refusing bits above the low 16 so that re-encoding
/// is exact (Nix's readers mask them off; no Nix writer sets them).
fn read_version(r: &mut Reader<'_>, field: &'static str) -> ReadResult<ProtocolVersion> {
    let start = r.position();
    let word = r.u64()?;
    if word > 0xffff {
        return Err(r.invalid_at(start, InvalidKind::OutOfRange { field, value: word }));
    }
    Ok(ProtocolVersion::from_wire(word))
}

fn read_magic(r: &mut Reader<'_>, expected: u64, field: &'static str) -> ReadResult<()> {
    let start = r.position();
    let magic = r.u64()?;
    if magic != expected {
        return Err(r.invalid_at(
            start,
            InvalidKind::OutOfRange {
                field,
                value: magic,
            },
        ));
    }
    Ok(())
}

/// The client's first 16 bytes: `WORKER_MAGIC_1` and its highest version.
///
/// Clients before 2.23 send the version only after reading the daemon's
/// hello, so on a live socket the two words may arrive apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientHello {
    /// The client's highest protocol version.
    pub version: ProtocolVersion,
}

impl ClientHello {
    /// Encoded length in bytes.
    pub const LEN: usize = 16;

    /// Reads the magic and the version.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        read_magic(r, WORKER_MAGIC_1, "client magic")?;
        Ok(ClientHello {
            version: read_version(r, "client version")?,
        })
    }

    /// Writes the magic and the version.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(WORKER_MAGIC_1).u64(self.version.to_wire());
    }
}

/// The daemon's first 16 bytes: `WORKER_MAGIC_2` and its highest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonHello {
    /// The daemon's highest protocol version.
    pub version: ProtocolVersion,
}

impl DaemonHello {
    /// Encoded length in bytes.
    pub const LEN: usize = 16;

    /// Reads the magic and the version.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        read_magic(r, WORKER_MAGIC_2, "daemon magic")?;
        Ok(DaemonHello {
            version: read_version(r, "daemon version")?,
        })
    }

    /// Writes the magic and the version.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(WORKER_MAGIC_2).u64(self.version.to_wire());
    }
}

/// A feature list (≥ 1.38): a count and that many strings, in the order sent.
/// A real daemon sends its whole list, not the intersection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FeatureList(pub Vec<String>);

impl FeatureList {
    /// Reads a feature list.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let count = r.len(MAX_COLLECTION_LEN)?;
        let mut features = Vec::with_capacity((count as usize).min(r.remaining().len() / 8));
        for _ in 0..count {
            features.push(r.utf8("feature name")?);
        }
        Ok(FeatureList(features))
    }

    /// Writes a feature list.
    pub fn encode(&self, w: &mut Writer) {
        w.string_list(&self.0);
    }
}

/// The CPU-affinity field (≥ 1.14): a flag, and the CPU number when the
/// flag is set. Current clients always send 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    /// The CPU the client asked the daemon to pin to, if any.
    pub cpu: Option<u64>,
}

impl Affinity {
    /// Reads the flag and, if it is set, the CPU number.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let cpu = if r.bool()? { Some(r.u64()?) } else { None };
        Ok(Affinity { cpu })
    }

    /// Writes the flag and, if set, the CPU number.
    pub fn encode(&self, w: &mut Writer) {
        match self.cpu {
            Some(cpu) => w.u64(1).u64(cpu),
            None => w.u64(0),
        };
    }
}

/// The obsolete `reserveSpace` word (≥ 1.11); clients send 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReserveSpace(pub u64);

impl ReserveSpace {
    /// Reads the word.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        Ok(ReserveSpace(r.u64()?))
    }

    /// Writes the word.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.0);
    }
}

/// The daemon's Nix version string (≥ 1.33), such as `"2.26.3"`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DaemonNixVersion(pub ByteString);

impl DaemonNixVersion {
    /// Reads the string.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        Ok(DaemonNixVersion(ByteString::from(r.string()?)))
    }

    /// Writes the string.
    pub fn encode(&self, w: &mut Writer) {
        w.string(&self.0);
    }
}

/// Whether the daemon trusts the client (≥ 1.35; §2.5 `optional<TrustedFlag>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trust {
    /// 0: the daemon does not know (a forwarding store may say this).
    Unknown,
    /// 1: trusted.
    Trusted,
    /// 2: not trusted.
    NotTrusted,
}

impl Trust {
    /// The same value as the `Option<TrustedFlag>` of [`crate::types`].
    pub fn to_flag(self) -> Option<TrustedFlag> {
        match self {
            Trust::Unknown => None,
            Trust::Trusted => Some(TrustedFlag::Trusted),
            Trust::NotTrusted => Some(TrustedFlag::NotTrusted),
        }
    }

    /// The trust of an `Option<TrustedFlag>`.
    pub fn from_flag(flag: Option<TrustedFlag>) -> Trust {
        match flag {
            None => Trust::Unknown,
            Some(TrustedFlag::Trusted) => Trust::Trusted,
            Some(TrustedFlag::NotTrusted) => Trust::NotTrusted,
        }
    }

    /// The wire value.
    pub fn to_wire(self) -> u64 {
        match self {
            Trust::Unknown => 0,
            Trust::Trusted => 1,
            Trust::NotTrusted => 2,
        }
    }

    /// Reads the trust word; values other than 0, 1 and 2 are invalid.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(Trust::Unknown),
            1 => Ok(Trust::Trusted),
            2 => Ok(Trust::NotTrusted),
            value => Err(r.invalid_at(
                start,
                InvalidKind::OutOfRange {
                    field: "trust",
                    value,
                },
            )),
        }
    }

    /// Writes the trust word.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.to_wire());
    }
}

/// One piece of the handshake, as the session decoder reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "piece", rename_all = "camelCase")]
pub enum HandshakePiece {
    /// C→S magic and version.
    ClientHello(ClientHello),
    /// C→S feature list (≥ 1.38).
    #[serde(rename_all = "camelCase")]
    ClientFeatures {
        /// The features the client offers.
        features: FeatureList,
    },
    /// C→S CPU affinity (≥ 1.14).
    ClientAffinity(Affinity),
    /// C→S reserveSpace (≥ 1.11).
    #[serde(rename_all = "camelCase")]
    ClientReserveSpace {
        /// The obsolete word, normally 0.
        value: u64,
    },
    /// S→C magic and version.
    DaemonHello(DaemonHello),
    /// S→C feature list (≥ 1.38).
    #[serde(rename_all = "camelCase")]
    DaemonFeatures {
        /// The features the daemon offers.
        features: FeatureList,
    },
    /// S→C Nix version string (≥ 1.33).
    #[serde(rename_all = "camelCase")]
    DaemonNixVersion {
        /// The version, such as `"2.26.3"`.
        version: ByteString,
    },
    /// S→C trust (≥ 1.35).
    #[serde(rename_all = "camelCase")]
    DaemonTrust {
        /// The client's trust status.
        trust: Trust,
    },
    /// S→C log message of the closing drain; the drain ends with
    /// `STDERR_LAST` (or `STDERR_ERROR` when the daemon cannot serve).
    #[serde(rename_all = "camelCase")]
    DaemonStderr {
        /// The message.
        message: StderrMessage,
    },
}

impl HandshakePiece {
    /// Writes the piece's bytes. Only the drain messages depend on the
    /// version, and only through their own layout.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            HandshakePiece::ClientHello(hello) => hello.encode(w),
            HandshakePiece::ClientFeatures { features }
            | HandshakePiece::DaemonFeatures { features } => features.encode(w),
            HandshakePiece::ClientAffinity(affinity) => affinity.encode(w),
            HandshakePiece::ClientReserveSpace { value } => ReserveSpace(*value).encode(w),
            HandshakePiece::DaemonHello(hello) => hello.encode(w),
            HandshakePiece::DaemonNixVersion { version } => {
                w.string(version);
            }
            HandshakePiece::DaemonTrust { trust } => trust.encode(w),
            HandshakePiece::DaemonStderr { message } => message.encode(w),
        }
    }
}

/// Everything the client sends in the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientHandshake {
    /// Magic and version.
    pub hello: ClientHello,
    /// Feature list; present exactly when the negotiated version is ≥ 1.38.
    pub features: Option<FeatureList>,
    /// CPU affinity; present exactly when the negotiated version is ≥ 1.14.
    pub affinity: Option<Affinity>,
    /// reserveSpace; present exactly when the negotiated version is ≥ 1.11.
    pub reserve_space: Option<ReserveSpace>,
}

impl ClientHandshake {
    /// The handshake a current client sends at `negotiated`: no affinity,
    /// reserveSpace 0, and `features` at ≥ 1.38.
    pub fn typical(
        client_version: ProtocolVersion,
        negotiated: ProtocolVersion,
        features: Vec<String>,
    ) -> Self {
        ClientHandshake {
            hello: ClientHello {
                version: client_version,
            },
            features: negotiated.at_least(38).then_some(FeatureList(features)),
            affinity: negotiated.at_least(14).then_some(Affinity::default()),
            reserve_space: negotiated.at_least(11).then_some(ReserveSpace(0)),
        }
    }

    /// Reads the client's side, given the version the daemon announced.
    pub fn decode(r: &mut Reader<'_>, daemon_version: ProtocolVersion) -> ReadResult<Self> {
        let hello = ClientHello::decode(r)?;
        let version = ProtocolVersion::negotiate(hello.version, daemon_version);
        let features = if version.at_least(38) {
            Some(FeatureList::decode(r)?)
        } else {
            None
        };
        let affinity = if version.at_least(14) {
            Some(Affinity::decode(r)?)
        } else {
            None
        };
        let reserve_space = if version.at_least(11) {
            Some(ReserveSpace::decode(r)?)
        } else {
            None
        };
        Ok(ClientHandshake {
            hello,
            features,
            affinity,
            reserve_space,
        })
    }

    /// Writes the client's side. Optional pieces are written when present,
    /// so callers choose them to match the negotiated version.
    pub fn encode(&self, w: &mut Writer) {
        self.hello.encode(w);
        if let Some(features) = &self.features {
            features.encode(w);
        }
        if let Some(affinity) = &self.affinity {
            affinity.encode(w);
        }
        if let Some(reserve) = &self.reserve_space {
            reserve.encode(w);
        }
    }
}

/// Everything the daemon sends in the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonHandshake {
    /// Magic and version.
    pub hello: DaemonHello,
    /// Feature list; present exactly when the negotiated version is ≥ 1.38.
    pub features: Option<FeatureList>,
    /// Nix version string; present exactly when the negotiated version is ≥ 1.33.
    pub nix_version: Option<DaemonNixVersion>,
    /// Trust; present exactly when the negotiated version is ≥ 1.35.
    pub trust: Option<Trust>,
    /// The closing drain: log messages, then `STDERR_LAST` or `STDERR_ERROR`.
    pub drain: Vec<StderrMessage>,
}

impl DaemonHandshake {
    /// Reads the daemon's side, given the version the client announced.
    pub fn decode(r: &mut Reader<'_>, client_version: ProtocolVersion) -> ReadResult<Self> {
        let hello = DaemonHello::decode(r)?;
        let negotiated = Negotiated::new(ProtocolVersion::negotiate(client_version, hello.version));
        let features = if negotiated.at_least(38) {
            Some(FeatureList::decode(r)?)
        } else {
            None
        };
        let nix_version = if negotiated.at_least(33) {
            Some(DaemonNixVersion::decode(r)?)
        } else {
            None
        };
        let trust = if negotiated.at_least(35) {
            Some(Trust::decode(r)?)
        } else {
            None
        };
        let mut drain = Vec::new();
        loop {
            let message = StderrMessage::decode(r, &negotiated)?;
            let last = message.ends_work();
            drain.push(message);
            if last {
                break;
            }
        }
        Ok(DaemonHandshake {
            hello,
            features,
            nix_version,
            trust,
            drain,
        })
    }

    /// Writes the daemon's side. Optional pieces are written when present.
    pub fn encode(&self, w: &mut Writer) {
        self.hello.encode(w);
        if let Some(features) = &self.features {
            features.encode(w);
        }
        if let Some(version) = &self.nix_version {
            version.encode(w);
        }
        if let Some(trust) = &self.trust {
            trust.encode(w);
        }
        for message in &self.drain {
            message.encode(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_2_26_decodes_and_re_encodes() {
        // Protocol reference §5.2: 2.26.3 ↔ 2.26.3, v = 1.38, no features.
        let client = hex::decode(concat!(
            "6378696e00000000",
            "2601000000000000", // magic 1, 1.38
            "0000000000000000", // no features
            "0000000000000000",
            "0000000000000000", // affinity 0, reserveSpace 0
        ))
        .unwrap();
        let daemon = hex::decode(concat!(
            "6f69786400000000",
            "2601000000000000", // magic 2, 1.38
            "0000000000000000", // no features
            "0600000000000000",
            "322e32362e330000", // "2.26.3"
            "0100000000000000", // trusted
            "73746c6100000000", // STDERR_LAST
        ))
        .unwrap();
        assert_eq!(&client[..8], b"cxin\0\0\0\0");
        assert_eq!(&daemon[..8], b"oixd\0\0\0\0");

        let mut r = Reader::new(&client);
        let c = ClientHandshake::decode(&mut r, ProtocolVersion::new(1, 38)).unwrap();
        assert!(r.is_empty());
        assert_eq!(
            c,
            ClientHandshake::typical(ProtocolVersion::LATEST, ProtocolVersion::LATEST, vec![])
        );
        let mut r = Reader::new(&daemon);
        let d = DaemonHandshake::decode(&mut r, ProtocolVersion::new(1, 38)).unwrap();
        assert!(r.is_empty());
        assert_eq!(d.nix_version, Some(DaemonNixVersion("2.26.3".into())));
        assert_eq!(d.trust, Some(Trust::Trusted));
        assert_eq!(d.drain, vec![StderrMessage::Last]);

        let mut w = Writer::new();
        c.encode(&mut w);
        assert_eq!(w.as_bytes(), &client[..]);
        let mut w = Writer::new();
        d.encode(&mut w);
        assert_eq!(w.as_bytes(), &daemon[..]);
    }

    #[test]
    fn every_minor_from_1_10_to_1_38_has_the_documented_pieces() {
        for minor in 10..=38u8 {
            let version = ProtocolVersion::new(1, minor);
            let client = ClientHandshake::typical(version, version, vec!["x".into()]);
            let mut w = Writer::new();
            client.encode(&mut w);
            let expected_len = 16
                + if minor >= 38 { 8 + 16 } else { 0 }
                + if minor >= 14 { 8 } else { 0 }
                + if minor >= 11 { 8 } else { 0 };
            assert_eq!(w.as_bytes().len(), expected_len, "client at 1.{minor}");
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            assert_eq!(ClientHandshake::decode(&mut r, version).unwrap(), client);
            assert!(r.is_empty());

            let daemon = DaemonHandshake {
                hello: DaemonHello { version },
                features: (minor >= 38).then(|| FeatureList(vec!["y".into()])),
                nix_version: (minor >= 33).then(|| DaemonNixVersion("2.99".into())),
                trust: (minor >= 35).then_some(Trust::NotTrusted),
                drain: vec![
                    StderrMessage::Next {
                        text: "hi\n".into(),
                    },
                    StderrMessage::Last,
                ],
            };
            let mut w = Writer::new();
            daemon.encode(&mut w);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            assert_eq!(DaemonHandshake::decode(&mut r, version).unwrap(), daemon);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn trust_matches_the_optional_trusted_flag() {
        for trust in [Trust::Unknown, Trust::Trusted, Trust::NotTrusted] {
            assert_eq!(Trust::from_flag(trust.to_flag()), trust);
            let mut w = Writer::new();
            trust.encode(&mut w);
            let mut flag = Writer::new();
            TrustedFlag::encode_optional(trust.to_flag(), &mut flag);
            assert_eq!(w.as_bytes(), flag.as_bytes());
        }
    }

    #[test]
    fn affinity_with_a_cpu_takes_two_words() {
        let mut w = Writer::new();
        Affinity { cpu: Some(3) }.encode(&mut w);
        assert_eq!(w.as_bytes().len(), 16);
        let bytes = w.into_bytes();
        assert_eq!(
            Affinity::decode(&mut Reader::new(&bytes)).unwrap(),
            Affinity { cpu: Some(3) }
        );
    }

    #[test]
    fn wrong_magic_and_high_version_bits_are_invalid() {
        let mut w = Writer::new();
        w.u64(WORKER_MAGIC_2).u64(0x126);
        let bytes = w.into_bytes();
        assert!(ClientHello::decode(&mut Reader::new(&bytes)).is_err());
        let mut w = Writer::new();
        w.u64(WORKER_MAGIC_1).u64(0x1_0000_0126);
        let bytes = w.into_bytes();
        assert!(ClientHello::decode(&mut Reader::new(&bytes)).is_err());
    }

    #[test]
    fn golden_handshake_to_client_is_a_1_10_daemon_hello() {
        let bytes = include_bytes!(
            "../../../testdata/nix-upstream/worker-protocol/handshake-to-client.bin"
        );
        let mut r = Reader::new(bytes);
        let hello = DaemonHello::decode(&mut r).unwrap();
        assert_eq!(hello.version, ProtocolVersion::new(1, 10));
        assert!(r.is_empty());
    }

    #[test]
    fn golden_client_handshake_info_fixtures_decode_piece_by_piece() {
        let bytes = include_bytes!(
            "../../../testdata/nix-upstream/worker-protocol/client-handshake-info_1_35.bin"
        );
        let mut r = Reader::new(bytes);
        assert_eq!(
            DaemonNixVersion::decode(&mut r).unwrap(),
            DaemonNixVersion("foo".into())
        );
        assert_eq!(Trust::decode(&mut r).unwrap(), Trust::NotTrusted);
        assert_eq!(
            DaemonNixVersion::decode(&mut r).unwrap(),
            DaemonNixVersion("bar".into())
        );
        assert_eq!(Trust::decode(&mut r).unwrap(), Trust::Trusted);
        assert!(r.is_empty());
    }
}
