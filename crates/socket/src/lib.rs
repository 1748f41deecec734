//! Private Unix listening sockets and private directories, shared by the
//! recorder, the replayer and the test harness.
//!
//! Whoever can connect to the recorder's or the replayer's socket talks to a
//! daemon (real or fake) with the rights of the process that serves it, so
//! the socket must never be reachable by others, not even briefly.
//!
//! Creating it race-free: `bind(2)` creates the socket file with mode
//! `0777 & ~umask`, and the only way to get a tighter mode at creation is to
//! change the umask, which is per process and would race with every other
//! thread creating files (the capture file, for one). Instead the socket is
//! bound inside a fresh private directory (mode 0700, created next to the
//! final path so that both are on the same file system), its mode is set
//! there while nobody else can reach it, and only then is it published at the
//! final path with `link(2)`. `link` fails if the final path exists, so
//! publishing never replaces someone else's file. On file systems that refuse
//! hard links the socket is renamed into place instead, after checking that
//! the path is free. The private directory is removed afterwards.
//!
//! [`MAX_SOCKET_PATH`] is the one place that knows how long a socket path may
//! be; [`check_path_len`] applies it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest socket path Linux accepts (`sun_path` is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Why the listening socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The path does not fit in a `sockaddr_un`.
    #[error("socket path {path} is too long ({len} bytes, at most {max})")]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has no file name (for example `/` or `..`).
    #[error("socket path {path} has no file name")]
    NoFileName {
        /// The path.
        path: PathBuf,
    },
    /// Something that is not a stale socket already exists at the path.
    #[error("{path} already exists (a live socket or another file); remove it or choose another --listen path")]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ListenError + 'a {
    move |source| ListenError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A fresh directory with mode 0700, removed with its contents on drop.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates a private directory under the system temporary directory
    /// (`$TMPDIR`, else `/tmp`).
    pub fn new() -> io::Result<Self> {
        Self::create_in(&std::env::temp_dir(), "nixcap-")
    }

    /// Creates a private directory named `<prefix><random>` inside `parent`.
    pub fn create_in(parent: &Path, prefix: &str) -> io::Result<Self> {
        for _ in 0..64 {
            let path = parent.join(format!("{prefix}{:012x}", random_u64() & 0xffff_ffff_ffff));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    // The umask can only clear bits, but make the mode exact anyway.
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a free name for a private directory",
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A random number from the standard library's per-process hash keys, mixed
/// with a counter so that successive calls differ.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A bound listening socket and its file.
#[derive(Debug)]
pub struct BoundSocket {
    /// The listener, in blocking mode.
    pub listener: UnixListener,
    /// The socket file, removed when this is dropped.
    pub file: SocketFile,
}

/// The path of a socket file and its identity, so that cleanup removes only
/// the file [`bind`] created.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The path the socket was published at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file, if it is still the one [`bind`] created.
    pub fn remove_file(&self) {
        if self.is_at(&self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Tells whether `path` leads to this socket (following symlinks).
    pub fn is_at(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|meta| meta.dev() == self.dev && meta.ino() == self.ino)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove_file();
    }
}

/// Binds a listening Unix socket at `path` with permission bits `mode`,
/// without any moment where it is reachable with looser permissions.
///
/// A stale socket (one nobody listens on any more) at `path` is replaced;
/// anything else there is an error.
pub fn bind(path: &Path, mode: u32) -> Result<BoundSocket, ListenError> {
    check_path_len(path)?;
    if path.file_name().is_none() {
        return Err(ListenError::NoFileName {
            path: path.to_owned(),
        });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let staging = PrivateDir::create_in(&parent, ".nxc")
        .map_err(io_err("creating a private directory in", &parent))?;
    let staged = staging.path().join("s");
    check_path_len(&staged)?;
    let listener = UnixListener::bind(&staged).map_err(io_err("binding", &staged))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("setting the mode of", &staged))?;
    publish(&staged, path)?;
    let meta = std::fs::symlink_metadata(path).map_err(io_err("inspecting", path))?;
    drop(staging);
    Ok(BoundSocket {
        listener,
        file: SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

/// Checks that `path` fits in a `sockaddr_un` ([`MAX_SOCKET_PATH`]).
pub fn check_path_len(path: &Path) -> Result<(), ListenError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ListenError::PathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// Makes the staged socket visible at `path`, never replacing a live file.
fn publish(staged: &Path, path: &Path) -> Result<(), ListenError> {
    for attempt in 0..2 {
        match std::fs::hard_link(staged, path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt == 0 => {
                remove_if_stale(path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ListenError::InUse {
                    path: path.to_owned(),
                })
            }
            Err(_) => {
                // Some file systems do not support hard links. Fall back to a
                // rename after making sure nothing is at the path.
                match std::fs::symlink_metadata(path) {
                    Ok(_) => remove_if_stale(path)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("inspecting", path)(e)),
                }
                return std::fs::rename(staged, path)
                    .map_err(io_err("publishing the socket at", path));
            }
        }
    }
    Err(ListenError::InUse {
        path: path.to_owned(),
    })
}

/// Removes `path` if it is a socket nobody listens on; errors otherwise.
fn remove_if_stale(path: &Path) -> Result<(), ListenError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err("inspecting", path))?;
    if !meta.file_type().is_socket() {
        return Err(ListenError::InUse {
            path: path.to_owned(),
        });
    }
    match UnixStream::connect(path) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(io_err("removing the stale socket", path))
        }
        _ => Err(ListenError::InUse {
            path: path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_is_created_with_the_requested_mode() {
        let dir = PrivateDir::new().unwrap();
        let path = dir.path().join("sock");
        let bound = bind(&path, 0o600).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        // The staging directory is gone: only the socket is left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sock")]);
        bound.file.remove_file();
        assert!(!path.exists());
    }

    #[test]
    fn private_dir_is_0700_and_removed_on_drop() {
        let dir = PrivateDir::new().unwrap();
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        std::fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn stale_socket_is_replaced_but_live_socket_and_files_are_not() {
        let dir = PrivateDir::new().unwrap();
        let path = dir.path().join("sock");
        // Live: someone listens there.
        let live = UnixListener::bind(&path).unwrap();
        assert!(matches!(bind(&path, 0o600), Err(ListenError::InUse { .. })));
        // Stale: the listener is closed but the file remains.
        drop(live);
        assert!(path.exists());
        let bound = bind(&path, 0o600).unwrap();
        // Dropping the socket file removes it.
        drop(bound);
        assert!(!path.exists());
        // A regular file is never replaced.
        let file = dir.path().join("file");
        std::fs::write(&file, b"keep").unwrap();
        assert!(matches!(bind(&file, 0o600), Err(ListenError::InUse { .. })));
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    #[test]
    fn overlong_paths_are_rejected_up_front() {
        let long = std::env::temp_dir().join("x".repeat(200));
        assert!(matches!(
            bind(&long, 0o600),
            Err(ListenError::PathTooLong { .. })
        ));
    }
}
