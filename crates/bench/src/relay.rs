//! The relays under test: nothing (a direct connection), the recorder,
//! `socat` and `socat -v`, each started as its own process in front of an
//! upstream socket.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// How long a relay may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a relay may take to stop (the recorder finishes its capture).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// One way of reaching the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The client connects to the upstream socket itself: the limit.
    Direct,
    /// Through `nixcap record`.
    Nixcap,
    /// Through `socat UNIX-LISTEN:…,fork UNIX-CONNECT:…`.
    Socat,
    /// Through `socat -v …`, its dump on stderr sent to `/dev/null`.
    SocatVerbose,
    /// Through `nixcap record` rotating every [`ROTATION_FILE_BYTES`] and
    /// uploading each file to a local directory store (only the rotation
    /// case runs it; it has no column of its own).
    NixcapRotating,
    /// Through `nixcap record --keep failed`, the flight recorder, with its
    /// journal (only the flight case runs it).
    NixcapFlight,
}

/// The file size at which [`Variant::NixcapRotating`] rotates.
pub const ROTATION_FILE_BYTES: u64 = 1 << 20;

impl Variant {
    /// Every variant, in table order.
    pub const ALL: [Variant; 4] = [
        Variant::Direct,
        Variant::Nixcap,
        Variant::Socat,
        Variant::SocatVerbose,
    ];

    /// The column heading.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Direct => "direct",
            Variant::Nixcap => "nixcap",
            Variant::Socat => "socat",
            Variant::SocatVerbose => "socat -v",
            Variant::NixcapRotating => "nixcap rotating",
            Variant::NixcapFlight => "nixcap flight",
        }
    }

    /// The variants in the order round `round` runs them: rotated by one per
    /// round, so that no variant always runs first (or right after another).
    pub fn rotation(round: usize, variants: &[Variant]) -> Vec<Variant> {
        let mut order = variants.to_vec();
        if !order.is_empty() {
            let len = order.len();
            order.rotate_left(round % len);
        }
        order
    }
}

/// Which program plays the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecorderProgram {
    /// The `nixcap` binary: `nixcap record -w FILE --listen SOCK --upstream SOCK`,
    /// stopped with SIGINT.
    Cli(PathBuf),
    /// This benchmark's own binary, running the same recorder library in a
    /// child process (`nixcap-bench record-with-library`), stopped by closing
    /// its standard input. Used when no `nixcap` binary is at hand.
    Library(PathBuf),
}

impl RecorderProgram {
    /// A short description for the report.
    pub fn describe(&self) -> String {
        match self {
            RecorderProgram::Cli(path) => format!("`nixcap record` ({})", path.display()),
            RecorderProgram::Library(_) => {
                "the nixcap-record library in a child process (no `nixcap` binary given)".to_owned()
            }
        }
    }
}

/// The programs the benchmark runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The recorder.
    pub recorder: RecorderProgram,
    /// The `nixcap` binary, for `show` and `replay`; `None` skips those cases.
    pub nixcap: Option<PathBuf>,
    /// `socat`; `None` leaves the socat columns empty.
    pub socat: Option<PathBuf>,
}

impl Tools {
    /// The variants these tools can run.
    pub fn variants(&self) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|v| self.socat.is_some() || matches!(v, Variant::Direct | Variant::Nixcap))
            .collect()
    }
}

/// A relay process listening in front of an upstream socket (or, for
/// [`Variant::Direct`], just the upstream socket).
#[derive(Debug)]
pub struct Relay {
    variant: Variant,
    child: Option<Child>,
    socket: PathBuf,
    capture: Option<PathBuf>,
    library: bool,
    _dir: Option<tempfile::TempDir>,
}

/// What a stopped relay left behind.
#[derive(Debug)]
pub struct Stopped {
    /// The capture, for the recorder.
    pub capture: Option<PathBuf>,
    /// The process's peak RSS over its whole life, stop included (the last
    /// `VmHWM` read while it was alive, polled every 5 ms until it exited).
    pub peak_rss_bytes: Option<u64>,
}

/// `nixcap record -w CAPTURE --listen SOCKET --upstream UPSTREAM`, with no
/// standard input; the variants add their options.
fn record_command(nixcap: &Path, capture: &Path, socket: &Path, upstream: &Path) -> Command {
    let mut c = Command::new(nixcap);
    c.arg("record")
        .arg("-w")
        .arg(capture)
        .arg("--listen")
        .arg(socket)
        .arg("--upstream")
        .arg(upstream)
        .stdin(Stdio::null());
    c
}

impl Relay {
    /// The directory store that [`Variant::NixcapRotating`] uploads the set
    /// it writes at `capture` (a directory) to.
    pub fn upload_dir(capture: &Path) -> PathBuf {
        let mut name = capture.as_os_str().to_owned();
        name.push("-store");
        PathBuf::from(name)
    }

    /// Starts `variant` in front of `upstream`. The recorder writes its
    /// capture to `capture`.
    pub fn start(
        variant: Variant,
        upstream: &Path,
        tools: &Tools,
        capture: &Path,
    ) -> Result<Relay> {
        if variant == Variant::Direct {
            return Ok(Relay {
                variant,
                child: None,
                socket: upstream.to_path_buf(),
                capture: None,
                library: false,
                _dir: None,
            });
        }
        // Socket paths hold at most 107 bytes: keep them short, in the
        // temporary directory.
        let dir = tempfile::Builder::new()
            .prefix("nxb")
            .tempdir()
            .doing(|| "creating a socket directory".to_owned())?;
        let socket = dir.path().join("s");
        let mut library = false;
        let (program, mut command) = match variant {
            Variant::Direct => {
                return Err(Error::Usage("a direct connection has no relay".to_owned()))
            }
            Variant::Nixcap => {
                let _ = std::fs::remove_file(capture);
                match &tools.recorder {
                    RecorderProgram::Cli(nixcap) => (
                        "nixcap record",
                        record_command(nixcap, capture, &socket, upstream),
                    ),
                    RecorderProgram::Library(bench) => {
                        library = true;
                        let mut c = Command::new(bench);
                        c.arg("record-with-library")
                            .arg(capture)
                            .arg(&socket)
                            .arg(upstream);
                        c.stdin(Stdio::piped());
                        ("nixcap-bench record-with-library", c)
                    }
                }
            }
            Variant::NixcapRotating => {
                let RecorderProgram::Cli(nixcap) = &tools.recorder else {
                    return Err(Error::Usage(
                        "rotation needs the `nixcap` binary as the recorder".to_owned(),
                    ));
                };
                let store = Self::upload_dir(capture);
                std::fs::create_dir_all(&store)
                    .doing(|| format!("creating {}", store.display()))?;
                let mut c = record_command(nixcap, capture, &socket, upstream);
                c.arg("--rotate-size")
                    .arg(ROTATION_FILE_BYTES.to_string())
                    .arg("--upload")
                    .arg(format!("file://{}/", store.display()))
                    .arg("--upload-drain")
                    .arg("60");
                ("nixcap record --rotate-size", c)
            }
            Variant::NixcapFlight => {
                let RecorderProgram::Cli(nixcap) = &tools.recorder else {
                    return Err(Error::Usage(
                        "the flight recorder needs the `nixcap` binary as the recorder".to_owned(),
                    ));
                };
                let _ = std::fs::remove_file(capture);
                let mut c = record_command(nixcap, capture, &socket, upstream);
                // --force: a journal left by an earlier run is overwritten.
                c.args(["--force", "--keep", "failed"]);
                ("nixcap record --keep failed", c)
            }
            Variant::Socat | Variant::SocatVerbose => {
                let Some(socat) = &tools.socat else {
                    return Err(Error::Program {
                        program: "socat".to_owned(),
                        message: "not installed".to_owned(),
                    });
                };
                let mut c = Command::new(socat);
                if variant == Variant::SocatVerbose {
                    c.arg("-v");
                }
                c.arg(format!("UNIX-LISTEN:{},fork", socket.display()));
                c.arg(format!("UNIX-CONNECT:{}", upstream.display()));
                c.stdin(Stdio::null());
                ("socat", c)
            }
        };
        command.stdout(Stdio::null());
        // The recorder prints one line when it starts and a summary when it
        // stops; socat -v prints its dump. Neither is wanted here.
        command.stderr(Stdio::null());
        let child = command.spawn().doing(|| format!("starting {program}"))?;
        let mut relay = Relay {
            variant,
            child: Some(child),
            socket,
            capture: (variant == Variant::Nixcap).then(|| capture.to_path_buf()),
            library,
            _dir: Some(dir),
        };
        relay.wait_listening(program)?;
        Ok(relay)
    }

    fn wait_listening(&mut self, program: &str) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.socket.exists() {
                return Ok(());
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(Error::Program {
                        program: program.to_owned(),
                        message: format!("exited before listening ({status})"),
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Program {
                    program: program.to_owned(),
                    message: format!("not listening after {START_TIMEOUT:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn is_recorder(&self) -> bool {
        matches!(
            self.variant,
            Variant::Nixcap | Variant::NixcapRotating | Variant::NixcapFlight
        )
    }

    /// The variant.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The socket clients connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The relay process's peak resident set size (`VmHWM`) in bytes, if it
    /// is a process of its own.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        peak_rss_bytes(pid)
    }

    /// CPU seconds (user and system) the relay process has used so far,
    /// with those of the children it forked (socat forks one per
    /// connection): waits up to half a second for them to exit and be
    /// reaped, so that their time is in the parent's account.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.child.as_ref()?.id();
        let deadline = Instant::now() + Duration::from_millis(500);
        while has_children(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        cpu_seconds(pid)
    }

    /// Stops the relay and waits for it to exit.
    pub fn stop(mut self) -> Result<Stopped> {
        let capture = self.capture.take();
        let Some(mut child) = self.child.take() else {
            return Ok(Stopped {
                capture,
                peak_rss_bytes: None,
            });
        };
        if self.library {
            // Closing standard input tells the child to finish.
            drop(child.stdin.take());
        } else {
            let signal = if self.is_recorder() { "-INT" } else { "-TERM" };
            send_signal(child.id(), signal)?;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut peak = None;
        let status = loop {
            // Read before reaping: an exited process has no VmHWM.
            if let Some(bytes) = peak_rss_bytes(child.id()) {
                peak = Some(bytes);
            }
            if let Some(status) = child
                .try_wait()
                .doing(|| "waiting for a relay".to_owned())?
            {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Program {
                    program: self.variant.label().to_owned(),
                    message: format!("did not stop within {STOP_TIMEOUT:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // socat exits with 143 on SIGTERM; the recorder must exit cleanly.
        if self.is_recorder() && !status.success() {
            return Err(Error::Program {
                program: self.variant.label().to_owned(),
                message: format!("exited with {status}"),
            });
        }
        Ok(Stopped {
            capture,
            peak_rss_bytes: peak,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (such as `-INT`) to the process `pid`, which this program started.
fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .doing(|| format!("running kill {signal} {pid}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Program {
            program: "kill".to_owned(),
            message: format!("kill {signal} {pid} failed ({status})"),
        })
    }
}

/// Whether process `pid` has children (live or not yet reaped).
fn has_children(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("children"))
            .is_ok_and(|children| !children.trim().is_empty())
    })
}

/// utime + stime + cutime + cstime of process `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

/// `USER_HZ`, which Linux fixes at 100 for every architecture it reports
/// `/proc/<pid>/stat` times in.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces: fields are
    // counted from the last `)`. utime is field 14, so the 12th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ticks(11)? + ticks(12)? + ticks(13)? + ticks(14)?)
}

/// `VmHWM` of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let mut status = String::new();
    File::open(format!("/proc/{pid}/status"))
        .ok()?
        .read_to_string(&mut status)
        .ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tnixcap\nVmPeak:\t  20000 kB\nVmHWM:\t    6144 kB\nVmRSS:\t 5000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(6144 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn parses_cpu_ticks() {
        let stat =
            "4242 (socat x) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 3 2 20 0 1 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(17 + 5 + 3 + 2));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn rotation_moves_the_first_variant() {
        let all = Variant::ALL;
        assert_eq!(Variant::rotation(0, &all)[0], Variant::Direct);
        assert_eq!(Variant::rotation(1, &all)[0], Variant::Nixcap);
        assert_eq!(Variant::rotation(5, &all)[0], Variant::Nixcap);
        assert_eq!(Variant::rotation(3, &all).len(), 4);
    }
}
