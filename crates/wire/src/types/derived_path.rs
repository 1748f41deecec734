//! Derived paths: existing paths or outputs of derivations (§3.2).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::primitives::{InvalidKind, ReadResult, Reader, Writer};
use crate::version::Negotiated;

use super::out_of_range;
use super::store_path::StorePath;

/// Deepest nesting of a [`SingleDerivedPath`] the decoder accepts. Real
/// dynamic derivations nest a handful of levels; the limit keeps corrupt
/// input from exhausting the stack.
pub const MAX_DERIVED_PATH_DEPTH: usize = 64;

/// Which outputs of a derivation are wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputsSpec {
    /// Every output (`*`).
    All,
    /// The named outputs, in the order they were sent.
    Names(Vec<String>),
}

/// Something to build or fetch: an existing path, or outputs of a
/// derivation (§3.2). On the wire it is one string whose syntax depends on
/// the version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DerivedPath {
    /// A path that must exist; at ≥ 1.30 this may be a `.drv` file itself.
    #[serde(rename_all = "camelCase")]
    Opaque {
        /// The path.
        path: StorePath,
    },
    /// Outputs of a derivation.
    #[serde(rename_all = "camelCase")]
    Built {
        /// The derivation. With dynamic derivations (≥ 1.30, experimental)
        /// this text may itself be a built path such as `x.drv!out`.
        drv_path: StorePath,
        /// The outputs wanted.
        outputs: OutputsSpec,
    },
}

impl DerivedPath {
    /// Parses the wire string at the negotiated version.
    ///
    /// At ≥ 1.30 a string without `!` is an opaque path, and the outputs
    /// follow the last `!` (`*` for all). Below 1.30 (the legacy
    /// "path with outputs" syntax) a bare `.drv` path means all of its
    /// outputs, and the outputs follow the first `!`; `*` there is an output
    /// name, so that re-encoding stays exact.
    pub fn parse(s: &str, n: &Negotiated) -> DerivedPath {
        let names = |list: &str| OutputsSpec::Names(list.split(',').map(str::to_owned).collect());
        if n.at_least(30) {
            match s.rsplit_once('!') {
                None => DerivedPath::Opaque {
                    path: StorePath::from(s),
                },
                Some((drv, "*")) => DerivedPath::Built {
                    drv_path: StorePath::from(drv),
                    outputs: OutputsSpec::All,
                },
                Some((drv, list)) => DerivedPath::Built {
                    drv_path: StorePath::from(drv),
                    outputs: names(list),
                },
            }
        } else {
            match s.split_once('!') {
                None if s.ends_with(".drv") => DerivedPath::Built {
                    drv_path: StorePath::from(s),
                    outputs: OutputsSpec::All,
                },
                None => DerivedPath::Opaque {
                    path: StorePath::from(s),
                },
                Some((drv, list)) => DerivedPath::Built {
                    drv_path: StorePath::from(drv),
                    outputs: names(list),
                },
            }
        }
    }

    /// The wire string at the negotiated version.
    ///
    /// Below 1.30 an opaque `.drv` path cannot be expressed (Nix refuses to
    /// send one); it is written as the bare path, which a reader takes as
    /// "all outputs".
    pub fn to_wire_string(&self, n: &Negotiated) -> String {
        match self {
            DerivedPath::Opaque { path } => path.0.clone(),
            DerivedPath::Built { drv_path, outputs } => match outputs {
                OutputsSpec::All if n.at_least(30) => format!("{drv_path}!*"),
                OutputsSpec::All => drv_path.0.clone(),
                OutputsSpec::Names(names) => format!("{drv_path}!{}", names.join(",")),
            },
        }
    }

    /// Reads a derived path.
    pub fn decode(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Self> {
        let s = r.utf8("derived path")?;
        Ok(DerivedPath::parse(&s, n))
    }

    /// Writes a derived path.
    pub fn encode(&self, w: &mut Writer, n: &Negotiated) {
        w.string(self.to_wire_string(n));
    }

    /// Reads a list of derived paths.
    pub fn decode_list(r: &mut Reader<'_>, n: &Negotiated) -> ReadResult<Vec<Self>> {
        r.list(|r| DerivedPath::decode(r, n))
    }

    /// Writes a list of derived paths.
    pub fn encode_list(paths: &[DerivedPath], w: &mut Writer, n: &Negotiated) {
        w.list(paths, |w, p| p.encode(w, n));
    }
}

impl fmt::Display for DerivedPath {
    /// The ≥ 1.30 syntax: `path`, `drv!*` or `drv!a,b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DerivedPath::Opaque { path } => write!(f, "{path}"),
            DerivedPath::Built {
                drv_path,
                outputs: OutputsSpec::All,
            } => write!(f, "{drv_path}!*"),
            DerivedPath::Built {
                drv_path,
                outputs: OutputsSpec::Names(names),
            } => write!(f, "{drv_path}!{}", names.join(",")),
        }
    }
}

/// A tagged, possibly nested derived path naming a single store path
/// (§3.2; used by SubmitOutput).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SingleDerivedPath {
    /// Tag 0: an existing path.
    #[serde(rename_all = "camelCase")]
    Opaque {
        /// The path.
        path: StorePath,
    },
    /// Tag 1: one output of a (possibly built) derivation.
    #[serde(rename_all = "camelCase")]
    Built {
        /// The derivation.
        drv_path: Box<SingleDerivedPath>,
        /// The output name.
        output: String,
    },
}

impl SingleDerivedPath {
    /// Reads a single derived path.
    pub fn decode(r: &mut Reader<'_>) -> ReadResult<Self> {
        Self::decode_depth(r, 0)
    }

    fn decode_depth(r: &mut Reader<'_>, depth: usize) -> ReadResult<Self> {
        let start = r.position();
        if depth > MAX_DERIVED_PATH_DEPTH {
            return Err(r.invalid(InvalidKind::Other(format!(
                "derived path nested deeper than {MAX_DERIVED_PATH_DEPTH}"
            ))));
        }
        match r.u64()? {
            0 => Ok(SingleDerivedPath::Opaque {
                path: StorePath::decode(r)?,
            }),
            1 => {
                let drv_path = Box::new(Self::decode_depth(r, depth + 1)?);
                let output = r.utf8("output name")?;
                Ok(SingleDerivedPath::Built { drv_path, output })
            }
            tag => Err(out_of_range(r, start, "single derived path tag", tag)),
        }
    }

    /// Writes a single derived path.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            SingleDerivedPath::Opaque { path } => {
                w.u64(0);
                path.encode(w);
            }
            SingleDerivedPath::Built { drv_path, output } => {
                w.u64(1);
                drv_path.encode(w);
                w.string(output);
            }
        }
    }
}

impl fmt::Display for SingleDerivedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SingleDerivedPath::Opaque { path } => write!(f, "{path}"),
            SingleDerivedPath::Built { drv_path, output } => write!(f, "{drv_path}^{output}"),
        }
    }
}
