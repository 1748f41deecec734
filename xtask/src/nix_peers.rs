//! `cargo xtask nix-peers`: installs and inspects the real Nix versions that tests run against.
//!
//! Nix 2.8 comes from Debian 12's `nix-bin` and runs on the host.
//! Nix 2.26 (Debian trixie) and the newest Nix of Debian sid (2.34 or later) run in debootstrap
//! chroots under a prefix directory, because their binaries need a newer glibc than the host has.
//! The test harness in `crates/test-support` finds them with the same prefix rule as this task:
//! `--prefix`, else `NIXCAP_PEERS_DIR`, else `target/nix-peers` in the workspace.
//!
//! Every step is idempotent.
//! A chroot gets its `.ready` marker only after it is complete and its Nix version checked,
//! and a chroot directory without the marker is treated as an interrupted install and rebuilt.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context as _};

/// Environment variable that overrides the default prefix of the chroots.
const PEERS_DIR_ENV: &str = "NIXCAP_PEERS_DIR";
/// Environment variable that overrides the Debian mirror used by debootstrap.
const MIRROR_ENV: &str = "NIXCAP_DEBIAN_MIRROR";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Name of the file written last into a complete chroot; it holds the chroot's Nix version.
const READY_MARKER: &str = ".ready";
/// Host packages the harness needs.
const HOST_PACKAGES: &[&str] = &["nix-bin", "socat", "debootstrap"];
/// A clean `PATH` for every command run here.
const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

const HELP: &str = "\
usage: cargo xtask nix-peers <command> [options]

commands:
  install   install Nix 2.8 on the host and Nix 2.26 / 2.34+ in chroots (idempotent; needs root)
  status    print what is installed, with versions
  help      print this help

options:
  --prefix DIR    where the chroots live (default: $NIXCAP_PEERS_DIR, else <workspace>/target/nix-peers)
  --mirror URL    Debian mirror for debootstrap (default: $NIXCAP_DEBIAN_MIRROR, else http://deb.debian.org/debian)
";

/// Which Nix versions a chroot suite must provide.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly this major.minor series.
    Series(u32, u32),
    /// This major.minor or any later 2.x.
    AtLeast(u32, u32),
}

impl Expect {
    fn accepts(self, (major, minor): (u32, u32)) -> bool {
        match self {
            Expect::Series(want_major, want_minor) => major == want_major && minor == want_minor,
            Expect::AtLeast(want_major, want_minor) => major == want_major && minor >= want_minor,
        }
    }

    fn describe(self) -> String {
        match self {
            Expect::Series(major, minor) => format!("{major}.{minor}.x"),
            Expect::AtLeast(major, minor) => format!("{major}.x with x >= {minor}"),
        }
    }
}

/// The chroot suites, in install order, with the Nix version each must provide.
const SUITES: &[(&str, Expect)] = &[
    ("trixie", Expect::Series(2, 26)),
    ("sid", Expect::AtLeast(2, 34)),
];
/// The Nix version the host's `nix-bin` must provide.
const HOST_EXPECT: Expect = Expect::Series(2, 8);

/// Entry point of `cargo xtask nix-peers`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut command = None;
    let mut prefix = None;
    let mut mirror = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--prefix" => {
                prefix = Some(PathBuf::from(
                    iter.next().context("--prefix needs a value")?,
                ))
            }
            "--mirror" => mirror = Some(iter.next().context("--mirror needs a value")?.clone()),
            "help" | "--help" | "-h" => {
                eprint!("{HELP}");
                return Ok(());
            }
            other if command.is_none() && !other.starts_with('-') => {
                command = Some(other.to_owned())
            }
            other => {
                eprint!("{HELP}");
                bail!("unexpected argument `{other}`");
            }
        }
    }
    let prefix = peers_dir(prefix);
    let mirror = mirror
        .or_else(|| {
            std::env::var(MIRROR_ENV)
                .ok()
                .filter(|value| !value.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned());
    match command.as_deref() {
        Some("install") => install(&prefix, &mirror),
        Some("status") => status(&prefix),
        Some(other) => {
            eprint!("{HELP}");
            bail!("unknown nix-peers command `{other}`")
        }
        None => {
            eprint!("{HELP}");
            bail!("missing nix-peers command")
        }
    }
}

/// Resolves the chroot prefix: the command line, then the environment, then the default.
/// A relative path is taken relative to the workspace root, as the test harness does.
fn peers_dir(from_args: Option<PathBuf>) -> PathBuf {
    let root = crate::workspace_root();
    let chosen = from_args
        .or_else(|| {
            std::env::var_os(PEERS_DIR_ENV)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| root.join("target").join("nix-peers"));
    if chosen.is_absolute() {
        chosen
    } else {
        root.join(chosen)
    }
}

fn install(prefix: &Path, mirror: &str) -> anyhow::Result<()> {
    ensure!(
        effective_uid()? == 0,
        "`nix-peers install` must run as root (it uses apt-get, chroot and mount namespaces)"
    );
    let started = std::time::Instant::now();

    install_host_packages()?;
    let host_version =
        host_nix_version()?.context("`nix` is still missing after installing nix-bin")?;
    check_version("host", &host_version, HOST_EXPECT)?;
    println!("host: Nix {host_version}");

    fs::create_dir_all("/nix").context("creating the /nix mount point")?;
    if dir_has_entries(Path::new("/nix"))? {
        eprintln!(
            "warning: /nix is not empty; the harness only uses it as a mount point, and a store \
             created there by a stray Nix process would be a bug (check with `ls -A /nix`)"
        );
    }

    fs::create_dir_all(prefix).with_context(|| format!("creating {}", prefix.display()))?;
    for &(suite, expect) in SUITES {
        let version = install_suite(prefix, suite, expect, mirror)?;
        println!("{suite}: Nix {version} in {}", prefix.join(suite).display());
    }
    println!(
        "nix-peers ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs the host packages with apt-get, refreshing the package lists when that is needed.
fn install_host_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        println!(
            "host packages already installed: {}",
            HOST_PACKAGES.join(" ")
        );
        return Ok(());
    }
    println!("installing host packages: {}", missing.join(" "));
    let mut updated = false;
    if !apt_lists_present(Path::new("/"))? {
        apt_get(None, &["update"])?;
        updated = true;
    }
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend(&missing);
    if apt_get(None, &install_args).is_err() && !updated {
        eprintln!("apt-get install failed; refreshing package lists and retrying");
        apt_get(None, &["update"])?;
        apt_get(None, &install_args)?;
    }
    Ok(())
}

/// Builds one chroot if it is not already complete, and returns its Nix version.
fn install_suite(
    prefix: &Path,
    suite: &str,
    expect: Expect,
    mirror: &str,
) -> anyhow::Result<String> {
    let root = prefix.join(suite);
    let marker = root.join(READY_MARKER);
    if marker.is_file() {
        let version = chroot_nix_version(&root)?;
        check_version(suite, &version, expect)?;
        println!("{suite}: already installed");
        return Ok(version);
    }
    if root.exists() {
        println!(
            "{suite}: {} has no {READY_MARKER} marker, deleting the incomplete chroot",
            root.display()
        );
        ensure_nothing_mounted_under(&root)?;
        fs::remove_dir_all(&root).with_context(|| format!("deleting {}", root.display()))?;
    }

    println!("{suite}: debootstrap from {mirror}");
    run_checked(
        Command::new("debootstrap")
            .args(["--variant=minbase", suite])
            .arg(&root)
            .arg(mirror)
            .env("PATH", CLEAN_PATH),
    )?;

    println!("{suite}: installing nix-bin");
    let install_args = ["install", "-y", "--no-install-recommends", "nix-bin"];
    if apt_get(Some(&root), &install_args).is_err() {
        eprintln!("{suite}: apt-get install failed; refreshing package lists and retrying");
        apt_get(Some(&root), &["update"])?;
        apt_get(Some(&root), &install_args)?;
    }
    apt_get(Some(&root), &["clean"])?;
    fs::create_dir_all(root.join("nix")).context("creating the chroot's /nix mount point")?;

    let version = chroot_nix_version(&root)?;
    check_version(suite, &version, expect)?;
    fs::write(&marker, format!("{version}\n"))
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(version)
}

fn status(prefix: &Path) -> anyhow::Result<()> {
    let is_root = effective_uid()? == 0;
    println!("prefix: {}", prefix.display());
    println!(
        "running as root: {}",
        if is_root {
            "yes"
        } else {
            "no (tests that need Nix will skip)"
        }
    );
    for package in HOST_PACKAGES {
        let state = if dpkg_installed(package) {
            "installed"
        } else {
            "missing"
        };
        println!("host package {package}: {state}");
    }
    match host_nix_version() {
        Ok(Some(version)) => println!("host: Nix {version} ({})", verdict(&version, HOST_EXPECT)),
        Ok(None) => println!("host: Nix not installed"),
        Err(err) => println!("host: Nix unusable: {err:#}"),
    }
    let nix_dir = Path::new("/nix");
    let nix_state = if !nix_dir.is_dir() {
        "missing (install creates it)"
    } else if dir_has_entries(nix_dir)? {
        "NOT EMPTY (it must stay an empty mount point)"
    } else {
        "empty mount point"
    };
    println!("/nix: {nix_state}");
    for &(suite, expect) in SUITES {
        let root = prefix.join(suite);
        if !root.exists() {
            println!("{suite}: not installed");
        } else if !root.join(READY_MARKER).is_file() {
            println!("{suite}: incomplete (no {READY_MARKER} marker; install rebuilds it)");
        } else if !is_root {
            println!("{suite}: installed (run as root to check its version)");
        } else {
            match chroot_nix_version(&root) {
                Ok(version) => println!(
                    "{suite}: Nix {version} ({}), {}",
                    verdict(&version, expect),
                    disk_usage(&root)
                ),
                Err(err) => println!("{suite}: installed but Nix does not run: {err:#}"),
            }
        }
    }
    Ok(())
}

fn verdict(version: &str, expect: Expect) -> String {
    match parse_version(version) {
        Some(parsed) if expect.accepts(parsed) => "ok".to_owned(),
        _ => format!("unexpected, want {}", expect.describe()),
    }
}

fn check_version(what: &str, version: &str, expect: Expect) -> anyhow::Result<()> {
    let parsed = parse_version(version)
        .with_context(|| format!("{what}: cannot parse Nix version `{version}`"))?;
    ensure!(
        expect.accepts(parsed),
        "{what}: got Nix {version}, want {}; the Debian suite changed, see docs/REAL-NIX.md",
        expect.describe()
    );
    Ok(())
}

/// Parses the major and minor numbers out of a version like `2.34.8` or `2.34.0pre`.
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = leading_number(parts.next()?)?;
    let minor = leading_number(parts.next()?)?;
    Some((major, minor))
}

fn leading_number(text: &str) -> Option<u32> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Extracts the version from `nix --version` output (`nix (Nix) 2.8.0`).
fn version_from_output(stdout: &[u8]) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().next().unwrap_or_default();
    let version = line.split_whitespace().last().unwrap_or_default();
    ensure!(
        parse_version(version).is_some(),
        "unexpected `nix --version` output: {text:?}"
    );
    Ok(version.to_owned())
}

/// Returns the host's Nix version, or `None` when `nix` is not installed.
fn host_nix_version() -> anyhow::Result<Option<String>> {
    let output = match Command::new("nix")
        .arg("--version")
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .output()
    {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).context("running `nix --version`"),
    };
    ensure!(
        output.status.success(),
        "`nix --version` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    version_from_output(&output.stdout).map(Some)
}

/// Runs `nix --version` inside a chroot, in a private mount namespace with `/proc` mounted
/// and a throw-away tmpfs on the chroot's `/nix`, so nothing can be written to the real one.
fn chroot_nix_version(root: &Path) -> anyhow::Result<String> {
    let output = Command::new("unshare")
        .args(["--mount", "--", "sh", "-c"])
        .arg(r#"mount -t proc proc "$1/proc" && mount -t tmpfs tmpfs "$1/nix" && exec chroot "$1" nix --version"#)
        .arg("sh")
        .arg(root)
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .stdin(Stdio::null())
        .output()
        .context("running `nix --version` in the chroot")?;
    ensure!(
        output.status.success(),
        "`nix --version` in {} failed: {}",
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    version_from_output(&output.stdout)
}

/// Runs apt-get non-interactively on the host (`root` is `None`) or inside a chroot.
fn apt_get(root: Option<&Path>, args: &[&str]) -> anyhow::Result<()> {
    let mut command = match root {
        None => Command::new("apt-get"),
        Some(root) => {
            let mut command = Command::new("chroot");
            command.arg(root).arg("apt-get");
            command
        }
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C");
    run_checked(&mut command)
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", package])
        .env("PATH", CLEAN_PATH)
        .stderr(Stdio::null())
        .output()
        .map(|output| output.status.success() && output.stdout == b"installed")
        .unwrap_or(false)
}

/// Tells whether apt has any package lists under `root`, that is whether `apt-get update` ever ran.
fn apt_lists_present(root: &Path) -> anyhow::Result<bool> {
    let lists = root.join("var/lib/apt/lists");
    let Ok(entries) = fs::read_dir(&lists) else {
        return Ok(false);
    };
    for entry in entries {
        let name = entry
            .with_context(|| format!("reading {}", lists.display()))?
            .file_name();
        if name.to_string_lossy().ends_with("_Packages")
            || name.to_string_lossy().contains("_Packages.")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn dir_has_entries(dir: &Path) -> anyhow::Result<bool> {
    Ok(fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_some())
}

/// Refuses to go on if anything is mounted inside `dir`: deleting it would then delete
/// the mounted file systems' contents (for example the host's `/dev`).
fn ensure_nothing_mounted_under(dir: &Path) -> anyhow::Result<()> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    for line in mountinfo.lines() {
        let Some(mount_point) = line.split(' ').nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
        ensure!(
            !mount_point.starts_with(dir),
            "{} is mounted inside {}; unmount it before the chroot can be rebuilt",
            mount_point.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Decodes the octal escapes (`\040` for a space) that mountinfo uses in paths.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && index + 3 < bytes.len()
            && bytes[index + 1..index + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[index + 1..index + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn disk_usage(dir: &Path) -> String {
    Command::new("du")
        .arg("-sh")
        .arg(dir)
        .env("PATH", CLEAN_PATH)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .map(|size| format!("{size} on disk"))
        .unwrap_or_else(|| "size unknown".to_owned())
}

/// Reads the effective uid from `/proc/self/status` (this crate avoids a libc dependency).
fn effective_uid() -> anyhow::Result<u32> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let uid_line = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .context("no Uid line in /proc/self/status")?;
    let effective = uid_line
        .split_whitespace()
        .nth(1)
        .context("short Uid line in /proc/self/status")?;
    effective.parse().context("parsing the effective uid")
}

/// Runs a command with inherited output and fails with its exit status if it fails.
fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let shown = describe(command);
    let status = command
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    ensure!(status.success(), "`{shown}` failed with {status}");
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("2.8.0"), Some((2, 8)));
        assert_eq!(parse_version("2.34.0pre"), Some((2, 34)));
        assert_eq!(parse_version("nix"), None);
        assert_eq!(
            version_from_output(b"nix (Nix) 2.26.3\n").unwrap(),
            "2.26.3"
        );
    }

    #[test]
    fn expectations() {
        assert!(Expect::Series(2, 26).accepts((2, 26)));
        assert!(!Expect::Series(2, 26).accepts((2, 27)));
        assert!(Expect::AtLeast(2, 34).accepts((2, 35)));
        assert!(!Expect::AtLeast(2, 34).accepts((2, 33)));
        assert!(!Expect::AtLeast(2, 34).accepts((3, 0)));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/end\04"), r"/end\04");
    }
}
