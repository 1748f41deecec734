//! Running a Nix client of a given version, in a clean environment, against a chosen store.
//!
//! Host clients run directly. Chroot clients run through the `unshare`/`chroot` wrapper, with
//! their working directory, their home, the socket's directory and the store's `root` directory
//! bound into the chroot at the same paths, so no path ever needs translating.
//! Any other directory a chroot client must see (input files, a recorder's socket directory)
//! is added with [`NixCommand::bind_dir`]; the directories of a `unix://` store URI are bound
//! automatically.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};

use crate::daemon::Daemon;
use crate::error::HarnessError;
use crate::namespace::{Namespace, ScratchDir};
use crate::peer::Peer;

/// The uid and gid of `nobody`, for clients the daemon must not trust.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// The store a client uses when none is given: every store operation fails, and no store is
/// ever created in the real `/nix`.
const NO_STORE: &str = "dummy://";

impl Peer {
    /// Starts building a client command (`nix`, `nix-store`, `nix-build`, …) of this version.
    pub fn command(&self, program: impl AsRef<OsStr>) -> NixCommand {
        NixCommand::new(self.clone(), program.as_ref())
    }
}

/// A builder for one client invocation, like [`std::process::Command`].
///
/// Every invocation gets a fresh, empty `HOME`, an empty `NIX_CONF_DIR`,
/// `NIX_CONFIG` enabling `nix-command` with no substituters, `NIX_PAGER=cat`, and `NIX_REMOTE`
/// set to the chosen store (or `dummy://` when none is chosen). No variable of the test
/// process leaks in. The working directory defaults to the fresh `HOME`.
#[derive(Debug)]
pub struct NixCommand {
    peer: Peer,
    program: OsString,
    args: Vec<OsString>,
    remote: Option<String>,
    env: Vec<(OsString, OsString)>,
    bind_dirs: Vec<PathBuf>,
    current_dir: Option<PathBuf>,
    user: Option<(u32, u32)>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

impl NixCommand {
    pub(crate) fn new(peer: Peer, program: &OsStr) -> Self {
        NixCommand {
            peer,
            program: program.to_owned(),
            args: Vec::new(),
            remote: None,
            env: Vec::new(),
            bind_dirs: Vec::new(),
            current_dir: None,
            user: None,
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Talks to `daemon` directly (`NIX_REMOTE` = [`Daemon::store_uri`]).
    pub fn store(&mut self, daemon: &Daemon) -> &mut Self {
        self.remote(daemon.store_uri())
    }

    /// Uses the store URI `uri` as `NIX_REMOTE`, for example a recorder's socket made with
    /// [`Daemon::uri_via`]. For `unix://` URIs, the socket's directory and the `root`
    /// directory are bound into a chroot client.
    pub fn remote(&mut self, uri: impl Into<String>) -> &mut Self {
        self.remote = Some(uri.into());
        self
    }

    /// Sets an environment variable; it overrides the harness's defaults.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Binds a host directory into a chroot client at the same path (no effect on the host).
    /// It must be absolute and exist.
    pub fn bind_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.bind_dirs.push(dir.into());
        self
    }

    /// Sets the working directory; it is bound into a chroot client.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Runs the client as `uid`:`gid` with no supplementary groups (through `setpriv`).
    /// A daemon trusts only root, so this exercises the untrusted-client path. The working
    /// directory and input files must be readable by that user.
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.user = Some((uid, gid));
        self
    }

    /// Runs the client as `nobody`, which the daemon does not trust.
    pub fn untrusted(&mut self) -> &mut Self {
        self.as_user(NOBODY.0, NOBODY.1)
    }

    /// Sets the client's standard input (default: null for `output` and `status`).
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Self {
        self.stdin = Some(stdio.into());
        self
    }

    /// Sets the client's standard output.
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Self {
        self.stdout = Some(stdio.into());
        self
    }

    /// Sets the client's standard error.
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Self {
        self.stderr = Some(stdio.into());
        self
    }

    /// The command line with its Nix version, for messages.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "[Nix {}] {}",
            self.peer.nix_version(),
            self.program.to_string_lossy()
        );
        for arg in &self.args {
            let _ = write!(text, " {}", arg.to_string_lossy());
        }
        text
    }

    /// Starts the client; standard streams are inherited unless set.
    /// Keep the returned [`NixChild`] until the client ends: it owns the client's `HOME`.
    pub fn spawn(&mut self) -> Result<NixChild, HarnessError> {
        let (mut command, scratch) = self.prepare()?;
        if let Some(stdin) = self.stdin.take() {
            command.stdin(stdin);
        }
        if let Some(stdout) = self.stdout.take() {
            command.stdout(stdout);
        }
        if let Some(stderr) = self.stderr.take() {
            command.stderr(stderr);
        }
        let child = command.spawn().map_err(|source| HarnessError::Process {
            command: self.describe(),
            source,
        })?;
        Ok(NixChild {
            child,
            _scratch: scratch,
            description: self.describe(),
        })
    }

    /// Runs the client to completion and collects its output.
    /// Standard input is null and the outputs are captured unless set otherwise.
    pub fn output(&mut self) -> Result<Output, HarnessError> {
        self.stdin.get_or_insert_with(Stdio::null);
        self.stdout.get_or_insert_with(Stdio::piped);
        self.stderr.get_or_insert_with(Stdio::piped);
        self.spawn()?.wait_with_output()
    }

    /// Runs the client to completion and returns its exit status.
    /// Standard input is null and the outputs are inherited unless set otherwise.
    pub fn status(&mut self) -> Result<ExitStatus, HarnessError> {
        self.stdin.get_or_insert_with(Stdio::null);
        self.spawn()?.wait()
    }

    /// Runs the client and panics, showing its output, unless it succeeds.
    pub fn output_ok(&mut self) -> Output {
        let description = self.describe();
        let output = match self.output() {
            Ok(output) => output,
            Err(err) => panic!("{description}: {err}"),
        };
        if !output.status.success() {
            panic!(
                "{description} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        output
    }

    /// Runs the client, panics unless it succeeds, and returns its standard output as text
    /// without the final newline.
    pub fn stdout_ok(&mut self) -> String {
        let output = self.output_ok();
        let text = String::from_utf8_lossy(&output.stdout);
        text.strip_suffix('\n').unwrap_or(&text).to_owned()
    }

    /// Builds the process command and the scratch directory that holds the client's home.
    fn prepare(&self) -> Result<(std::process::Command, ScratchDir), HarnessError> {
        let chroot = self.peer.chroot();
        let scratch = ScratchDir::create(None)?;
        let home = scratch.path.clone();
        let conf_dir = home.join(".nixcap-empty-conf");
        std::fs::create_dir(&conf_dir)
            .map_err(|err| HarnessError::io("creating", &conf_dir, err))?;
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(&home, Some(uid), Some(gid))
                .map_err(|err| HarnessError::io("changing the owner of", &home, err))?;
        }
        let workdir = match &self.current_dir {
            Some(dir) => dir
                .canonicalize()
                .map_err(|err| HarnessError::io("resolving", dir, err))?,
            None => home.clone(),
        };
        let remote = self.remote.clone().unwrap_or_else(|| NO_STORE.to_owned());

        let mut bind_dirs = vec![home.clone(), workdir.clone()];
        bind_dirs.extend(unix_uri_dirs(&remote));
        bind_dirs.extend(self.bind_dirs.iter().cloned());

        let (program, args) = match self.user {
            None => (self.program.clone(), self.args.clone()),
            Some((uid, gid)) => {
                let mut args: Vec<OsString> = vec![
                    format!("--reuid={uid}").into(),
                    format!("--regid={gid}").into(),
                    "--clear-groups".into(),
                    self.program.clone(),
                ];
                args.extend(self.args.iter().cloned());
                (OsString::from("setpriv"), args)
            }
        };
        let namespace = Namespace {
            chroot: chroot.map(Path::to_path_buf),
            nix_source: None,
            bind_dirs: if chroot.is_some() {
                bind_dirs
            } else {
                Vec::new()
            },
            setpriv_outer: Vec::new(),
            workdir: Some(workdir),
        };
        let mut command = namespace.command(&program, &args)?;
        command
            .env("HOME", &home)
            .env("NIX_CONF_DIR", &conf_dir)
            .env(
                "NIX_CONFIG",
                "experimental-features = nix-command\nsubstituters =",
            )
            .env("NIX_PAGER", "cat")
            .env("NIX_REMOTE", &remote)
            .envs(self.env.iter().map(|(key, value)| (key, value)));
        Ok((command, scratch))
    }
}

/// A running client started by [`NixCommand::spawn`]. It owns the client's home directory,
/// which is deleted when this is dropped.
#[derive(Debug)]
pub struct NixChild {
    child: Child,
    _scratch: ScratchDir,
    description: String,
}

impl NixChild {
    /// The client's pid (the pid of the wrapper, which becomes the client).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The underlying process, for example to write to its standard input.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the client to end.
    pub fn wait(mut self) -> Result<ExitStatus, HarnessError> {
        self.child.wait().map_err(|source| HarnessError::Process {
            command: self.description.clone(),
            source,
        })
    }

    /// Waits for the client to end and collects the outputs that were piped.
    pub fn wait_with_output(self) -> Result<Output, HarnessError> {
        let NixChild {
            child,
            _scratch,
            description,
        } = self;
        child
            .wait_with_output()
            .map_err(|source| HarnessError::Process {
                command: description,
                source,
            })
    }
}

/// The host directories a `unix://` store URI refers to: the socket's directory and the
/// `root` parameter. Other URIs refer to none.
fn unix_uri_dirs(uri: &str) -> Vec<PathBuf> {
    let Some(rest) = uri
        .strip_prefix("unix://")
        .or_else(|| uri.strip_prefix("unix:"))
    else {
        return Vec::new();
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut dirs = Vec::new();
    let socket = Path::new(path);
    if socket.is_absolute() {
        // A socket directly in `/` cannot be bound; the client then cannot reach it.
        if let Some(parent) = socket.parent().filter(|parent| *parent != Path::new("/")) {
            dirs.push(parent.to_path_buf());
        }
    }
    for param in query.split('&') {
        if let Some(root) = param.strip_prefix("root=") {
            if Path::new(root).is_absolute() {
                dirs.push(PathBuf::from(root));
            }
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_uris_name_their_directories() {
        assert_eq!(
            unix_uri_dirs("unix:///tmp/a/sock?root=/tmp/b"),
            [PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]
        );
        assert_eq!(unix_uri_dirs("unix:/tmp/a/sock"), [PathBuf::from("/tmp/a")]);
        assert_eq!(
            unix_uri_dirs("unix:///s?trusted=1&root=/r"),
            [PathBuf::from("/r")]
        );
        assert!(unix_uri_dirs("daemon").is_empty());
        assert!(unix_uri_dirs("dummy://").is_empty());
        assert!(unix_uri_dirs("unix://relative/sock").is_empty());
    }
}
