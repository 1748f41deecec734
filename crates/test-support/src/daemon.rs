//! A real `nix-daemon` on its own socket, with a throw-away store.
//!
//! Each daemon gets a fresh state directory holding its socket (`sock`), its configuration
//! (`conf/nix.conf`), `home`, `tmp`, its log (`daemon.log`) and its store files (`nix`).
//! The daemon runs in a private mount namespace in which `<state>/nix` is mounted on `/nix`,
//! so store paths are the usual `/nix/store/…` ones while the files live in the state directory.
//! Clients therefore use `unix://<state>/sock?root=<state>` ([`Daemon::store_uri`]): the `root`
//! parameter lets them read `.drv` files, logs and outputs straight from the state directory.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nixcap_socket::MAX_SOCKET_PATH;

use crate::error::HarnessError;
use crate::namespace::{Namespace, ScratchDir};
use crate::peer::Peer;
use crate::sys;

/// The configuration every daemon gets; it works offline on every supported version.
const BASE_CONF: &str = "\
substituters =
build-users-group =
experimental-features = nix-command
sandbox = false
require-sigs = false
fsync-metadata = false
max-jobs = 1
";

/// How to start a [`Daemon`].
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    upstream: Option<Upstream>,
    conf: Vec<String>,
    bind_dirs: Vec<PathBuf>,
    env: Vec<(OsString, OsString)>,
    start_timeout: Duration,
    stop_with_thread: bool,
    state_parent: Option<PathBuf>,
}

/// The store a chained daemon forwards to.
#[derive(Debug, Clone)]
struct Upstream {
    socket: PathBuf,
    root: PathBuf,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            upstream: None,
            conf: Vec::new(),
            bind_dirs: Vec::new(),
            env: Vec::new(),
            start_timeout: Duration::from_secs(10),
            stop_with_thread: true,
            state_parent: None,
        }
    }
}

impl DaemonOptions {
    /// The default options: a daemon with its own local store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the daemon a proxy whose store is `upstream` (`--store unix://<its socket>`).
    /// Clients of the proxy read store files from the upstream's state directory.
    pub fn upstream(self, upstream: &Daemon) -> Self {
        self.upstream_socket(upstream.socket_path(), upstream.store_root())
    }

    /// Makes the daemon a proxy whose store is the daemon socket `socket` (for example a
    /// recorder in front of another daemon). `store_root` is the `root` directory clients
    /// read store files from. The socket's directory is bound into a chroot daemon.
    pub fn upstream_socket(
        mut self,
        socket: impl Into<PathBuf>,
        store_root: impl Into<PathBuf>,
    ) -> Self {
        self.upstream = Some(Upstream {
            socket: socket.into(),
            root: store_root.into(),
        });
        self
    }

    /// Appends a line to the daemon's `nix.conf`; a later line overrides an earlier setting,
    /// so `conf("require-sigs = true")` overrides the default.
    pub fn conf(mut self, line: impl Into<String>) -> Self {
        self.conf.push(line.into());
        self
    }

    /// Binds a host directory into a chroot daemon at the same path (ignored on the host).
    /// A chroot daemon sees client directories only this way, which matters for
    /// garbage collection: it removes indirect roots (`result` links) it cannot see.
    pub fn bind_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bind_dirs.push(dir.into());
        self
    }

    /// Sets an extra environment variable for the daemon.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long to wait for the daemon to listen (default 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Whether the kernel sends the daemon SIGTERM when the thread that started it ends
    /// (default `true`), so that a test process killed before `Drop` runs leaves no daemon
    /// behind. Turn it off for a daemon that a short-lived thread starts and others use.
    pub fn stop_with_thread(mut self, enabled: bool) -> Self {
        self.stop_with_thread = enabled;
        self
    }

    /// The directory in which the state directory is created (default: the temp directory,
    /// or `/tmp` when that would make the socket path too long).
    pub fn state_parent(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_parent = Some(dir.into());
        self
    }
}

impl Peer {
    /// Starts a daemon of this version; see [`Daemon::start`].
    pub fn start_daemon(&self, options: DaemonOptions) -> Daemon {
        Daemon::start(self, options)
    }
}

/// A running `nix-daemon` that this harness started. Dropping it stops the daemon and deletes
/// its state directory.
#[derive(Debug)]
pub struct Daemon {
    peer: Peer,
    child: Option<Child>,
    state: Option<ScratchDir>,
    state_dir: PathBuf,
    socket: PathBuf,
    store_root: PathBuf,
    startup_time: Duration,
}

impl Daemon {
    /// Starts a daemon of `peer`'s version and waits until it listens.
    /// Panics with the daemon's log if it does not come up.
    pub fn start(peer: &Peer, options: DaemonOptions) -> Daemon {
        match Daemon::try_start(peer, options) {
            Ok(daemon) => daemon,
            Err(err) => panic!("cannot start nix-daemon {}: {err}", peer.nix_version()),
        }
    }

    /// Starts a daemon of `peer`'s version and waits until it listens.
    pub fn try_start(peer: &Peer, options: DaemonOptions) -> Result<Daemon, HarnessError> {
        let started = Instant::now();
        let state = ScratchDir::create(options.state_parent.as_deref())?;
        let state_dir = state.path.clone();
        let socket = state_dir.join("sock");
        check_socket_path(&socket)?;
        for sub in ["conf", "home", "tmp", "nix"] {
            let dir = state_dir.join(sub);
            fs::create_dir(&dir).map_err(|err| HarnessError::io("creating", &dir, err))?;
        }
        let mut conf = BASE_CONF.to_owned();
        for line in &options.conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_file = state_dir.join("conf/nix.conf");
        fs::write(&conf_file, conf).map_err(|err| HarnessError::io("writing", &conf_file, err))?;
        let log_file = state_dir.join("daemon.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(|err| HarnessError::io("creating", &log_file, err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| HarnessError::io("duplicating", &log_file, err))?;

        let mut bind_dirs = vec![state_dir.clone()];
        let store_arg = match &options.upstream {
            None => "local".to_owned(),
            Some(upstream) => {
                if let Some(parent) = upstream.socket.parent() {
                    bind_dirs.push(parent.to_path_buf());
                }
                format!("unix://{}", upstream.socket.display())
            }
        };
        bind_dirs.extend(options.bind_dirs.iter().cloned());
        let namespace = Namespace {
            chroot: peer.chroot().map(Path::to_path_buf),
            // A proxy has no store of its own, but an empty `/nix` keeps any stray store
            // access inside the state directory.
            nix_source: Some(state_dir.join("nix")),
            bind_dirs,
            setpriv_outer: if options.stop_with_thread {
                vec!["--pdeathsig".into(), "TERM".into()]
            } else {
                Vec::new()
            },
            workdir: None,
        };
        let mut command =
            namespace.command("nix-daemon".as_ref(), &["--store".into(), store_arg.into()])?;
        command
            .env("HOME", state_dir.join("home"))
            .env("TMPDIR", state_dir.join("tmp"))
            .env("NIX_CONF_DIR", state_dir.join("conf"))
            .env("NIX_DAEMON_SOCKET_PATH", &socket)
            .envs(options.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let mut child = command.spawn().map_err(|source| HarnessError::Process {
            command: format!("nix-daemon {}", peer.nix_version()),
            source,
        })?;

        let deadline = started + options.start_timeout;
        loop {
            if is_listening(&socket) {
                break;
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Err(HarnessError::DaemonExited {
                        version: peer.nix_version().to_owned(),
                        status,
                        log: read_log(&log_file),
                    })
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(HarnessError::Process {
                        command: format!("nix-daemon {}", peer.nix_version()),
                        source,
                    })
                }
            }
            if Instant::now() >= deadline {
                let log = read_log(&log_file);
                stop_child(&mut child);
                return Err(HarnessError::DaemonTimeout {
                    version: peer.nix_version().to_owned(),
                    socket,
                    waited: options.start_timeout,
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }

        let store_root = match &options.upstream {
            Some(upstream) => upstream.root.clone(),
            None => state_dir.clone(),
        };
        Ok(Daemon {
            peer: peer.clone(),
            child: Some(child),
            state: Some(state),
            state_dir,
            socket,
            store_root,
            startup_time: started.elapsed(),
        })
    }

    /// The version of this daemon.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The daemon's socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The daemon's state directory (socket, configuration, log and store files).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The directory clients pass as `root`: store path `/nix/store/X` is the host file
    /// `<store_root>/nix/store/X`. For a proxy, this is the upstream's directory.
    pub fn store_root(&self) -> &Path {
        &self.store_root
    }

    /// The store URI clients use: `unix://<socket>?root=<store_root>`.
    pub fn store_uri(&self) -> String {
        self.uri_via(&self.socket)
    }

    /// The store URI of another socket that leads to this daemon (a recorder or relay in
    /// between), with this daemon's `root`: `unix://<socket>?root=<store_root>`.
    pub fn uri_via(&self, socket: &Path) -> String {
        format!(
            "unix://{}?root={}",
            socket.display(),
            self.store_root.display()
        )
    }

    /// The host path of a store path, for example to read a build output.
    pub fn host_path(&self, store_path: impl AsRef<Path>) -> PathBuf {
        let store_path = store_path.as_ref();
        self.store_root
            .join(store_path.strip_prefix("/").unwrap_or(store_path))
    }

    /// The pid of the daemon process (the one that accepts connections).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.state_dir.join("daemon.log"))
    }

    /// How long it took from [`Daemon::start`] until the daemon listened.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 5 s) and returns how it exited.
    /// The state directory is deleted when the `Daemon` is dropped.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child
            .take()
            .and_then(|mut child| stop_child(&mut child))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // Connection workers forked by the daemon end when their clients disconnect; they
        // are not this harness's children and are left alone.
        drop(self.state.take());
    }
}

/// Sends SIGTERM to a daemon this harness spawned, waits for it, and kills it if it lingers.
/// Because the harness is the daemon's parent, waiting reaps it: there is no zombie to wait for.
fn stop_child(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = sys::terminate(child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

fn check_socket_path(socket: &Path) -> Result<(), HarnessError> {
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(HarnessError::SocketPathTooLong {
            path: socket.to_path_buf(),
            len,
        });
    }
    Ok(())
}

/// Waits until some process listens on the Unix socket `socket` (for example a recorder
/// started by a test), polling every 2 ms. Returns `false` if that did not happen in `timeout`.
pub fn wait_until_listening(socket: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if is_listening(socket) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Tells whether some process listens on the Unix socket `socket`, from `/proc/net/unix`.
/// Unlike a test connection, this leaves no trace in the daemon's log, and unlike a check for
/// the socket file, it does not race with the daemon's `listen` after `bind`.
fn is_listening(socket: &Path) -> bool {
    /// `__SO_ACCEPTCON`: the socket is listening.
    const LISTENING: u32 = 0x0001_0000;
    let Ok(table) = fs::read_to_string("/proc/net/unix") else {
        return socket.exists();
    };
    let wanted = socket.as_os_str().to_string_lossy();
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let flags = fields
            .nth(3)
            .and_then(|flags| u32::from_str_radix(flags, 16).ok());
        let path = fields.nth(3);
        flags.is_some_and(|flags| flags & LISTENING != 0) && path == Some(wanted.as_ref())
    })
}

fn read_log(path: &Path) -> String {
    match File::open(path).and_then(|mut file| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map(|_| text)
    }) {
        Ok(text) => text,
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from(format!("/{}/sock", "x".repeat(120)));
        assert!(matches!(
            check_socket_path(&long),
            Err(HarnessError::SocketPathTooLong { len: 126, .. })
        ));
        assert!(check_socket_path(Path::new("/tmp/nixcap-abc/sock")).is_ok());
    }

    #[test]
    fn a_listening_socket_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s");
        assert!(!is_listening(&socket));
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(is_listening(&socket));
    }

    #[test]
    fn scratch_dirs_are_short_and_world_readable() {
        use std::os::unix::fs::PermissionsExt;

        let state = ScratchDir::create(None).unwrap();
        let mode = fs::metadata(&state.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(state.path.join("sock").as_os_str().len() <= MAX_SOCKET_PATH);
        let path = state.path.clone();
        drop(state);
        assert!(!path.exists());
    }
}
