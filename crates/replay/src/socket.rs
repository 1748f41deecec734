//! The listening socket, created with mode 0600 and never looser.
//!
//! `bind(2)` creates the socket file with `0777 & ~umask`; changing the umask
//! would race with other threads. So the socket is bound inside a fresh
//! private directory next to the final path, its mode is set there, and only
//! then is it renamed into place (after checking that nothing live is at the
//! final path). The private directory is removed afterwards.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The longest socket path Linux accepts.
pub const MAX_SOCKET_PATH: usize = 107;

/// Why the listening socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// The path does not fit in a `sockaddr_un`.
    #[error("socket path {} is too long ({len} bytes, at most {MAX_SOCKET_PATH})", path.display())]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Something that is not a stale socket is at the path.
    #[error("{} already exists (a live socket or another file)", path.display())]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
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

fn check_len(path: &Path) -> Result<(), ListenError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ListenError::PathTooLong {
            path: path.to_owned(),
            len,
        });
    }
    Ok(())
}

/// Binds a listening socket at `path` with mode 0600.
pub(crate) fn bind_private(path: &Path) -> Result<UnixListener, ListenError> {
    check_len(path)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".nxr")
        .tempdir_in(&parent)
        .map_err(io_err("creating a private directory in", &parent))?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("setting the mode of", staging.path()))?;
    let staged = staging.path().join("s");
    check_len(&staged)?;
    let listener = UnixListener::bind(&staged).map_err(io_err("binding", &staged))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("setting the mode of", &staged))?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let stale = meta.file_type().is_socket()
                && matches!(UnixStream::connect(path), Err(e) if e.kind() == io::ErrorKind::ConnectionRefused);
            if !stale {
                return Err(ListenError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io_err("removing the stale socket", path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    std::fs::rename(&staged, path).map_err(io_err("publishing the socket at", path))?;
    Ok(listener)
}

/// Creates a private (0700) directory under the temporary directory.
pub(crate) fn private_dir() -> io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("nixcap-replay-")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_has_mode_0600_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let _listener = bind_private(&path).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sock")]);
    }

    #[test]
    fn a_regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            bind_private(&path),
            Err(ListenError::InUse { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
