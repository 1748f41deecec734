//! Small enumerations: build modes, GC actions, trust and verbosity (§2.5, §3.3).

use serde::{Deserialize, Serialize};

use crate::primitives::{ReadResult, Reader, Writer};

use super::out_of_range;

/// How to build (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuildMode {
    /// 0: build what is missing.
    #[default]
    Normal,
    /// 1: rebuild and replace corrupted paths.
    Repair,
    /// 2: rebuild and compare with the existing outputs.
    Check,
}

impl BuildMode {
    /// Reads a build mode. Nix rejects values other than 0, 1 and 2.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(BuildMode::Normal),
            1 => Ok(BuildMode::Repair),
            2 => Ok(BuildMode::Check),
            other => Err(out_of_range(r, start, "build mode", other)),
        }
    }

    /// Writes a build mode.
    pub fn encode(self, w: &mut Writer) {
        w.u64(self as u64);
    }
}

/// What CollectGarbage should do (§3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GcAction {
    /// 0: list live paths.
    ReturnLive,
    /// 1: list dead paths.
    ReturnDead,
    /// 2: delete dead paths.
    DeleteDead,
    /// 3: delete the given paths.
    DeleteSpecific,
}

impl GcAction {
    /// Reads a GC action. Nix rejects values above 3.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(GcAction::ReturnLive),
            1 => Ok(GcAction::ReturnDead),
            2 => Ok(GcAction::DeleteDead),
            3 => Ok(GcAction::DeleteSpecific),
            other => Err(out_of_range(r, start, "GC action", other)),
        }
    }

    /// Writes a GC action.
    pub fn encode(self, w: &mut Writer) {
        w.u64(self as u64);
    }
}

/// Whether the daemon trusts the client (§2.5); "unknown" is `None` in an
/// `Option<TrustedFlag>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrustedFlag {
    /// 1: trusted.
    Trusted,
    /// 2: not trusted.
    NotTrusted,
}

impl TrustedFlag {
    /// Reads an optional trusted flag: 0 unknown, 1 trusted, 2 not trusted.
    pub fn decode_optional(r: &mut Reader<'_>) -> ReadResult<Option<Self>> {
        let start = r.position();
        match r.u64()? {
            0 => Ok(None),
            1 => Ok(Some(TrustedFlag::Trusted)),
            2 => Ok(Some(TrustedFlag::NotTrusted)),
            other => Err(out_of_range(r, start, "trusted flag", other)),
        }
    }

    /// Writes an optional trusted flag.
    pub fn encode_optional(flag: Option<TrustedFlag>, w: &mut Writer) {
        w.u64(match flag {
            None => 0,
            Some(TrustedFlag::Trusted) => 1,
            Some(TrustedFlag::NotTrusted) => 2,
        });
    }
}

/// Nix's name for a verbosity level (§3.3), or `None` above 7.
pub fn verbosity_name(level: u64) -> Option<&'static str> {
    Some(match level {
        0 => "error",
        1 => "warn",
        2 => "notice",
        3 => "info",
        4 => "talkative",
        5 => "chatty",
        6 => "debug",
        7 => "vomit",
        _ => return None,
    })
}
