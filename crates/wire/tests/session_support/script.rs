//! A builder for synthetic connections: both directions written piece by
//! piece with the crate's own encoders, in the order a real client and
//! daemon would send them.

use nixcap_wire::handshake::{
    ClientHandshake, DaemonHandshake, DaemonHello, DaemonNixVersion, FeatureList, Trust,
};
use nixcap_wire::primitives::Writer;
use nixcap_wire::session::Direction;
use nixcap_wire::stderr::{ErrorInfo, StderrMessage};
use nixcap_wire::types::ValidPathInfo;
use nixcap_wire::ProtocolVersion;

use super::{testdata, Connection};

/// Op numbers used by the scenarios.
pub mod op {
    pub const IS_VALID_PATH: u64 = 1;
    pub const ADD_TO_STORE: u64 = 7;
    pub const SET_OPTIONS: u64 = 19;
    pub const QUERY_FAILED_PATHS: u64 = 24;
    pub const QUERY_PATH_INFO: u64 = 26;
    pub const IMPORT_PATHS: u64 = 27;
    pub const NAR_FROM_PATH: u64 = 38;
    pub const ADD_TO_STORE_NAR: u64 = 39;
    pub const QUERY_REALISATION: u64 = 43;
    pub const ADD_MULTIPLE_TO_STORE: u64 = 44;
}

pub const PATH: &str = "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo";

#[derive(Debug, Clone)]
pub struct Script {
    pub chunks: Vec<(Direction, Vec<u8>)>,
    pub version: ProtocolVersion,
}

impl Script {
    /// A connection whose client announced `1.client_minor` and whose daemon
    /// announced `1.daemon_minor`, with the handshake a current client and
    /// daemon would send (trusted, no features, a drain of one log line).
    pub fn handshake(client_minor: u8, daemon_minor: u8) -> Script {
        let client_version = ProtocolVersion::new(1, client_minor);
        let daemon_version = ProtocolVersion::new(1, daemon_minor);
        let version = ProtocolVersion::negotiate(client_version, daemon_version);
        let mut script = Script {
            chunks: Vec::new(),
            version,
        };
        let client =
            ClientHandshake::typical(client_version, version, vec!["client-feature".into()]);
        // Older clients send the version only after the daemon's hello.
        let mut w = Writer::new();
        client.hello.encode(&mut w);
        let hello = w.into_bytes();
        script.client(|w| {
            w.raw(&hello[..8]);
        });
        let daemon = DaemonHandshake {
            hello: DaemonHello {
                version: daemon_version,
            },
            features: version
                .at_least(38)
                .then(|| FeatureList(vec!["daemon-feature".into()])),
            nix_version: version
                .at_least(33)
                .then(|| DaemonNixVersion("2.99.0".into())),
            trust: version.at_least(35).then_some(Trust::Trusted),
            drain: vec![
                StderrMessage::Next {
                    text: "queued warning\n".into(),
                },
                StderrMessage::Last,
            ],
        };
        script.daemon(|w| daemon.hello.encode(w));
        script.client(|w| {
            w.raw(&hello[8..]);
        });
        if let Some(features) = &client.features {
            script.client(|w| features.encode(w));
        }
        if let Some(features) = &daemon.features {
            script.daemon(|w| features.encode(w));
        }
        script.client(|w| {
            if let Some(affinity) = &client.affinity {
                affinity.encode(w);
            }
            if let Some(reserve) = &client.reserve_space {
                reserve.encode(w);
            }
        });
        script.daemon(|w| {
            if let Some(version) = &daemon.nix_version {
                version.encode(w);
            }
            if let Some(trust) = &daemon.trust {
                trust.encode(w);
            }
            for message in &daemon.drain {
                message.encode(w);
            }
        });
        script
    }

    pub fn client(&mut self, write: impl FnOnce(&mut Writer)) -> &mut Self {
        self.push(Direction::ClientToDaemon, write)
    }

    pub fn daemon(&mut self, write: impl FnOnce(&mut Writer)) -> &mut Self {
        self.push(Direction::DaemonToClient, write)
    }

    fn push(&mut self, direction: Direction, write: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut w = Writer::new();
        write(&mut w);
        let bytes = w.into_bytes();
        if !bytes.is_empty() {
            self.chunks.push((direction, bytes));
        }
        self
    }

    pub fn stderr(&mut self, message: StderrMessage) -> &mut Self {
        self.daemon(|w| message.encode(w))
    }

    pub fn last(&mut self) -> &mut Self {
        self.stderr(StderrMessage::Last)
    }

    /// A `STDERR_ERROR` in the layout of the negotiated version.
    pub fn error(&mut self, message: &str) -> &mut Self {
        let info = if self.version.at_least(26) {
            ErrorInfo::Structured {
                level: 0,
                name: "Error".into(),
                message: message.into(),
                traces: vec![],
            }
        } else {
            ErrorInfo::Legacy {
                message: message.into(),
                exit_status: 1,
            }
        };
        self.stderr(StderrMessage::Error(info))
    }

    /// IsValidPath and its reply.
    pub fn is_valid_path(&mut self) -> &mut Self {
        self.client(|w| {
            w.u64(op::IS_VALID_PATH).string(PATH);
        })
        .last()
        .daemon(|w| {
            w.u64(1);
        })
    }

    pub fn connection(&self) -> Connection {
        Connection {
            chunks: self.chunks.clone(),
        }
    }
}

/// A NAR fixture from `testdata/nix-upstream/nars`.
pub fn nar(name: &str) -> Vec<u8> {
    std::fs::read(testdata(&["nix-upstream", "nars", name])).unwrap()
}

/// The three path infos of `valid-path-info-1.16.bin`, each re-encoded on
/// its own in the 1.16 layout.
pub fn path_infos() -> Vec<Vec<u8>> {
    let bytes = std::fs::read(testdata(&[
        "nix-upstream",
        "worker-protocol",
        "valid-path-info-1.16.bin",
    ]))
    .unwrap();
    let mut r = nixcap_wire::primitives::Reader::new(&bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let start = r.position();
        ValidPathInfo::decode_1_16(&mut r).unwrap();
        out.push(bytes[start..r.position()].to_vec());
    }
    assert_eq!(out.len(), 3);
    out
}

/// Writes `payload` as a framed stream in chunks of `chunk_len`.
pub fn framed(w: &mut Writer, payload: &[u8], chunk_len: usize) {
    nixcap_wire::framed::encode_framed(w, payload, chunk_len);
}
