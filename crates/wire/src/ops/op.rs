//! The op table: every operation's number and name (§7.1), and what the
//! client sends after a request's fixed fields (§8).

use serde::{Deserialize, Serialize};

use crate::version::Negotiated;

/// The op table (§7.1, §8): one row per op, with its documentation, Nix's
/// name for it, its number and, for ops whose request is followed by more
/// client data, what that data is. It defines [`Op`], [`Op::ALL`],
/// [`Op::name`] and [`Op::upload`], and `Request::op` and `Reply::op` are
/// generated from it, so a new op is one row here plus its request and
/// reply variants (which the compiler then asks for).
///
/// `op_table!(callback)` calls `callback!` with the rows.
macro_rules! op_table {
    ($callback:ident) => {
        $callback! {
            /// Whether a path is valid.
            IsValidPath = 1;
            /// Whether a path has substitutes (removed in 2.34).
            HasSubstitutes = 3;
            /// A path's NAR hash (obsolete; removed in 2.34).
            QueryPathHash = 4;
            /// A path's references (obsolete; removed in 2.34).
            QueryReferences = 5;
            /// The paths that refer to a path.
            QueryReferrers = 6;
            /// Adds a file or tree to the store.
            AddToStore = 7, upload(n) => if n.at_least(25) { Upload::Framed } else { Upload::InlineNar };
            /// Adds a text file to the store (obsolete since 1.25).
            AddTextToStore = 8;
            /// Builds or substitutes derived paths.
            BuildPaths = 9;
            /// Makes a path valid, substituting it if needed.
            EnsurePath = 10;
            /// Adds a temporary GC root.
            AddTempRoot = 11;
            /// Adds an indirect GC root.
            AddIndirectRoot = 12;
            /// Waits for the garbage collector (obsolete no-op).
            SyncWithGC = 13;
            /// Lists GC roots.
            FindRoots = 14;
            /// Exports a path (obsolete; removed in 2.32).
            ExportPath = 16;
            /// A path's deriver (obsolete).
            QueryDeriver = 18;
            /// Sends the client's settings.
            SetOptions = 19;
            /// Runs the garbage collector.
            CollectGarbage = 20;
            /// What a substituter knows about one path.
            QuerySubstitutablePathInfo = 21;
            /// A derivation's output paths (obsolete).
            QueryDerivationOutputs = 22;
            /// Every valid path.
            QueryAllValidPaths = 23;
            /// Failed paths (Nix 1.x only).
            QueryFailedPaths = 24;
            /// Clears failed paths (Nix 1.x only).
            ClearFailedPaths = 25;
            /// A path's metadata.
            QueryPathInfo = 26;
            /// Imports an export stream (obsolete; removed in 2.32).
            ImportPaths = 27, upload(_) => Upload::StderrReadAnswers;
            /// A derivation's output names (obsolete).
            QueryDerivationOutputNames = 28;
            /// The path with a given hash part.
            QueryPathFromHashPart = 29;
            /// What substituters know about several paths.
            QuerySubstitutablePathInfos = 30;
            /// Which of several paths are valid.
            QueryValidPaths = 31;
            /// Which of several paths have substitutes.
            QuerySubstitutablePaths = 32;
            /// The valid derivers of a path.
            QueryValidDerivers = 33;
            /// Deduplicates the store.
            OptimiseStore = 34;
            /// Checks the store.
            VerifyStore = 35;
            /// Builds a derivation sent inline.
            BuildDerivation = 36;
            /// Adds signatures to a path.
            AddSignatures = 37;
            /// Streams a path as a NAR.
            NarFromPath = 38;
            /// Adds a path with its metadata and NAR.
            AddToStoreNar = 39, upload(n) => if n.at_least(23) {
                Upload::Framed
            } else if n.at_least(21) {
                Upload::StderrReadAnswers
            } else {
                Upload::InlineNar
            };
            /// What a build would do.
            QueryMissing = 40;
            /// A derivation's outputs and their paths.
            QueryDerivationOutputMap = 41;
            /// Registers a realisation (CA derivations).
            RegisterDrvOutput = 42;
            /// Looks up a realisation (CA derivations).
            QueryRealisation = 43;
            /// Adds several paths in one framed stream.
            AddMultipleToStore = 44, upload(_) => Upload::Framed;
            /// Uploads a build log.
            AddBuildLog = 45, upload(_) => Upload::Framed;
            /// Builds derived paths and returns each result.
            BuildPathsWithResults = 46;
            /// Adds a permanent GC root.
            AddPermRoot = 47;
            /// Submits a built output from inside a derivation (unreleased).
            SubmitOutput = 1000;
            /// Adds to the store with reference scanning (unreleased).
            AddToStoreScanning = 1001, upload(_) => Upload::Framed;
        }
    };
}
pub(super) use op_table;

/// Defines [`Op`] and its table-driven methods from the rows of
/// [`op_table!`].
macro_rules! define_op {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $number:literal $(, upload($arg:pat) => $upload:expr)?;
    )*) => {
        /// An operation number (§7.1), with Nix's names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u64)]
        pub enum Op {
            $($(#[doc = $doc])* $name = $number,)*
        }

        /// How many ops the table has.
        const OP_COUNT: usize = [$($number),*].len();

        impl Op {
            /// Every op, in number order.
            pub const ALL: [Op; OP_COUNT] = [$(Op::$name),*];

            /// Nix's name for the op, such as `QueryPathInfo`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$name => stringify!($name),)*
                }
            }

            /// What the client sends after the request's fixed fields (§8).
            pub fn upload(self, negotiated: &Negotiated) -> Upload {
                match self {
                    $(Op::$name => define_op!(@upload negotiated $(, $arg => $upload)?),)*
                }
            }
        }
    };
    (@upload $negotiated:ident) => {
        Upload::None
    };
    (@upload $negotiated:ident, $arg:pat => $upload:expr) => {{
        let $arg = $negotiated;
        $upload
    }};
}

op_table!(define_op);

impl Op {
    /// The op with this number, or `None` for a number no Nix uses.
    pub fn from_wire(value: u64) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.to_wire() == value)
    }

    /// The op's number.
    pub fn to_wire(self) -> u64 {
        self as u64
    }

    /// The op with this name, compared case-insensitively.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What follows a request's fixed fields on the client side (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Upload {
    /// Nothing; the request ends with its fields.
    None,
    /// A framed stream, ended by a zero-length frame (§2.8).
    Framed,
    /// A NAR with no length prefix; its end is found by parsing it (§10).
    InlineNar,
    /// One string for each STDERR_READ the daemon sends (§2.9).
    StderrReadAnswers,
}
