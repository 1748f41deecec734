//! Arguments some operations carry: client settings and GC options (§7.3, §7.4).

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::{ReadResult, Reader, Writer};
use crate::version::{feature, Negotiated};

use super::enums::GcAction;
use super::out_of_range;
use super::store_path::StorePath;

/// The client's settings, sent by SetOptions (§7.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSettings {
    /// Keep the build directory of failed builds.
    pub keep_failed: bool,
    /// Keep going after a build fails.
    pub keep_going: bool,
    /// Build from source when substitution fails.
    pub try_fallback: bool,
    /// Log verbosity (see [`verbosity_name`](super::verbosity_name)).
    pub verbosity: u64,
    /// Maximum parallel builds.
    pub max_build_jobs: u64,
    /// Seconds of silence before a build is killed.
    pub max_silent_time: u64,
    /// Obsolete `useBuildHook`; clients send 1.
    pub use_build_hook: u64,
    /// A verbosity, not a flag: 0 (error) means verbose builds are on, and
    /// clients send 7 (vomit) for off.
    pub verbose_build: u64,
    /// Obsolete `logType`; clients send 0.
    pub log_type: u64,
    /// Obsolete `printBuildTrace`; clients send 0.
    pub print_build_trace: u64,
    /// Cores per build.
    pub build_cores: u64,
    /// Whether to use substitutes.
    pub use_substitutes: bool,
    /// Overridden settings, name and value, in the order sent (≥ 1.12).
    pub overrides: Vec<(String, ByteString)>,
}

impl ClientSettings {
    /// Whether the client asked for verbose build output.
    pub fn verbose_build_on(&self) -> bool {
        self.verbose_build == 0
    }

    /// Reads the settings.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        Ok(ClientSettings {
            keep_failed: r.bool()?,
            keep_going: r.bool()?,
            try_fallback: r.bool()?,
            verbosity: r.u64()?,
            max_build_jobs: r.u64()?,
            max_silent_time: r.u64()?,
            use_build_hook: r.u64()?,
            verbose_build: r.u64()?,
            log_type: r.u64()?,
            print_build_trace: r.u64()?,
            build_cores: r.u64()?,
            use_substitutes: r.bool()?,
            overrides: if n.at_least(12) {
                r.list(|r| Ok((r.utf8("setting name")?, ByteString::decode(r)?)))?
            } else {
                Vec::new()
            },
        })
    }

    /// Writes the settings.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        w.bool(self.keep_failed)
            .bool(self.keep_going)
            .bool(self.try_fallback)
            .u64(self.verbosity)
            .u64(self.max_build_jobs)
            .u64(self.max_silent_time)
            .u64(self.use_build_hook)
            .u64(self.verbose_build)
            .u64(self.log_type)
            .u64(self.print_build_trace)
            .u64(self.build_cores)
            .bool(self.use_substitutes);
        if n.at_least(12) {
            w.list(&self.overrides, |w, (name, value)| {
                w.string(name);
                value.encode(w);
            });
        }
    }
}

/// Which paths CollectGarbage is about (§7.4, §3.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GcPaths {
    /// Without `delete-dead-specific-referrers`: a plain set; empty with an
    /// action other than DeleteSpecific means the whole store.
    #[serde(rename_all = "camelCase")]
    Set {
        /// The paths.
        paths: Vec<StorePath>,
    },
    /// With the feature, tag 1: the whole store.
    WholeStore,
    /// With the feature, tag 0: these paths.
    #[serde(rename_all = "camelCase")]
    Specific {
        /// The paths.
        paths: Vec<StorePath>,
        /// Whether to delete their referrers too.
        delete_referrers: bool,
    },
}

impl GcPaths {
    /// Reads the paths in the form the connection uses.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        if !n.has(feature::DELETE_DEAD_SPECIFIC_REFERRERS) {
            return Ok(GcPaths::Set {
                paths: StorePath::decode_list(r)?,
            });
        }
        let start = r.position();
        match r.u64()? {
            0 => Ok(GcPaths::Specific {
                paths: StorePath::decode_list(r)?,
                delete_referrers: r.bool()?,
            }),
            1 => Ok(GcPaths::WholeStore),
            tag => Err(out_of_range(r, start, "GC paths tag", tag)),
        }
    }

    /// Writes the form held.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            GcPaths::Set { paths } => StorePath::encode_list(paths, w),
            GcPaths::WholeStore => {
                w.u64(1);
            }
            GcPaths::Specific {
                paths,
                delete_referrers,
            } => {
                w.u64(0);
                StorePath::encode_list(paths, w);
                w.bool(*delete_referrers);
            }
        }
    }

    /// The paths named, if any.
    pub fn paths(&self) -> &[StorePath] {
        match self {
            GcPaths::Set { paths } | GcPaths::Specific { paths, .. } => paths,
            GcPaths::WholeStore => &[],
        }
    }
}

/// The arguments of CollectGarbage (§7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcOptions {
    /// What to do.
    pub action: GcAction,
    /// Which paths.
    pub paths: GcPaths,
    /// Ignore liveness (daemons refuse this).
    pub ignore_liveness: bool,
    /// Stop after freeing this many bytes.
    pub max_freed: u64,
    /// Three obsolete fields; clients send zeros.
    pub obsolete: [u64; 3],
}

impl GcOptions {
    /// Reads the options.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        Ok(GcOptions {
            action: GcAction::decode(r)?,
            paths: GcPaths::decode(r, n)?,
            ignore_liveness: r.bool()?,
            max_freed: r.u64()?,
            obsolete: [r.u64()?, r.u64()?, r.u64()?],
        })
    }

    /// Writes the options.
    pub fn encode(&self, w: &mut Writer) {
        self.action.encode(w);
        self.paths.encode(w);
        w.bool(self.ignore_liveness).u64(self.max_freed);
        for value in self.obsolete {
            w.u64(value);
        }
    }
}
