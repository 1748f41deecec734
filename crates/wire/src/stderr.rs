//! The daemon's log channel (protocol reference §6): the messages a daemon
//! sends while it works on an operation, from plain log lines to structured
//! activities, tunnelled data and errors.
//!
//! Every message starts with one u64 naming its type ([`STDERR_NEXT`] …
//! [`STDERR_RESULT`]); the rest depends on the type and, for errors, on the
//! negotiated version (§3.8). [`StderrMessage::decode`] and
//! [`StderrMessage::encode`] are exact inverses: re-encoding a decoded
//! message gives back its bytes.

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadResult, Reader, Writer, MAX_COLLECTION_LEN};
use crate::version::Negotiated;

/// A log line follows: `"gmlo"` on the wire.
pub const STDERR_NEXT: u64 = 0x6f6c_6d67;
/// The daemon asks the client for data: `"atad"` on the wire.
pub const STDERR_READ: u64 = 0x6461_7461;
/// The daemon sends data for the client's sink: `"\x16tad"` on the wire.
pub const STDERR_WRITE: u64 = 0x6461_7416;
/// The work phase ended successfully: `"stla"` on the wire.
pub const STDERR_LAST: u64 = 0x616c_7473;
/// The work phase failed: `"ptxc"` on the wire.
pub const STDERR_ERROR: u64 = 0x6378_7470;
/// An activity starts: `"TRTS"` on the wire.
pub const STDERR_START_ACTIVITY: u64 = 0x5354_5254;
/// An activity stops: `"POTS"` on the wire.
pub const STDERR_STOP_ACTIVITY: u64 = 0x5354_4f50;
/// An activity reports a result: `"TLSR"` on the wire.
pub const STDERR_RESULT: u64 = 0x5253_4c54;

/// The `type` string every structured error carries.
const ERROR_TYPE: &[u8] = b"Error";

/// One message of the log channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StderrMessage {
    /// `STDERR_NEXT`: a log line, usually ending in a newline.
    #[serde(rename_all = "camelCase")]
    Next {
        /// The text, possibly with ANSI escapes.
        text: ByteString,
    },
    /// `STDERR_READ`: the client must answer with one string of at most
    /// `max_len` bytes (§2.9).
    #[serde(rename_all = "camelCase")]
    Read {
        /// Largest answer the daemon accepts.
        max_len: u64,
    },
    /// `STDERR_WRITE`: data for the client's sink (ExportPath). An empty
    /// string is not end-of-data.
    #[serde(rename_all = "camelCase")]
    Write {
        /// The data.
        data: ByteString,
    },
    /// `STDERR_LAST`: the work phase ended; the reply follows.
    Last,
    /// `STDERR_ERROR`: the work phase failed.
    Error(ErrorInfo),
    /// `STDERR_START_ACTIVITY` (≥ 1.20).
    #[serde(rename_all = "camelCase")]
    StartActivity {
        /// Activity id: the daemon worker's pid in the high 32 bits.
        id: u64,
        /// Verbosity level.
        level: u64,
        /// Activity type (§6.3).
        activity_type: ActivityType,
        /// Human text.
        text: ByteString,
        /// Typed fields.
        fields: Vec<Field>,
        /// Parent activity id; 0 means none.
        parent: u64,
    },
    /// `STDERR_STOP_ACTIVITY` (≥ 1.20).
    #[serde(rename_all = "camelCase")]
    StopActivity {
        /// Activity id.
        id: u64,
    },
    /// `STDERR_RESULT` (≥ 1.20).
    #[serde(rename_all = "camelCase")]
    Result {
        /// Activity id.
        id: u64,
        /// Result type (§6.4).
        result_type: ResultType,
        /// Typed fields.
        fields: Vec<Field>,
    },
}

/// A field of an activity or result message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Field {
    /// Field kind 0: an integer.
    Int(u64),
    /// Field kind 1: a string.
    String(ByteString),
}

/// The payload of a `STDERR_ERROR` message, in one of its two layouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "camelCase")]
pub enum ErrorInfo {
    /// The structured error of 1.26 and later (§3.8).
    #[serde(rename_all = "camelCase")]
    Structured {
        /// Verbosity level, normally 0.
        level: u64,
        /// Error class name; 2.8+ always send `"Error"`.
        name: ByteString,
        /// The human message.
        message: ByteString,
        /// Trace hints, outermost first.
        traces: Vec<ByteString>,
    },
    /// The form before 1.26: a message and an exit status.
    #[serde(rename_all = "camelCase")]
    Legacy {
        /// The human message.
        message: ByteString,
        /// Exit status, normally 1 (100–104 for build failures).
        exit_status: u64,
    },
}

impl ErrorInfo {
    /// The human message, in either layout.
    pub fn message(&self) -> &ByteString {
        match self {
            ErrorInfo::Structured { message, .. } | ErrorInfo::Legacy { message, .. } => message,
        }
    }

    /// Reads the error payload (after the `STDERR_ERROR` word) in the layout
    /// the negotiated version uses.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<ErrorInfo> {
        if !n.at_least(26) {
            let message = ByteString::from(r.string()?);
            let exit_status = r.u64()?;
            return Ok(ErrorInfo::Legacy {
                message,
                exit_status,
            });
        }
        let type_start = r.position();
        let error_type = r.string()?;
        if error_type != ERROR_TYPE {
            return Err(r.invalid_at(
                type_start,
                InvalidKind::Other(format!(
                    "structured error has type {:?}, not \"Error\"",
                    String::from_utf8_lossy(error_type)
                )),
            ));
        }
        let level = r.u64()?;
        let name = ByteString::from(r.string()?);
        let message = ByteString::from(r.string()?);
        read_no_position(r, "error position flag")?;
        let traces = r.list(|r| {
            read_no_position(r, "trace position flag")?;
            Ok(ByteString::from(r.string()?))
        })?;
        Ok(ErrorInfo::Structured {
            level,
            name,
            message,
            traces,
        })
    }

    /// Writes the error payload (after the `STDERR_ERROR` word).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            ErrorInfo::Structured {
                level,
                name,
                message,
                traces,
            } => {
                w.string(ERROR_TYPE)
                    .u64(*level)
                    .string(name)
                    .string(message)
                    .u64(0);
                w.u64(traces.len() as u64);
                for trace in traces {
                    w.u64(0).string(trace);
                }
            }
            ErrorInfo::Legacy {
                message,
                exit_status,
            } => {
                w.string(message).u64(*exit_status);
            }
        }
    }
}

/// Reads a `havePos` flag, which every Nix writer sends as 0 and every Nix
/// reader rejects otherwise.
fn read_no_position(r: &mut Reader<'_>, field: &'static str) -> ReadResult<()> {
    let start = r.position();
    match r.u64()? {
        0 => Ok(()),
        value => Err(r.invalid_at(start, InvalidKind::OutOfRange { field, value })),
    }
}

/// An activity type number (§6.3). Numbers this decoder does not know are
/// kept as they are, so newer daemons decode and re-encode exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActivityType(pub u64);

impl ActivityType {
    /// `actUnknown`.
    pub const UNKNOWN: ActivityType = ActivityType(0);
    /// `actCopyPath`.
    pub const COPY_PATH: ActivityType = ActivityType(100);
    /// `actFileTransfer` (`actDownload` in 2.3).
    pub const FILE_TRANSFER: ActivityType = ActivityType(101);
    /// `actRealise`.
    pub const REALISE: ActivityType = ActivityType(102);
    /// `actCopyPaths`.
    pub const COPY_PATHS: ActivityType = ActivityType(103);
    /// `actBuilds`.
    pub const BUILDS: ActivityType = ActivityType(104);
    /// `actBuild`.
    pub const BUILD: ActivityType = ActivityType(105);
    /// `actOptimiseStore`.
    pub const OPTIMISE_STORE: ActivityType = ActivityType(106);
    /// `actVerifyPaths`.
    pub const VERIFY_PATHS: ActivityType = ActivityType(107);
    /// `actSubstitute`.
    pub const SUBSTITUTE: ActivityType = ActivityType(108);
    /// `actQueryPathInfo`.
    pub const QUERY_PATH_INFO: ActivityType = ActivityType(109);
    /// `actPostBuildHook`.
    pub const POST_BUILD_HOOK: ActivityType = ActivityType(110);
    /// `actBuildWaiting` (2.4+).
    pub const BUILD_WAITING: ActivityType = ActivityType(111);
    /// `actFetchTree` (2.20+).
    pub const FETCH_TREE: ActivityType = ActivityType(112);
    /// `actFetchToStore` (unreleased).
    pub const FETCH_TO_STORE: ActivityType = ActivityType(113);

    /// Nix's name for the type, if it is one this decoder knows.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "actUnknown",
            100 => "actCopyPath",
            101 => "actFileTransfer",
            102 => "actRealise",
            103 => "actCopyPaths",
            104 => "actBuilds",
            105 => "actBuild",
            106 => "actOptimiseStore",
            107 => "actVerifyPaths",
            108 => "actSubstitute",
            109 => "actQueryPathInfo",
            110 => "actPostBuildHook",
            111 => "actBuildWaiting",
            112 => "actFetchTree",
            113 => "actFetchToStore",
            _ => return None,
        })
    }
}

/// A result type number (§6.4), kept as is when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResultType(pub u64);

impl ResultType {
    /// `resFileLinked`.
    pub const FILE_LINKED: ResultType = ResultType(100);
    /// `resBuildLogLine`.
    pub const BUILD_LOG_LINE: ResultType = ResultType(101);
    /// `resUntrustedPath`.
    pub const UNTRUSTED_PATH: ResultType = ResultType(102);
    /// `resCorruptedPath`.
    pub const CORRUPTED_PATH: ResultType = ResultType(103);
    /// `resSetPhase`.
    pub const SET_PHASE: ResultType = ResultType(104);
    /// `resProgress`.
    pub const PROGRESS: ResultType = ResultType(105);
    /// `resSetExpected`.
    pub const SET_EXPECTED: ResultType = ResultType(106);
    /// `resPostBuildLogLine`.
    pub const POST_BUILD_LOG_LINE: ResultType = ResultType(107);
    /// `resFetchStatus` (2.20+).
    pub const FETCH_STATUS: ResultType = ResultType(108);
    /// `resFetchToStore` (unreleased).
    pub const FETCH_TO_STORE: ResultType = ResultType(109);

    /// Nix's name for the type, if it is one this decoder knows.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            100 => "resFileLinked",
            101 => "resBuildLogLine",
            102 => "resUntrustedPath",
            103 => "resCorruptedPath",
            104 => "resSetPhase",
            105 => "resProgress",
            106 => "resSetExpected",
            107 => "resPostBuildLogLine",
            108 => "resFetchStatus",
            109 => "resFetchToStore",
            _ => return None,
        })
    }
}

fn read_fields(r: &mut Reader<'_>) -> ReadResult<Vec<Field>> {
    let count = r.len(MAX_COLLECTION_LEN)?;
    // Each field takes at least 16 bytes, so the remaining input bounds the
    // allocation even when the count is large.
    let mut fields = Vec::with_capacity((count as usize).min(r.remaining().len() / 16));
    for _ in 0..count {
        let kind_start = r.position();
        match r.u64()? {
            0 => fields.push(Field::Int(r.u64()?)),
            1 => fields.push(Field::String(ByteString::from(r.string()?))),
            other => {
                return Err(r.invalid_at(
                    kind_start,
                    InvalidKind::OutOfRange {
                        field: "activity field kind",
                        value: other,
                    },
                ))
            }
        }
    }
    Ok(fields)
}

fn write_fields(w: &mut Writer, fields: &[Field]) {
    w.u64(fields.len() as u64);
    for field in fields {
        match field {
            Field::Int(value) => {
                w.u64(0).u64(*value);
            }
            Field::String(text) => {
                w.u64(1).string(text);
            }
        }
    }
}

impl StderrMessage {
    /// The message's type word (`STDERR_*`).
    pub fn code(&self) -> u64 {
        match self {
            StderrMessage::Next { .. } => STDERR_NEXT,
            StderrMessage::Read { .. } => STDERR_READ,
            StderrMessage::Write { .. } => STDERR_WRITE,
            StderrMessage::Last => STDERR_LAST,
            StderrMessage::Error(_) => STDERR_ERROR,
            StderrMessage::StartActivity { .. } => STDERR_START_ACTIVITY,
            StderrMessage::StopActivity { .. } => STDERR_STOP_ACTIVITY,
            StderrMessage::Result { .. } => STDERR_RESULT,
        }
    }

    /// Whether this message ends an operation's work phase
    /// (`STDERR_LAST` or `STDERR_ERROR`).
    pub fn ends_work(&self) -> bool {
        matches!(self, StderrMessage::Last | StderrMessage::Error(_))
    }

    /// Reads one message, type word included.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<StderrMessage> {
        let start = r.position();
        Ok(match r.u64()? {
            STDERR_NEXT => StderrMessage::Next {
                text: ByteString::from(r.string()?),
            },
            STDERR_READ => StderrMessage::Read { max_len: r.u64()? },
            STDERR_WRITE => StderrMessage::Write {
                data: ByteString::from(r.string()?),
            },
            STDERR_LAST => StderrMessage::Last,
            STDERR_ERROR => StderrMessage::Error(ErrorInfo::decode(r, n)?),
            STDERR_START_ACTIVITY => {
                let id = r.u64()?;
                let level = r.u64()?;
                let activity_type = ActivityType(r.u64()?);
                let text = ByteString::from(r.string()?);
                let fields = read_fields(r)?;
                let parent = r.u64()?;
                StderrMessage::StartActivity {
                    id,
                    level,
                    activity_type,
                    text,
                    fields,
                    parent,
                }
            }
            STDERR_STOP_ACTIVITY => StderrMessage::StopActivity { id: r.u64()? },
            STDERR_RESULT => {
                let id = r.u64()?;
                let result_type = ResultType(r.u64()?);
                let fields = read_fields(r)?;
                StderrMessage::Result {
                    id,
                    result_type,
                    fields,
                }
            }
            other => {
                return Err(r.invalid_at(
                    start,
                    InvalidKind::Other(format!("unknown stderr message type {other:#x}")),
                ))
            }
        })
    }

    /// Writes the message, type word included. The error layout is the one
    /// the [`ErrorInfo`] variant names, whatever the version.
    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.code());
        match self {
            StderrMessage::Next { text } => {
                w.string(text);
            }
            StderrMessage::Read { max_len } => {
                w.u64(*max_len);
            }
            StderrMessage::Write { data } => {
                w.string(data);
            }
            StderrMessage::Last => {}
            StderrMessage::Error(info) => info.encode(w),
            StderrMessage::StartActivity {
                id,
                level,
                activity_type,
                text,
                fields,
                parent,
            } => {
                w.u64(*id).u64(*level).u64(activity_type.0).string(text);
                write_fields(w, fields);
                w.u64(*parent);
            }
            StderrMessage::StopActivity { id } => {
                w.u64(*id);
            }
            StderrMessage::Result {
                id,
                result_type,
                fields,
            } => {
                w.u64(*id).u64(result_type.0);
                write_fields(w, fields);
            }
        }
    }

    /// The message's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::ProtocolVersion;

    fn v(minor: u8) -> Negotiated {
        Negotiated::new(ProtocolVersion::new(1, minor))
    }

    fn round_trip(message: &StderrMessage, n: &Negotiated) {
        let bytes = message.to_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(&StderrMessage::decode(&mut r, n).unwrap(), message);
        assert!(r.is_empty());
    }

    #[test]
    fn codes_spell_their_ascii_names_on_the_wire() {
        assert_eq!(&STDERR_NEXT.to_le_bytes()[..4], b"gmlo");
        assert_eq!(&STDERR_READ.to_le_bytes()[..4], b"atad");
        assert_eq!(&STDERR_WRITE.to_le_bytes()[..4], b"\x16tad");
        assert_eq!(&STDERR_LAST.to_le_bytes()[..4], b"stla");
        assert_eq!(&STDERR_ERROR.to_le_bytes()[..4], b"ptxc");
        assert_eq!(&STDERR_START_ACTIVITY.to_le_bytes()[..4], b"TRTS");
        assert_eq!(&STDERR_STOP_ACTIVITY.to_le_bytes()[..4], b"POTS");
        assert_eq!(&STDERR_RESULT.to_le_bytes()[..4], b"TLSR");
    }

    #[test]
    fn every_message_kind_round_trips() {
        let n = v(38);
        for message in [
            StderrMessage::Next {
                text: "building\n".into(),
            },
            StderrMessage::Read { max_len: 65536 },
            StderrMessage::Write { data: "".into() },
            StderrMessage::Last,
            StderrMessage::StartActivity {
                id: (1234 << 32) + 5,
                level: 3,
                activity_type: ActivityType::BUILD,
                text: "building '/nix/store/x.drv'".into(),
                fields: vec![
                    Field::String("/nix/store/x.drv".into()),
                    Field::String("".into()),
                    Field::Int(1),
                    Field::Int(1),
                ],
                parent: 0,
            },
            StderrMessage::StopActivity { id: 7 },
            StderrMessage::Result {
                id: 7,
                result_type: ResultType(999),
                fields: vec![Field::Int(1), Field::String(ByteString(vec![0xff]))],
            },
            StderrMessage::Error(ErrorInfo::Structured {
                level: 0,
                name: "Error".into(),
                message: "boom".into(),
                traces: vec!["while doing x".into()],
            }),
        ] {
            round_trip(&message, &n);
        }
        round_trip(
            &StderrMessage::Error(ErrorInfo::Legacy {
                message: "path is not valid".into(),
                exit_status: 1,
            }),
            &v(25),
        );
    }

    #[test]
    fn structured_error_layout_matches_the_reference() {
        let info = ErrorInfo::Structured {
            level: 0,
            name: "Error".into(),
            message: "no".into(),
            traces: vec![],
        };
        let mut w = Writer::new();
        info.encode(&mut w);
        let mut expected = Writer::new();
        expected
            .string("Error")
            .u64(0)
            .string("Error")
            .string("no")
            .u64(0)
            .u64(0);
        assert_eq!(w.as_bytes(), expected.as_bytes());
    }

    #[test]
    fn error_with_a_position_is_invalid() {
        let mut w = Writer::new();
        w.u64(STDERR_ERROR)
            .string("Error")
            .u64(0)
            .string("Error")
            .string("m")
            .u64(1);
        let bytes = w.into_bytes();
        assert!(matches!(
            StderrMessage::decode(&mut Reader::new(&bytes), &v(38)),
            Err(crate::primitives::ReadError::Invalid { .. })
        ));
    }

    #[test]
    fn unknown_field_kind_and_message_type_are_invalid() {
        let mut w = Writer::new();
        w.u64(STDERR_RESULT).u64(1).u64(101).u64(1).u64(2).u64(0);
        let bytes = w.into_bytes();
        assert!(StderrMessage::decode(&mut Reader::new(&bytes), &v(38)).is_err());
        let bytes = 0x1234u64.to_le_bytes();
        assert!(matches!(
            StderrMessage::decode(&mut Reader::new(&bytes), &v(38)),
            Err(crate::primitives::ReadError::Invalid { offset: 0, .. })
        ));
    }

    #[test]
    fn json_form_is_camel_case_and_round_trips() {
        let message = StderrMessage::StartActivity {
            id: 1,
            level: 0,
            activity_type: ActivityType::REALISE,
            text: "".into(),
            fields: vec![Field::Int(3), Field::String("x".into())],
            parent: 0,
        };
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(
            json,
            r#"{"type":"startActivity","id":1,"level":0,"activityType":102,"text":"","fields":[3,"x"],"parent":0}"#
        );
        assert_eq!(
            serde_json::from_str::<StderrMessage>(&json).unwrap(),
            message
        );
        let error = StderrMessage::Error(ErrorInfo::Legacy {
            message: "m".into(),
            exit_status: 1,
        });
        let json = serde_json::to_string(&error).unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","format":"legacy","message":"m","exitStatus":1}"#
        );
        assert_eq!(serde_json::from_str::<StderrMessage>(&json).unwrap(), error);
    }
}
