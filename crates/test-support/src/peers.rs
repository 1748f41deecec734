//! Finding the installed Nix versions, and deciding whether a test runs, skips or fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::namespace::CLEAN_PATH;
use crate::peer::{parse_version, NixVersion, Peer};
use crate::sys;

/// Environment variable that, set to `1`, turns a missing Nix version into a test failure.
pub const REQUIRE_NIX_ENV: &str = "NIXCAP_REQUIRE_NIX";
/// Environment variable that overrides where the chroots live
/// (default: `target/nix-peers` in the workspace; a relative path is relative to the workspace).
pub const PEERS_DIR_ENV: &str = "NIXCAP_PEERS_DIR";
/// The marker file a complete chroot holds; `cargo xtask nix-peers install` writes it last.
const READY_MARKER: &str = ".ready";
const INSTALL_HINT: &str = "run `cargo xtask nix-peers install` as root";

/// The result of looking for every [`NixVersion`] on this machine.
#[derive(Debug, Clone)]
pub struct Peers {
    dir: PathBuf,
    found: Vec<(NixVersion, Result<Peer, String>)>,
}

impl Peers {
    /// Looks for every version now. Prefer [`peers`], which does this once per process.
    pub fn discover() -> Peers {
        let dir = peers_dir();
        let found = NixVersion::ALL
            .iter()
            .map(|&version| (version, find(version, &dir)))
            .collect();
        Peers { dir, found }
    }

    /// The directory where the chroots are looked for.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The peer of `version`, or why it is not usable.
    pub fn get(&self, version: NixVersion) -> Result<&Peer, &str> {
        match self.found.iter().find(|(found, _)| *found == version) {
            Some((_, Ok(peer))) => Ok(peer),
            Some((_, Err(reason))) => Err(reason),
            None => Err("unknown version"),
        }
    }

    /// Every usable peer, oldest first.
    pub fn available(&self) -> Vec<&Peer> {
        self.found
            .iter()
            .filter_map(|(_, found)| found.as_ref().ok())
            .collect()
    }

    /// Returns the peer of `version` for a test that needs it.
    ///
    /// When it is missing, this panics if `NIXCAP_REQUIRE_NIX=1` is set, so the test fails;
    /// otherwise it prints why the test skips and returns `None`.
    #[track_caller]
    pub fn require(&self, version: NixVersion) -> Option<Peer> {
        match self.get(version) {
            Ok(peer) => Some(peer.clone()),
            Err(reason) if nix_required() => panic!(
                "{REQUIRE_NIX_ENV}=1 is set but {version} is not usable: {reason} ({INSTALL_HINT})"
            ),
            Err(reason) => {
                eprintln!(
                    "skipping: {version} not installed (run `cargo xtask nix-peers install`): {reason}"
                );
                None
            }
        }
    }
}

/// The peers of this machine, discovered once per process.
pub fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(Peers::discover)
}

/// Returns the peer of `version`, or `None` after printing why the test skips.
/// Panics instead when `NIXCAP_REQUIRE_NIX=1` is set; see [`Peers::require`].
#[track_caller]
pub fn peer_or_skip(version: NixVersion) -> Option<Peer> {
    peers().require(version)
}

/// Tells whether `NIXCAP_REQUIRE_NIX` asks for missing Nix versions to fail tests.
pub fn nix_required() -> bool {
    std::env::var(REQUIRE_NIX_ENV)
        .map(|value| matches!(value.trim(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

/// The directory holding the chroots: `NIXCAP_PEERS_DIR`, else `target/nix-peers` in the
/// workspace. A relative value is taken relative to the workspace root, as the xtask does.
pub fn peers_dir() -> PathBuf {
    let workspace = workspace_root();
    let chosen = std::env::var_os(PEERS_DIR_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target").join("nix-peers"));
    if chosen.is_absolute() {
        chosen
    } else {
        workspace.join(chosen)
    }
}

fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// Panics if a Nix store appeared in the host's `/nix` or in a chroot's `/nix`.
///
/// Those directories are only mount points. A Nix process that opened the default local store
/// outside a harness namespace would silently create a store database there.
pub fn assert_host_nix_dir_empty() {
    let mut dirs = vec![PathBuf::from("/nix")];
    let prefix = peers_dir();
    for version in NixVersion::ALL {
        if let Some(suite) = version.debian_suite() {
            dirs.push(prefix.join(suite).join("nix"));
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.is_empty(),
            "{} must stay an empty mount point, but it holds {names:?}: some Nix process ran \
             without an explicit store outside a harness namespace",
            dir.display()
        );
    }
}

fn find(version: NixVersion, dir: &Path) -> Result<Peer, String> {
    let uid = sys::effective_uid();
    if uid != 0 {
        return Err(format!(
            "the harness needs root (mount namespaces, chroot), but runs as uid {uid}"
        ));
    }
    let chroot = match version.debian_suite() {
        None => {
            if !Path::new("/nix").is_dir() {
                return Err("the empty /nix mount point is missing".to_owned());
            }
            None
        }
        Some(suite) => {
            let root = dir.join(suite);
            if !root.join(READY_MARKER).is_file() {
                return Err(format!("no complete {suite} chroot at {}", root.display()));
            }
            Some(
                root.canonicalize()
                    .map_err(|err| format!("resolving {}: {err}", root.display()))?,
            )
        }
    };
    let nix_version = probe_version(chroot.as_deref())?;
    let parsed = parse_version(&nix_version)
        .ok_or_else(|| format!("cannot parse Nix version `{nix_version}`"))?;
    if !version.accepts(parsed) {
        let place = match &chroot {
            None => "the host".to_owned(),
            Some(root) => root.display().to_string(),
        };
        return Err(format!(
            "{place} has Nix {nix_version}, not {}",
            version.series()
        ));
    }
    Ok(Peer::new(version, nix_version, chroot))
}

/// Runs `nix --version` on the host or in a chroot. In a chroot, the command runs in a private
/// mount namespace with `/proc` mounted and a tmpfs on `/nix`.
fn probe_version(chroot: Option<&Path>) -> Result<String, String> {
    let mut command = match chroot {
        None => {
            let mut command = Command::new("nix");
            command.arg("--version");
            command
        }
        Some(root) => {
            let mut command = Command::new("unshare");
            command
                .args(["--mount", "--", "sh", "-c"])
                .arg(
                    r#"mount -t proc proc "$1/proc" && mount -t tmpfs tmpfs "$1/nix" && exec chroot "$1" nix --version"#,
                )
                .arg("sh")
                .arg(root);
            command
        }
    };
    command
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .stdin(Stdio::null());
    let output = command.output().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => "`nix` is not installed".to_owned(),
        _ => format!("running `nix --version`: {err}"),
    })?;
    if !output.status.success() {
        return Err(format!(
            "`nix --version` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().last())
        .map(str::to_owned)
        .ok_or_else(|| format!("unexpected `nix --version` output {stdout:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_peers_dir_is_in_the_workspace_target() {
        if std::env::var_os(PEERS_DIR_ENV).is_none() {
            let dir = peers_dir();
            assert!(dir.ends_with("target/nix-peers"), "{}", dir.display());
            assert!(dir
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("Cargo.toml")
                .is_file());
        }
    }
}
