//! The serve protocol's commands: the hellos, every command's request and
//! reply (protocol reference §15, and `nix-store --serve` of Nix 2.8–2.34).
//!
//! ```text
//! C→S  u64 0x390c9deb, u64 version        S→C  u64 0x5452eecb, u64 version
//! then, per command:  C→S  u64 command, fields [, upload]   S→C  reply
//! ```
//!
//! There is no log channel and no framing: a failing command makes the
//! server print the error on its stderr and end the session. Uploads and
//! downloads travel raw: AddToStoreNar's NAR (exactly `narSize` bytes) and
//! ImportPaths' export stream go to the server after the request;
//! DumpStorePath's NAR and ExportPaths' export stream are the whole reply.

use serde::{Deserialize, Serialize};

use super::{at_least, decode_build_result, encode_build_result, BuildOptions, ServePathInfo};
use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer};
use crate::types::{BasicDerivation, BuildResult, ContentAddress, StorePath};
use crate::version::ProtocolVersion;

/// A hello of either side: the magic and the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeHello {
    /// [`super::SERVE_MAGIC_1`] from the client, [`super::SERVE_MAGIC_2`] from the server.
    pub magic: u64,
    /// The version announced (`2.x`).
    pub version: ProtocolVersion,
}

impl ServeHello {
    /// Reads a hello whose magic must be `magic`.
    pub fn decode(r: &mut Reader<'_>, magic: u64) -> ReadResult<Self> {
        let found = r.u64()?;
        if found != magic {
            return Err(r.invalid_at(
                r.position() - 8,
                InvalidKind::Other(format!(
                    "serve-protocol magic {found:#x}, expected {magic:#x}"
                )),
            ));
        }
        let raw = r.u64()?;
        let version = ProtocolVersion::from_wire(raw);
        if version.to_wire() != raw {
            return Err(r.invalid_at(
                r.position() - 8,
                InvalidKind::Other(format!("serve-protocol version {raw:#x} is out of range")),
            ));
        }
        Ok(ServeHello { magic, version })
    }

    /// Writes the hello.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.magic).u64(self.version.to_wire());
    }
}

/// A serve-protocol command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServeCommand {
    /// 1: which of these paths are valid.
    QueryValidPaths,
    /// 2: path infos of the valid ones of these paths.
    QueryPathInfos,
    /// 3: a path's NAR.
    DumpStorePath,
    /// 4: import an export stream.
    ImportPaths,
    /// 5: export paths as an export stream.
    ExportPaths,
    /// 6: build derived paths.
    BuildPaths,
    /// 7: the closure of paths.
    QueryClosure,
    /// 8: build a basic derivation.
    BuildDerivation,
    /// 9: add one path with its NAR.
    AddToStoreNar,
}

impl ServeCommand {
    /// Every command, by number.
    pub const ALL: [ServeCommand; 9] = [
        ServeCommand::QueryValidPaths,
        ServeCommand::QueryPathInfos,
        ServeCommand::DumpStorePath,
        ServeCommand::ImportPaths,
        ServeCommand::ExportPaths,
        ServeCommand::BuildPaths,
        ServeCommand::QueryClosure,
        ServeCommand::BuildDerivation,
        ServeCommand::AddToStoreNar,
    ];

    /// The command word.
    pub fn word(self) -> u64 {
        match self {
            ServeCommand::QueryValidPaths => 1,
            ServeCommand::QueryPathInfos => 2,
            ServeCommand::DumpStorePath => 3,
            ServeCommand::ImportPaths => 4,
            ServeCommand::ExportPaths => 5,
            ServeCommand::BuildPaths => 6,
            ServeCommand::QueryClosure => 7,
            ServeCommand::BuildDerivation => 8,
            ServeCommand::AddToStoreNar => 9,
        }
    }

    /// The command a word names.
    pub fn from_word(word: u64) -> Option<ServeCommand> {
        ServeCommand::ALL.into_iter().find(|c| c.word() == word)
    }

    /// The command's name, as Nix spells it without the `cmd` prefix.
    pub fn name(self) -> &'static str {
        match self {
            ServeCommand::QueryValidPaths => "QueryValidPaths",
            ServeCommand::QueryPathInfos => "QueryPathInfos",
            ServeCommand::DumpStorePath => "DumpStorePath",
            ServeCommand::ImportPaths => "ImportPaths",
            ServeCommand::ExportPaths => "ExportPaths",
            ServeCommand::BuildPaths => "BuildPaths",
            ServeCommand::QueryClosure => "QueryClosure",
            ServeCommand::BuildDerivation => "BuildDerivation",
            ServeCommand::AddToStoreNar => "AddToStoreNar",
        }
    }
}

/// The metadata AddToStoreNar sends before the NAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeAddToStoreNar {
    /// The path added.
    pub path: StorePath,
    /// Its deriver, if any.
    pub deriver: Option<StorePath>,
    /// The NAR's SHA-256 in base16, without a prefix.
    pub nar_hash: String,
    /// References.
    pub references: Vec<StorePath>,
    /// Registration time, seconds since the epoch.
    pub registration_time: u64,
    /// The NAR's length: exactly this many NAR bytes follow.
    pub nar_size: u64,
    /// Whether the path was built locally.
    pub ultimate: bool,
    /// Signatures.
    pub sigs: Vec<String>,
    /// Content address.
    pub ca: Option<ContentAddress>,
}

/// A command and its fields, as the client sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all_fields = "camelCase")]
pub enum ServeRequest {
    /// `u64 1, bool lock, bool substitute, {path}`.
    QueryValidPaths {
        /// Whether to add temporary roots.
        lock: bool,
        /// Whether to substitute missing paths.
        substitute: bool,
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// `u64 2, {path}`.
    QueryPathInfos {
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// `u64 3, path`; the reply is the NAR.
    DumpStorePath {
        /// The path.
        path: StorePath,
    },
    /// `u64 4`; an export stream follows.
    ImportPaths,
    /// `u64 5, u64 sign (obsolete), {path}`; the reply is an export stream.
    ExportPaths {
        /// The obsolete signing flag, as sent.
        sign: u64,
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// `u64 6, {str} paths (drv!outputs), options`.
    BuildPaths {
        /// The paths with outputs, as strings.
        paths: Vec<ByteString>,
        /// Build settings.
        options: BuildOptions,
    },
    /// `u64 7, bool includeOutputs, {path}`.
    QueryClosure {
        /// Whether derivation outputs are included.
        include_outputs: bool,
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// `u64 8, drvPath, BasicDerivation, options`.
    BuildDerivation {
        /// The derivation's path.
        drv_path: StorePath,
        /// The derivation.
        drv: Box<BasicDerivation>,
        /// Build settings.
        options: BuildOptions,
    },
    /// `u64 9, metadata`; `narSize` NAR bytes follow.
    AddToStoreNar(Box<ServeAddToStoreNar>),
    /// A command word this decoder does not know; nothing else is read.
    Unknown {
        /// The word.
        word: u64,
    },
}

impl ServeRequest {
    /// The command, if the word names one.
    pub fn command(&self) -> Option<ServeCommand> {
        Some(match self {
            ServeRequest::QueryValidPaths { .. } => ServeCommand::QueryValidPaths,
            ServeRequest::QueryPathInfos { .. } => ServeCommand::QueryPathInfos,
            ServeRequest::DumpStorePath { .. } => ServeCommand::DumpStorePath,
            ServeRequest::ImportPaths => ServeCommand::ImportPaths,
            ServeRequest::ExportPaths { .. } => ServeCommand::ExportPaths,
            ServeRequest::BuildPaths { .. } => ServeCommand::BuildPaths,
            ServeRequest::QueryClosure { .. } => ServeCommand::QueryClosure,
            ServeRequest::BuildDerivation { .. } => ServeCommand::BuildDerivation,
            ServeRequest::AddToStoreNar(_) => ServeCommand::AddToStoreNar,
            ServeRequest::Unknown { .. } => return None,
        })
    }

    /// The command word.
    pub fn word(&self) -> u64 {
        match self {
            ServeRequest::Unknown { word } => *word,
            other => other.command().map_or(0, ServeCommand::word),
        }
    }

    /// Reads a command and its fields at a serve-protocol version. An
    /// unknown command word is an error: what follows it cannot be known.
    pub fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> ReadResult<Self> {
        let word = r.u64()?;
        let Some(command) = ServeCommand::from_word(word) else {
            return Err(r.invalid_at(
                r.position() - 8,
                InvalidKind::Other(format!("unknown serve command {word}")),
            ));
        };
        Ok(match command {
            ServeCommand::QueryValidPaths => ServeRequest::QueryValidPaths {
                lock: r.bool()?,
                substitute: r.bool()?,
                paths: StorePath::decode_list(r)?,
            },
            ServeCommand::QueryPathInfos => ServeRequest::QueryPathInfos {
                paths: StorePath::decode_list(r)?,
            },
            ServeCommand::DumpStorePath => ServeRequest::DumpStorePath {
                path: StorePath::decode(r)?,
            },
            ServeCommand::ImportPaths => ServeRequest::ImportPaths,
            ServeCommand::ExportPaths => ServeRequest::ExportPaths {
                sign: r.u64()?,
                paths: StorePath::decode_list(r)?,
            },
            ServeCommand::BuildPaths => ServeRequest::BuildPaths {
                paths: r.list(ByteString::decode)?,
                options: BuildOptions::decode(r, version)?,
            },
            ServeCommand::QueryClosure => ServeRequest::QueryClosure {
                include_outputs: r.bool()?,
                paths: StorePath::decode_list(r)?,
            },
            ServeCommand::BuildDerivation => ServeRequest::BuildDerivation {
                drv_path: StorePath::decode(r)?,
                drv: Box::new(BasicDerivation::decode(r)?),
                options: BuildOptions::decode(r, version)?,
            },
            ServeCommand::AddToStoreNar => {
                ServeRequest::AddToStoreNar(Box::new(ServeAddToStoreNar {
                    path: StorePath::decode(r)?,
                    deriver: StorePath::decode_optional(r)?,
                    nar_hash: r.utf8("narHash")?,
                    references: StorePath::decode_list(r)?,
                    registration_time: r.u64()?,
                    nar_size: r.u64()?,
                    ultimate: r.bool()?,
                    sigs: r.string_list("signature")?,
                    ca: ContentAddress::decode_optional(r)?,
                }))
            }
        })
    }

    /// Writes the command and its fields at a serve-protocol version.
    pub fn encode(&self, w: &mut Writer, version: ProtocolVersion) {
        w.u64(self.word());
        match self {
            ServeRequest::QueryValidPaths {
                lock,
                substitute,
                paths,
            } => {
                w.bool(*lock).bool(*substitute);
                StorePath::encode_list(paths, w);
            }
            ServeRequest::QueryPathInfos { paths } => StorePath::encode_list(paths, w),
            ServeRequest::DumpStorePath { path } => path.encode(w),
            ServeRequest::ImportPaths | ServeRequest::Unknown { .. } => {}
            ServeRequest::ExportPaths { sign, paths } => {
                w.u64(*sign);
                StorePath::encode_list(paths, w);
            }
            ServeRequest::BuildPaths { paths, options } => {
                w.list(paths, |w, p| p.encode(w));
                options.encode(w, version);
            }
            ServeRequest::QueryClosure {
                include_outputs,
                paths,
            } => {
                w.bool(*include_outputs);
                StorePath::encode_list(paths, w);
            }
            ServeRequest::BuildDerivation {
                drv_path,
                drv,
                options,
            } => {
                drv_path.encode(w);
                drv.encode(w);
                options.encode(w, version);
            }
            ServeRequest::AddToStoreNar(add) => {
                add.path.encode(w);
                StorePath::encode_optional(add.deriver.as_ref(), w);
                w.string(&add.nar_hash);
                StorePath::encode_list(&add.references, w);
                w.u64(add.registration_time)
                    .u64(add.nar_size)
                    .bool(add.ultimate)
                    .string_list(&add.sigs);
                ContentAddress::encode_optional(add.ca.as_ref(), w);
            }
        }
    }
}

/// The server's answer to a command (the whole reply, except for
/// DumpStorePath and ExportPaths, whose replies are a NAR and an export
/// stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all_fields = "camelCase")]
pub enum ServeReply {
    /// QueryValidPaths and QueryClosure: `{path}`.
    Paths {
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// QueryPathInfos: `(path, info)*` closed by an empty string.
    PathInfos {
        /// Each valid path with its info, in the order sent.
        infos: Vec<(StorePath, ServePathInfo)>,
    },
    /// ImportPaths and AddToStoreNar: `u64 1` on success.
    Done {
        /// The word sent (1).
        status: u64,
    },
    /// BuildPaths: `u64 0`, or a failure status and its message.
    BuildStatus {
        /// 0 on success, else the failing build's status.
        status: u64,
        /// The error message, sent when the status is not 0.
        error_msg: Option<ByteString>,
    },
    /// BuildDerivation: a BuildResult in the serve layout.
    BuildResult {
        /// The result.
        result: Box<BuildResult>,
    },
}

impl ServeReply {
    /// Whether `command`'s reply is a [`ServeReply`] (not a NAR or an
    /// export stream).
    pub fn is_structured(command: ServeCommand) -> bool {
        !matches!(
            command,
            ServeCommand::DumpStorePath | ServeCommand::ExportPaths
        )
    }

    /// Reads the reply to `command` at a serve-protocol version. DumpStorePath
    /// and ExportPaths have no structured reply and read nothing.
    pub fn decode(
        r: &mut Reader<'_>,
        command: ServeCommand,
        version: ProtocolVersion,
    ) -> ReadResult<Option<Self>> {
        Ok(Some(match command {
            ServeCommand::QueryValidPaths | ServeCommand::QueryClosure => ServeReply::Paths {
                paths: StorePath::decode_list(r)?,
            },
            ServeCommand::QueryPathInfos => {
                let mut infos = Vec::new();
                loop {
                    let path = r.string()?;
                    if path.is_empty() {
                        break;
                    }
                    let path = String::from_utf8(path.to_vec()).map_err(|_| {
                        r.invalid(InvalidKind::Other("a store path that is not UTF-8".into()))
                    })?;
                    let path = StorePath::new(path);
                    infos.push((path, ServePathInfo::decode(r, version)?));
                }
                ServeReply::PathInfos { infos }
            }
            ServeCommand::ImportPaths | ServeCommand::AddToStoreNar => {
                ServeReply::Done { status: r.u64()? }
            }
            ServeCommand::BuildPaths => {
                let status = r.u64()?;
                let error_msg = if status != 0 {
                    Some(ByteString::decode(r)?)
                } else {
                    None
                };
                ServeReply::BuildStatus { status, error_msg }
            }
            ServeCommand::BuildDerivation => ServeReply::BuildResult {
                result: Box::new(decode_build_result(r, version)?),
            },
            ServeCommand::DumpStorePath | ServeCommand::ExportPaths => return Ok(None),
        }))
    }

    /// Writes the reply at a serve-protocol version.
    pub fn encode(&self, w: &mut Writer, version: ProtocolVersion) {
        match self {
            ServeReply::Paths { paths } => StorePath::encode_list(paths, w),
            ServeReply::PathInfos { infos } => {
                for (path, info) in infos {
                    path.encode(w);
                    info.encode(w, version);
                }
                w.string(b"");
            }
            ServeReply::Done { status } => {
                w.u64(*status);
            }
            ServeReply::BuildStatus { status, error_msg } => {
                w.u64(*status);
                if let Some(message) = error_msg {
                    message.encode(w);
                }
            }
            ServeReply::BuildResult { result } => encode_build_result(result, w, version),
        }
    }
}

/// Whether `version` is a serve-protocol version this decoder knows (2.x).
pub fn supported(version: ProtocolVersion) -> bool {
    version.major == 2 && at_least(version, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(request: ServeRequest, version: ProtocolVersion) {
        let mut w = Writer::new();
        request.encode(&mut w, version);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        let back = ServeRequest::decode(&mut r, version).unwrap();
        assert!(r.is_empty());
        assert_eq!(back, request);
    }

    #[test]
    fn requests_round_trip() {
        let path = StorePath::new("/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo");
        let version = ProtocolVersion::new(2, 7);
        round_trip(
            ServeRequest::QueryValidPaths {
                lock: false,
                substitute: true,
                paths: vec![path.clone()],
            },
            version,
        );
        round_trip(ServeRequest::ImportPaths, version);
        round_trip(
            ServeRequest::AddToStoreNar(Box::new(ServeAddToStoreNar {
                path: path.clone(),
                deriver: None,
                nar_hash: "00".repeat(32),
                references: vec![path.clone()],
                registration_time: 0,
                nar_size: 120,
                ultimate: false,
                sigs: vec![],
                ca: None,
            })),
            version,
        );
        round_trip(
            ServeRequest::BuildPaths {
                paths: vec![ByteString(b"/nix/store/x.drv!out".to_vec())],
                options: BuildOptions {
                    max_silent_time: 1,
                    build_timeout: 2,
                    max_log_size: 3,
                    nr_repeats: 0,
                    enforce_determinism: false,
                    keep_failed: true,
                },
            },
            version,
        );
    }

    #[test]
    fn an_unknown_command_is_invalid_at_its_word() {
        let mut w = Writer::new();
        w.u64(42);
        let bytes = w.into_bytes();
        let error =
            ServeRequest::decode(&mut Reader::new(&bytes), ProtocolVersion::new(2, 7)).unwrap_err();
        assert!(
            error.to_string().contains("unknown serve command 42"),
            "{error}"
        );
    }

    #[test]
    fn path_infos_end_with_an_empty_string() {
        let version = ProtocolVersion::new(2, 7);
        let reply = ServeReply::PathInfos {
            infos: vec![(
                StorePath::new("/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"),
                ServePathInfo {
                    deriver: None,
                    references: vec![],
                    download_size: 5,
                    nar_size: 5,
                    nar_hash: "sha256:x".into(),
                    ca: None,
                    sigs: vec![],
                },
            )],
        };
        let mut w = Writer::new();
        reply.encode(&mut w, version);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        let back = ServeReply::decode(&mut r, ServeCommand::QueryPathInfos, version).unwrap();
        assert!(r.is_empty());
        assert_eq!(back, Some(reply));
    }
}
