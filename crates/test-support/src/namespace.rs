//! Builds the `unshare --mount` wrapper that runs a program in a private mount namespace,
//! optionally chrooted, with host directories bound in at the same paths.
//!
//! `unshare` (without `--fork`), `sh -c 'exec …'` and `chroot` all replace themselves with the
//! next program, so the pid of the spawned process is the pid of the final program.
//! Mounts made in the namespace are private and vanish when its last process exits; nothing
//! is ever mounted on the host.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::error::HarnessError;

/// The `PATH` of every process the harness starts, on the host and in chroots.
pub(crate) const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell script run by `unshare`.
///
/// Arguments: the chroot directory (empty for the host); the directory to mount on `/nix`
/// (empty for none); a count and that many top-level chroot directories that get a fresh tmpfs;
/// a count and that many host directories to bind; then the program and its arguments.
///
/// The tmpfs mounts hold the mount points of the binds, so that creating them leaves nothing
/// behind in the chroot (see [`scratch_tops`]).
const SCRIPT: &str = r#"set -e
root=$1; nix_source=$2; count=$3; shift 3
if [ -n "$root" ]; then
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
fi
while [ "$count" -gt 0 ]; do
  mkdir -p "$root$1"
  mount -t tmpfs -o mode=1777 tmpfs "$root$1"
  shift
  count=$((count - 1))
done
count=$1; shift
while [ "$count" -gt 0 ]; do
  mkdir -p "$root$1"
  mount --rbind "$1" "$root$1"
  shift
  count=$((count - 1))
done
if [ -n "$nix_source" ]; then
  mount --bind "$nix_source" "$root/nix"
fi
if [ -n "$root" ]; then
  exec chroot "$root" "$@"
fi
exec "$@""#;

/// How to run one program: on the host or in a chroot, with or without a private `/nix`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Namespace {
    /// The chroot directory, or `None` for the host.
    pub(crate) chroot: Option<PathBuf>,
    /// A host directory to mount on `/nix` (the host's or the chroot's) in the namespace.
    pub(crate) nix_source: Option<PathBuf>,
    /// Host directories to bind into the chroot at the same paths.
    pub(crate) bind_dirs: Vec<PathBuf>,
    /// `setpriv` options placed before everything else (for example `--pdeathsig TERM`).
    pub(crate) setpriv_outer: Vec<OsString>,
    /// The working directory of the program. `chroot` changes to `/`, so in a chroot the
    /// program is started through `env -C <dir>`.
    pub(crate) workdir: Option<PathBuf>,
}

impl Namespace {
    /// Builds the command that runs `program args` as described, with an empty environment
    /// apart from `PATH`; the caller adds the program's own environment.
    pub(crate) fn command(
        &self,
        program: &OsStr,
        args: &[OsString],
    ) -> Result<Command, HarnessError> {
        let mut words: Vec<OsString> = Vec::new();
        if !self.setpriv_outer.is_empty() {
            words.push("setpriv".into());
            words.extend(self.setpriv_outer.iter().cloned());
        }
        if self.chroot.is_some() || self.nix_source.is_some() {
            let binds = match &self.chroot {
                Some(root) => prepare_bind_dirs(root, &self.bind_dirs)?,
                None => Vec::new(),
            };
            let tops = match &self.chroot {
                Some(root) => scratch_tops(root, &binds),
                None => Vec::new(),
            };
            words
                .extend(["unshare", "--mount", "--", "sh", "-c", SCRIPT, "sh"].map(OsString::from));
            words.push(
                self.chroot
                    .as_deref()
                    .map(|root| root.as_os_str().to_owned())
                    .unwrap_or_default(),
            );
            words.push(
                self.nix_source
                    .as_deref()
                    .map(|dir| dir.as_os_str().to_owned())
                    .unwrap_or_default(),
            );
            words.push(tops.len().to_string().into());
            words.extend(tops.into_iter().map(PathBuf::into_os_string));
            words.push(binds.len().to_string().into());
            words.extend(binds.into_iter().map(PathBuf::into_os_string));
        }
        if let (Some(_), Some(dir)) = (&self.chroot, &self.workdir) {
            words.extend(["env".into(), "-C".into(), dir.as_os_str().to_owned()]);
        }
        words.push(program.to_owned());
        words.extend(args.iter().cloned());

        let mut command = Command::new(&words[0]);
        command
            .args(&words[1..])
            .env_clear()
            .env("PATH", CLEAN_PATH);
        if let Some(dir) = &self.workdir {
            command.current_dir(dir);
        }
        Ok(command)
    }
}

/// Validates, canonicalises and deduplicates the directories to bind into `root`.
///
/// A directory inside another one in the list is dropped, because the recursive bind of the
/// outer one already shows it. A path whose counterpart inside the chroot runs through a
/// symbolic link is refused: mounting there would follow the link, possibly out of the chroot.
fn prepare_bind_dirs(root: &Path, dirs: &[PathBuf]) -> Result<Vec<PathBuf>, HarnessError> {
    let mut canonical = Vec::with_capacity(dirs.len());
    for dir in dirs {
        if !dir.is_absolute() {
            return Err(HarnessError::BadBindDir {
                path: dir.clone(),
                reason: "the path is not absolute".to_owned(),
            });
        }
        let resolved = dir
            .canonicalize()
            .map_err(|err| HarnessError::io("resolving", dir, err))?;
        if !resolved.is_dir() {
            return Err(HarnessError::BadBindDir {
                path: dir.clone(),
                reason: "it is not a directory".to_owned(),
            });
        }
        if resolved.starts_with(root) {
            return Err(HarnessError::BadBindDir {
                path: dir.clone(),
                reason: "it lies inside the chroot itself".to_owned(),
            });
        }
        if resolved == Path::new("/") {
            return Err(HarnessError::BadBindDir {
                path: dir.clone(),
                reason: "binding the whole host file system would hide the chroot".to_owned(),
            });
        }
        canonical.push(resolved);
    }
    canonical.sort();
    canonical.dedup();
    let mut kept: Vec<PathBuf> = Vec::with_capacity(canonical.len());
    for dir in canonical {
        if !kept.iter().any(|outer| dir.starts_with(outer)) {
            kept.push(dir);
        }
    }
    for dir in &kept {
        check_no_symlink_inside(root, dir)?;
    }
    Ok(kept)
}

fn check_no_symlink_inside(root: &Path, dir: &Path) -> Result<(), HarnessError> {
    let mut inside = root.to_path_buf();
    for component in dir.components() {
        let Component::Normal(name) = component else {
            continue;
        };
        inside.push(name);
        match inside.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(HarnessError::BadBindDir {
                    path: dir.to_path_buf(),
                    reason: format!("{} is a symbolic link in the chroot", inside.display()),
                })
            }
            Ok(_) => {}
            // The rest of the path does not exist yet; the wrapper creates it.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// The top-level chroot directories that get a private tmpfs before `binds` are mounted.
///
/// Binding a host directory needs a mount point at the same path in the chroot. Created in
/// the chroot's own tree, these would pile up (one per temporary directory). So `/tmp`, and
/// every top-level directory the chroot lacks, gets a fresh tmpfs in the namespace first, and
/// the mount points are created there. Other top-level directories (`/home`, `/var`, …) hold
/// the chroot's own files and are used as they are.
fn scratch_tops(root: &Path, binds: &[PathBuf]) -> Vec<PathBuf> {
    let mut tops: Vec<PathBuf> = Vec::new();
    for dir in binds {
        let Some(Component::Normal(first)) = dir.components().nth(1) else {
            continue;
        };
        let top = Path::new("/").join(first);
        // A bind of the top-level directory itself needs no mount point below it.
        if top == *dir && first != "tmp" {
            continue;
        }
        let in_chroot = root.join(first);
        if (first == "tmp" || !in_chroot.exists()) && !tops.contains(&top) {
            tops.push(top);
        }
    }
    tops
}

/// A temporary directory (a daemon's state, a client's home), deleted on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    pub(crate) path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl ScratchDir {
    /// Creates a world-readable temporary directory with a short path, so that sockets fit.
    pub(crate) fn create(parent: Option<&Path>) -> Result<Self, HarnessError> {
        let parent = match parent {
            Some(parent) => parent.to_path_buf(),
            None => {
                let temp = std::env::temp_dir();
                // Leave room for "nixcap-XXXXXX/sock" and friends.
                if temp.as_os_str().len() + 40 > nixcap_socket::MAX_SOCKET_PATH {
                    PathBuf::from("/tmp")
                } else {
                    temp
                }
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("nixcap-")
            .tempdir_in(&parent)
            .map_err(|err| HarnessError::io("creating a directory in", &parent, err))?;
        let path = dir
            .path()
            .canonicalize()
            .map_err(|err| HarnessError::io("resolving", dir.path(), err))?;
        // Clients running as another user must reach the socket and the store files.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|err| HarnessError::io("setting permissions of", &path, err))?;
        Ok(ScratchDir {
            path,
            dir: Some(dir),
        })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_bind_dirs_collapse_into_the_outer_one() {
        let root = tempfile::tempdir().unwrap();
        let outer = tempfile::tempdir().unwrap();
        let inner = outer.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        let kept = prepare_bind_dirs(
            root.path(),
            &[inner.clone(), outer.path().to_path_buf(), inner],
        )
        .unwrap();
        assert_eq!(kept, vec![outer.path().canonicalize().unwrap()]);
    }

    #[test]
    fn relative_and_missing_dirs_are_refused() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            prepare_bind_dirs(root.path(), &[PathBuf::from("relative")]),
            Err(HarnessError::BadBindDir { .. })
        ));
        assert!(matches!(
            prepare_bind_dirs(root.path(), &[root.path().join("missing")]),
            Err(HarnessError::Io { .. })
        ));
    }

    #[test]
    fn symlinks_inside_the_chroot_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        let first = target.path().components().nth(1).unwrap();
        std::os::unix::fs::symlink("/", root.path().join(first)).unwrap();
        let err = prepare_bind_dirs(root.path(), &[target.path().to_path_buf()]).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn host_commands_without_namespace_run_directly() {
        let command = Namespace::default()
            .command(OsStr::new("nix"), &["--version".into()])
            .unwrap();
        assert_eq!(command.get_program(), "nix");
        assert_eq!(command.get_args().collect::<Vec<_>>(), ["--version"]);
    }

    #[test]
    fn mount_points_go_to_tmpfs_only_where_the_chroot_has_nothing_of_its_own() {
        let root = tempfile::tempdir().unwrap();
        for dir in ["tmp", "home", "var"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        let binds = [
            "/tmp/a",
            "/tmp/b",
            "/home/user/project",
            "/srv/data",
            "/scratch",
            "/tmp",
        ]
        .map(PathBuf::from);
        assert_eq!(
            scratch_tops(root.path(), &binds),
            [PathBuf::from("/tmp"), PathBuf::from("/srv")]
        );
    }
}
