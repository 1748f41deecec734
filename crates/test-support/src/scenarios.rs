//! Deterministic client scenarios: fixed inputs and fixed client commands, run with a client of
//! a given Nix version against a given store.
//!
//! Every input is a fixed file or a fixed derivation, so the store paths a scenario creates are
//! the same on every run and with every Nix version. A scenario is a list of [`Step`]s, each one
//! client invocation (program, arguments, standard input and output redirections). A step may
//! bind the first line of its output to a variable (`$FILE`, `$OUT`) that later steps use.
//!
//! [`Scenario::run`] writes the inputs into a working directory, runs the steps in it and returns
//! a [`ScenarioRun`]: per step, the argument vector, standard output, standard error and exit
//! status. Machine-specific strings (the working directory, store URIs, socket paths, store
//! roots) are replaced in all of them by placeholders such as [`WORK`] and [`STORE`], so that runs
//! against different daemons, directly or through a recorder, compare equal when the clients
//! saw the same answers.
//!
//! The same definitions drive the end-to-end tests of the recorder and the committed captures
//! in `testdata/captures/` (see `docs/REAL-NIX.md`); [`FixtureRecord`] is the sidecar stored
//! next to each capture.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::daemon::Daemon;
use crate::peer::Peer;

mod fixture;
mod run;
mod values;

pub use fixture::*;
pub use run::*;
pub use values::*;

/// Placeholder for the working directory the steps run in.
pub const WORK: &str = "@WORK@";
/// Placeholder for the URI of the main store (the one that is recorded).
pub const STORE: &str = "@STORE@";
/// Placeholder for the URI of the source store of the `copy` scenario.
pub const SOURCE_STORE: &str = "@SOURCE_STORE@";
/// Placeholder for the socket the client uses to reach the main store.
pub const SOCKET: &str = "@SOCKET@";
/// Placeholder for the socket of the source store.
pub const SOURCE_SOCKET: &str = "@SOURCE_SOCKET@";
/// Placeholder for the directory holding the main store's files (`root=`).
pub const ROOT: &str = "@ROOT@";
/// Placeholder for the directory holding the source store's files.
pub const SOURCE_ROOT: &str = "@SOURCE_ROOT@";

/// The version of the [`FixtureRecord`] layout.
pub const FIXTURE_RECORD_FORMAT: u32 = 1;

/// The size of the pseudo-random file of the `add-large` scenario: 1 MiB.
pub const LARGE_INPUT_LEN: usize = 1 << 20;
/// The seed of the pseudo-random file of the `add-large` scenario.
pub const LARGE_INPUT_SEED: u64 = 0x6e69_7863_6170_0001;

const HELLO_TXT: &[u8] = b"nixcap scenario input: a file with fixed content\n";
const DIR_A_TXT: &[u8] = b"first file of a fixed directory\n";
const DIR_SUB_B_TXT: &[u8] = b"second file, one level down\n";
const DIR_RUN_SH: &[u8] = b"#!/bin/sh\necho an executable file of a fixed directory\n";

/// The trivial derivation: it builds with nothing but the daemon's `/bin/sh`.
const BUILD_NIX: &str = r#"derivation {
  name = "x";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo hi > $out" ];
}
"#;

/// A derivation whose builder fails after writing to stderr.
const FAIL_NIX: &str = r#"derivation {
  name = "fail";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo about to fail >&2; exit 1" ];
}
"#;

/// A derivation whose output refers to two sources, so it has references.
const REFS_NIX: &str = r#"derivation {
  name = "refs";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo ${./hello.txt} ${./dir} > $out" ];
}
"#;

/// A derivation whose builder logs to stdout and stderr, for the clients that read a build's
/// output and log from the store's directory.
const INSPECT_NIX: &str = r#"derivation {
  name = "inspect";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo building the output; echo a line on stderr >&2; echo inspected > $out" ];
}
"#;

/// An evaluation that imports the output of a derivation it builds (import from derivation).
const IFD_NIX: &str = r#"let
  generated = derivation {
    name = "generated";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo '{ greeting = \"hello from a build\"; }' > $out" ];
  };
in (import generated).greeting
"#;

/// A group of input files that a scenario writes into its working directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Input {
    /// `hello.txt`, a small text file.
    Hello,
    /// `dir/`, a directory with two files, an executable and a symlink.
    Dir,
    /// `build.nix`, the trivial derivation.
    BuildNix,
    /// `fail.nix`, a derivation whose build fails.
    FailNix,
    /// `refs.nix`, a derivation whose output refers to `hello.txt` and `dir`; it needs both.
    RefsNix,
    /// `large.bin`, [`LARGE_INPUT_LEN`] pseudo-random bytes from [`LARGE_INPUT_SEED`].
    Large,
    /// `inspect.nix`, a derivation whose builder logs a line to stdout and one to stderr.
    InspectNix,
    /// `ifd.nix`, an expression that imports the output of a derivation it builds.
    IfdNix,
}

/// One file system entry of an input, relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The path, relative to the working directory.
    pub path: &'static str,
    /// What the entry is.
    pub kind: InputKind,
}

/// The kind and content of an [`InputFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputKind {
    /// A regular file.
    File {
        /// Its bytes.
        contents: Cow<'static, [u8]>,
        /// Whether it is executable (the only mode bit a NAR keeps).
        executable: bool,
    },
    /// A symbolic link.
    Symlink {
        /// The link target.
        target: &'static str,
    },
    /// A directory (created before the entries inside it).
    Directory,
}

impl Input {
    /// The entries of this input, parents before children.
    pub fn files(self) -> Vec<InputFile> {
        let file = |path, contents: &'static [u8]| InputFile {
            path,
            kind: InputKind::File {
                contents: Cow::Borrowed(contents),
                executable: false,
            },
        };
        match self {
            Input::Hello => vec![file("hello.txt", HELLO_TXT)],
            Input::Dir => vec![
                InputFile {
                    path: "dir",
                    kind: InputKind::Directory,
                },
                file("dir/a.txt", DIR_A_TXT),
                InputFile {
                    path: "dir/sub",
                    kind: InputKind::Directory,
                },
                file("dir/sub/b.txt", DIR_SUB_B_TXT),
                InputFile {
                    path: "dir/run.sh",
                    kind: InputKind::File {
                        contents: Cow::Borrowed(DIR_RUN_SH),
                        executable: true,
                    },
                },
                InputFile {
                    path: "dir/link",
                    kind: InputKind::Symlink { target: "a.txt" },
                },
            ],
            Input::BuildNix => vec![file("build.nix", BUILD_NIX.as_bytes())],
            Input::FailNix => vec![file("fail.nix", FAIL_NIX.as_bytes())],
            Input::RefsNix => vec![file("refs.nix", REFS_NIX.as_bytes())],
            Input::InspectNix => vec![file("inspect.nix", INSPECT_NIX.as_bytes())],
            Input::IfdNix => vec![file("ifd.nix", IFD_NIX.as_bytes())],
            Input::Large => vec![InputFile {
                path: "large.bin",
                kind: InputKind::File {
                    contents: Cow::Owned(pseudo_random_bytes(LARGE_INPUT_LEN, LARGE_INPUT_SEED)),
                    executable: false,
                },
            }],
        }
    }
}

/// Which store a step's client talks to (`NIX_REMOTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StoreRole {
    /// The store under test, which a recorder sits in front of.
    Main,
    /// The second store of the `copy` scenario (the source of `nix copy --to`).
    Source,
}

/// Whether a step is expected to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Expect {
    /// Exit status 0.
    Success,
    /// A non-zero exit status.
    Failure,
}

/// One client invocation of a scenario.
///
/// Arguments starting with `$` name a variable bound by an earlier step; the arguments
/// [`STORE`] and [`SOURCE_STORE`] stand for the stores' URIs. Input paths are relative to the
/// working directory, so argument vectors hold no machine paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The client program (`nix-store`, `nix-build`, `nix`).
    pub program: &'static str,
    /// The arguments, with variables and store placeholders.
    pub args: Vec<&'static str>,
    /// The store the client talks to.
    pub store: StoreRole,
    /// A file in the working directory to use as standard input (default: empty input).
    pub stdin_file: Option<&'static str>,
    /// A file in the working directory to write standard output to (default: captured).
    pub stdout_file: Option<&'static str>,
    /// A variable to bind to the first line of standard output.
    pub binds: Option<&'static str>,
    /// Whether the step should succeed.
    pub expect: Expect,
}

impl Step {
    /// A step that runs `program args` against the main store and should succeed.
    pub fn new(program: &'static str, args: &[&'static str]) -> Step {
        Step {
            program,
            args: args.to_vec(),
            store: StoreRole::Main,
            stdin_file: None,
            stdout_file: None,
            binds: None,
            expect: Expect::Success,
        }
    }

    /// Runs the step against `store` instead of the main store.
    pub fn on(mut self, store: StoreRole) -> Step {
        self.store = store;
        self
    }

    /// Binds the first line of the step's standard output to `$var`.
    pub fn binds(mut self, var: &'static str) -> Step {
        self.binds = Some(var);
        self
    }

    /// Feeds the working directory's `file` to the client's standard input.
    pub fn stdin_from(mut self, file: &'static str) -> Step {
        self.stdin_file = Some(file);
        self
    }

    /// Writes the client's standard output to the working directory's `file`.
    pub fn stdout_to(mut self, file: &'static str) -> Step {
        self.stdout_file = Some(file);
        self
    }

    /// Expects the step to fail.
    pub fn fails(mut self) -> Step {
        self.expect = Expect::Failure;
        self
    }
}

/// A named, deterministic scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The name, also the capture's file name.
    pub name: &'static str,
    /// One sentence saying what the scenario does, with a final full stop.
    pub summary: &'static str,
    /// The inputs written into the working directory before the steps run.
    pub inputs: &'static [Input],
    /// Whether the scenario needs a source store besides the main one (`copy`).
    pub needs_source: bool,
    /// For the scenarios of [`REMOTE_SCENARIOS`], the kind of SSH store the main store is
    /// reached as: its remote program runs on this machine (host `localhost`), and the
    /// recording is that program's session (`nixcap record --stdio`).
    pub remote: Option<Remote>,
    /// Builds the steps for a client of the given version.
    steps: fn(&Peer) -> Vec<Step>,
}

/// An SSH store kind, for [`Scenario::remote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Remote {
    /// `ssh-ng://`: the remote program is `nix-daemon --stdio` (the worker protocol).
    SshNg,
    /// `ssh://`: the remote program is `nix-store --serve --write` (the serve protocol).
    Ssh,
}

impl Remote {
    /// The URI scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Remote::SshNg => "ssh-ng",
            Remote::Ssh => "ssh",
        }
    }

    /// The real remote program, to which Nix appends its arguments.
    pub fn program(self) -> &'static str {
        match self {
            Remote::SshNg => "nix-daemon",
            Remote::Ssh => "nix-store",
        }
    }
}

/// The scenarios whose main store is an SSH store (`ssh-ng://`, `ssh://`) on `localhost`,
/// recorded as its remote program's session rather than through a socket, in a fixed order.
/// They are kept apart from [`SCENARIOS`], whose main store is a socket.
pub const REMOTE_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "copy-ssh-ng",
        summary: "Adds a file to a source store and copies it with `nix copy --to \
                  ssh-ng://localhost?remote-program=…` to the main store, whose remote program \
                  (`nix-daemon --stdio` in front of a fresh daemon) is recorded with `nixcap \
                  record --stdio`; the source store is recorded into `copy-ssh-ng.source.nixcap`.",
        inputs: &[Input::Hello],
        needs_source: true,
        remote: Some(Remote::SshNg),
        steps: remote_copy_steps,
    },
    Scenario {
        name: "copy-ssh",
        summary: "Adds a file to a source store and copies it with `nix copy --to \
                  ssh://localhost?remote-program=…` (the serve protocol) to the main store, whose \
                  remote program (`nix-store --serve --write` on a fresh daemon's store) is \
                  recorded with `nixcap record --stdio`; the source store is recorded into \
                  `copy-ssh.source.nixcap`.",
        inputs: &[Input::Hello],
        needs_source: true,
        remote: Some(Remote::Ssh),
        steps: remote_copy_steps,
    },
];

/// Every scenario, in a fixed order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "add",
        summary: "Adds a file and a directory with `nix-store --add`, then the same file again.",
        inputs: &[Input::Hello, Input::Dir],
        needs_source: false,
        remote: None,
        steps: add_steps,
    },
    Scenario {
        name: "add-fixed",
        summary: "Adds a file flat and a directory recursively with `nix-store --add-fixed sha256`.",
        inputs: &[Input::Hello, Input::Dir],
        needs_source: false,
        remote: None,
        steps: add_fixed_steps,
    },
    Scenario {
        name: "query",
        summary: "Adds a file, builds a derivation whose output refers to it, then queries the \
                  output's references, the file's referrers, and the output's hash, size, \
                  deriver, requisites and tree with `nix-store -q`.",
        inputs: &[Input::Hello, Input::Dir, Input::RefsNix],
        needs_source: false,
        remote: None,
        steps: query_steps,
    },
    Scenario {
        name: "build",
        summary: "Builds the trivial derivation with `nix-build`, leaving a `result` link.",
        inputs: &[Input::BuildNix],
        needs_source: false,
        remote: None,
        steps: build_steps,
    },
    Scenario {
        name: "build-fail",
        summary: "Builds a derivation whose builder writes to stderr and exits 1 (`nix-build` fails).",
        inputs: &[Input::FailNix],
        needs_source: false,
        remote: None,
        steps: build_fail_steps,
    },
    Scenario {
        name: "path-info",
        summary: "Builds a derivation with references, then runs `nix path-info --json -r` on its output.",
        inputs: &[Input::Hello, Input::Dir, Input::RefsNix],
        needs_source: false,
        remote: None,
        steps: path_info_steps,
    },
    Scenario {
        name: "store-info",
        summary: "Asks for the daemon's version: `nix store ping` (Nix 2.8) or `nix store info` (Nix 2.26 and later).",
        inputs: &[],
        needs_source: false,
        remote: None,
        steps: store_info_steps,
    },
    Scenario {
        name: "copy",
        summary: "Builds a derivation with references in a source store, copies its closure to the \
                  main store with `nix copy --to`, and queries it there; both stores are \
                  recorded, the main (destination) store into `copy.nixcap` and the source \
                  store into `copy.source.nixcap`.",
        inputs: &[Input::Hello, Input::Dir, Input::RefsNix],
        needs_source: true,
        remote: None,
        steps: copy_steps,
    },
    Scenario {
        name: "export-import",
        summary: "Adds a file, exports it with `nix-store --export`, deletes it, and imports the export.",
        inputs: &[Input::Hello],
        needs_source: false,
        remote: None,
        steps: export_import_steps,
    },
    Scenario {
        name: "add-large",
        summary: "Adds a 1 MiB pseudo-random file with `nix-store --add`, then queries its hash.",
        inputs: &[Input::Large],
        needs_source: false,
        remote: None,
        steps: add_large_steps,
    },
];

/// The scenario of self-contained captures; not in [`SCENARIOS`] until its committed
/// captures are recorded. [`scenario`] finds it.
pub const INSPECT: Scenario = Scenario {
    name: "inspect",
    summary: "Builds a derivation, then reads what the daemon made without sending it: \
                  verifies the output (`nix store verify`, on Nix 2.8 `nix-store --verify-path`), \
                  prints it (`nix store cat`) and its NAR (`nix store dump-path`), prints the \
                  build log (`nix log`, `nix-store --read-log`), and evaluates an expression that \
                  imports the output of a derivation it builds.",
    inputs: &[Input::InspectNix, Input::IfdNix],
    needs_source: false,
    remote: None,
    steps: inspect_steps,
};

fn inspect_steps(client: &Peer) -> Vec<Step> {
    let mut steps = vec![
        Step::new("nix-build", &["--no-out-link", "inspect.nix"]).binds("OUT"),
        Step::new("nix-store", &["-q", "--deriver", "$OUT"]).binds("DRV"),
    ];
    if client.at_least(2, 26) {
        steps.push(Step::new("nix", &["store", "verify", "$OUT"]));
    } else {
        steps.push(Step::new("nix-store", &["--verify-path", "$OUT"]));
    }
    // `nix-store --dump` is left out: against a store with `root=`, Nix 2.8 reads the path
    // outside the root and Nix 2.26 and 2.34 look for it at `/` + the store path, so it fails
    // live already. `nix store dump-path` writes the same NAR through the store.
    steps.push(Step::new("nix", &["store", "cat", "$OUT"]));
    steps.push(Step::new("nix", &["store", "dump-path", "$OUT"]));
    steps.extend([
        Step::new("nix", &["log", "$DRV"]),
        Step::new("nix-store", &["--read-log", "$DRV"]),
        Step::new("nix", &["eval", "--file", "ifd.nix"]),
    ]);
    steps
}

fn add_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-store", &["--add", "hello.txt"]),
        Step::new("nix-store", &["--add", "dir"]),
        Step::new("nix-store", &["--add", "hello.txt"]),
    ]
}

fn add_fixed_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-store", &["--add-fixed", "sha256", "hello.txt"]),
        Step::new(
            "nix-store",
            &["--add-fixed", "--recursive", "sha256", "dir"],
        ),
    ]
}

fn query_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-store", &["--add", "hello.txt"]).binds("FILE"),
        Step::new("nix-build", &["--no-out-link", "refs.nix"]).binds("OUT"),
        Step::new("nix-store", &["-q", "--references", "$OUT"]),
        Step::new("nix-store", &["-q", "--referrers", "$FILE"]),
        Step::new("nix-store", &["-q", "--hash", "$OUT"]),
        Step::new("nix-store", &["-q", "--size", "$OUT"]),
        Step::new("nix-store", &["-q", "--deriver", "$OUT"]),
        Step::new("nix-store", &["-q", "--requisites", "$OUT"]),
        Step::new("nix-store", &["-q", "--tree", "$OUT"]),
    ]
}

fn build_steps(_client: &Peer) -> Vec<Step> {
    vec![Step::new("nix-build", &["build.nix"])]
}

fn build_fail_steps(_client: &Peer) -> Vec<Step> {
    vec![Step::new("nix-build", &["--no-out-link", "fail.nix"]).fails()]
}

fn path_info_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-build", &["--no-out-link", "refs.nix"]).binds("OUT"),
        Step::new("nix", &["path-info", "--json", "-r", "$OUT"]),
    ]
}

fn store_info_steps(client: &Peer) -> Vec<Step> {
    // `nix store info` replaced `nix store ping`, which later versions still accept with a
    // deprecation warning.
    if client.at_least(2, 26) {
        vec![Step::new("nix", &["store", "info"])]
    } else {
        vec![Step::new("nix", &["store", "ping"])]
    }
}

fn copy_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-build", &["--no-out-link", "refs.nix"])
            .on(StoreRole::Source)
            .binds("OUT"),
        Step::new("nix", &["copy", "--to", STORE, "$OUT"]).on(StoreRole::Source),
        Step::new("nix-store", &["-q", "--requisites", "$OUT"]),
    ]
}

fn remote_copy_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-store", &["--add", "hello.txt"])
            .on(StoreRole::Source)
            .binds("FILE"),
        Step::new("nix", &["copy", "--to", STORE, "$FILE"]).on(StoreRole::Source),
    ]
}

fn export_import_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-store", &["--add", "hello.txt"]).binds("FILE"),
        // The client reads the NAR from the store's directory (`root=`); only the path's
        // metadata crosses the socket.
        Step::new("nix-store", &["--export", "$FILE"]).stdout_to("hello.export"),
        // The daemon's worker for the `--add` held a temporary root for the path until its
        // client disconnected; it has exited long before, while `--export` ran. (Daemons
        // refuse `--ignore-liveness` from clients.)
        Step::new("nix-store", &["--delete", "$FILE"]),
        Step::new("nix-store", &["--import"]).stdin_from("hello.export"),
    ]
}

fn add_large_steps(_client: &Peer) -> Vec<Step> {
    vec![
        Step::new("nix-store", &["--add", "large.bin"]).binds("FILE"),
        Step::new("nix-store", &["-q", "--hash", "$FILE"]),
    ]
}

/// Finds a scenario of [`SCENARIOS`] or [`REMOTE_SCENARIOS`], or [`INSPECT`], by name.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    all_scenarios()
        .chain(std::iter::once(&INSPECT))
        .find(|scenario| scenario.name == name)
}

/// [`SCENARIOS`], then [`REMOTE_SCENARIOS`].
pub fn all_scenarios() -> impl Iterator<Item = &'static Scenario> {
    SCENARIOS.iter().chain(REMOTE_SCENARIOS)
}

/// How a client reaches one store: the URI it uses, and the directories behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAccess {
    uri: String,
    /// The socket, or the remote program of an SSH store.
    socket: PathBuf,
    root: PathBuf,
    /// More directories a chroot client must see.
    extra_dirs: Vec<PathBuf>,
}

impl StoreAccess {
    /// Talks to `daemon` directly.
    pub fn direct(daemon: &Daemon) -> StoreAccess {
        StoreAccess::via(daemon, daemon.socket_path())
    }

    /// Talks to `daemon` through another socket that leads to it (a recorder).
    pub fn via(daemon: &Daemon, socket: &Path) -> StoreAccess {
        StoreAccess {
            uri: daemon.uri_via(socket),
            socket: socket.to_path_buf(),
            root: daemon.store_root().to_path_buf(),
            extra_dirs: Vec::new(),
        }
    }

    /// An SSH store of kind `remote` on `localhost` whose remote program is `program` (which
    /// Nix runs itself for that host, with no `ssh`); a chroot client is also given `dirs`
    /// (what the program needs: its own directory is given already).
    pub fn remote(remote: Remote, program: &Path, dirs: &[PathBuf]) -> StoreAccess {
        let parent = program.parent().map(Path::to_path_buf).unwrap_or_default();
        StoreAccess {
            uri: format!(
                "{}://localhost?remote-program={}",
                remote.scheme(),
                program.display()
            ),
            socket: program.to_path_buf(),
            root: parent,
            extra_dirs: dirs.to_vec(),
        }
    }

    /// The store URI clients are given.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The directories a chroot client must see: the socket's and the store root.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.root.clone()];
        if let Some(parent) = self.socket.parent() {
            dirs.push(parent.to_path_buf());
        }
        dirs.extend(self.extra_dirs.iter().cloned());
        dirs
    }
}

/// The stores a scenario runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stores {
    /// The store under test.
    pub main: StoreAccess,
    /// The source store, for scenarios that need one ([`Scenario::needs_source`]).
    pub source: Option<StoreAccess>,
}

impl Stores {
    /// Only a main store.
    pub fn main(main: StoreAccess) -> Stores {
        Stores { main, source: None }
    }

    /// A main store and a source store.
    pub fn with_source(main: StoreAccess, source: StoreAccess) -> Stores {
        Stores {
            main,
            source: Some(source),
        }
    }

    fn get(&self, role: StoreRole) -> Option<&StoreAccess> {
        match role {
            StoreRole::Main => Some(&self.main),
            StoreRole::Source => self.source.as_ref(),
        }
    }

    /// The machine-specific strings and their placeholders, longest first, so that a URI is
    /// replaced before the socket path and root directory inside it.
    fn placeholders(&self, work: &Path) -> Vec<(String, &'static str)> {
        let mut pairs = vec![
            (self.main.uri.clone(), STORE),
            (self.main.socket.display().to_string(), SOCKET),
            (self.main.root.display().to_string(), ROOT),
            (work.display().to_string(), WORK),
        ];
        if let Some(source) = &self.source {
            pairs.push((source.uri.clone(), SOURCE_STORE));
            pairs.push((source.socket.display().to_string(), SOURCE_SOCKET));
            pairs.push((source.root.display().to_string(), SOURCE_ROOT));
        }
        pairs.sort_by_key(|pair| std::cmp::Reverse(pair.0.len()));
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn scenario_names_are_unique_file_names() {
        let mut names: Vec<&str> = all_scenarios().map(|s| s.name).collect();
        assert_eq!(names.len(), 12);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len() + REMOTE_SCENARIOS.len());
        assert!(SCENARIOS.iter().all(|s| s.remote.is_none()));
        assert!(REMOTE_SCENARIOS
            .iter()
            .all(|s| s.remote.is_some() && s.needs_source));
        for name in names {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
            assert_eq!(scenario(name).map(|s| s.name), Some(name));
        }
    }

    #[test]
    fn pseudo_random_bytes_are_fixed() {
        let bytes = pseudo_random_bytes(LARGE_INPUT_LEN, LARGE_INPUT_SEED);
        assert_eq!(bytes.len(), LARGE_INPUT_LEN);
        assert_eq!(
            bytes,
            pseudo_random_bytes(LARGE_INPUT_LEN, LARGE_INPUT_SEED)
        );
        assert_eq!(pseudo_random_bytes(13, 7), pseudo_random_bytes(16, 7)[..13]);
        // SplitMix64's first output for seed 0 is a published test value.
        assert_eq!(
            pseudo_random_bytes(8, 0),
            0xe220_a839_7b1d_cdaf_u64.to_le_bytes()
        );
    }

    #[test]
    fn inputs_are_written_with_their_modes() {
        let work = tempfile::tempdir().unwrap();
        let records = scenario("add").unwrap().write_inputs(work.path()).unwrap();
        let paths: Vec<&str> = records.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "hello.txt",
                "dir",
                "dir/a.txt",
                "dir/sub",
                "dir/sub/b.txt",
                "dir/run.sh",
                "dir/link"
            ]
        );
        let mode = fs::metadata(work.path().join("dir/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert_eq!(
            fs::read_link(work.path().join("dir/link")).unwrap(),
            Path::new("a.txt")
        );
        assert_eq!(
            records[0].sha256.as_deref(),
            Some(sha256_hex(HELLO_TXT).as_str())
        );
    }

    #[test]
    fn volatile_numbers_are_masked() {
        assert_eq!(
            mask_volatile(r#"[{"registrationTime":1795556068},{"registrationTime":17}]"#),
            r#"[{"registrationTime":@TIME@},{"registrationTime":@TIME@}]"#
        );
        assert_eq!(
            mask_volatile("removing stale temporary roots file \"/nix/var/nix/temproots/8790\"\n"),
            "removing stale temporary roots file \"/nix/var/nix/temproots/@PID@\"\n"
        );
        assert_eq!(mask_volatile("registrationTime 5"), "registrationTime 5");
    }

    #[test]
    fn sha256_hex_matches_a_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn placeholders_replace_uris_before_their_parts() {
        let stores = Stores::main(StoreAccess {
            uri: "unix:///r/sock?root=/r".to_owned(),
            socket: PathBuf::from("/r/sock"),
            root: PathBuf::from("/r"),
            extra_dirs: Vec::new(),
        });
        let pairs = stores.placeholders(Path::new("/w"));
        let order: Vec<&str> = pairs.iter().map(|(_, p)| *p).collect();
        assert_eq!(order, [STORE, SOCKET, ROOT, WORK]);
    }
}
