//! A remote build: `nix-build --builders 'ssh-ng://localhost?remote-program=W …' -j0` makes the
//! daemon hand the build to the "machine" behind `W`, which is a second local daemon reached
//! through `nix-daemon --stdio` (or, for `ssh://`, `nix-store --serve --write` on that store). `W` runs `nixcap record --stdio` in front of it; the capture of
//! the build hook's session must decode fully. Then the same build, after the output is deleted
//! again, with `W` running `nixcap replay --stdio` of that capture: the client must print and
//! exit the same, with no builder machine at all.
//!
//! These tests skip (printing why) when a Nix version is missing, and fail instead when
//! `NIXCAP_REQUIRE_NIX=1` is set.

use std::path::Path;

use nixcap_test_support::{peer_or_skip, Daemon, DaemonOptions, NixVersion};

use super::remote::{assert_fully_decoded, client, Work, NIXCAP};
use super::replay::{stdio_divergences, stdio_report};

/// A derivation only this test builds, so that no other store has its output.
const REMOTE_NIX: &str = r#"derivation {
  name = "built-on-a-builder";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo built by the builder machine > $out" ];
}
"#;

/// `scheme` is `ssh-ng` (the worker protocol, `nix-daemon --stdio`) or `ssh` (the serve
/// protocol, `nix-store --serve --write`).
fn build_is_recorded_and_replayed(version: NixVersion, scheme: &str) {
    let remote = match scheme {
        "ssh-ng" => "nix-daemon",
        _ => "nix-store",
    };
    let Some(peer) = peer_or_skip(version) else {
        return;
    };
    let work = Work::new();
    std::fs::write(work.path().join("remote.nix"), REMOTE_NIX).unwrap();
    let nixcap_dir = Path::new(NIXCAP).parent().unwrap().to_path_buf();
    // The builder machine.
    let builder = Daemon::start(&peer, DaemonOptions::new());
    // The daemon the client talks to; its build hook runs the remote program, so it must see
    // the working directory, the nixcap binary and the builder's socket.
    let local = Daemon::start(
        &peer,
        DaemonOptions::new()
            .bind_dir(work.path())
            .bind_dir(&nixcap_dir)
            .bind_dir(builder.state_dir()),
    );
    // One remote-program path for both runs, since the client's log names the machine.
    let program = work.path().join("remote-program");
    let machine = format!(
        "{scheme}://localhost?remote-program={} {} - 1 1",
        program.display(),
        "x86_64-linux"
    );
    let build = || {
        client(&peer, &work, "nix-build", &[builder.state_dir()])
            .store(&local)
            .args(["--no-out-link", "-j0", "--builders", &machine, "remote.nix"])
            .output()
            .unwrap()
    };

    work.script(
        "remote-program",
        &format!(
            "NIX_REMOTE='{}' exec '{NIXCAP}' record --stdio -w '{}' -- {remote} \"$@\"",
            builder.store_uri(),
            work.captures_dir().display(),
        ),
    );
    let recorded = build();
    let stdout = String::from_utf8_lossy(&recorded.stdout).into_owned();
    assert!(
        recorded.status.success(),
        "nix-build --builders '{machine}' ({}): {}\ndaemon log:\n{}",
        peer.nix_version(),
        String::from_utf8_lossy(&recorded.stderr),
        local.log()
    );
    let out = stdout.trim().to_owned();
    assert!(
        builder.host_path(&out).exists(),
        "{out} was not built on the builder"
    );
    let captures = work.captures();
    assert!(!captures.is_empty(), "no capture was written");
    let names: Vec<String> = captures.iter().map(|(name, _)| name.clone()).collect();
    let mut ops = Vec::new();
    for (name, capture) in captures {
        let decoded = nixcap_view::DecodedCapture::new(capture);
        for connection in &decoded.connections {
            ops.extend(connection.exchanges.iter().map(|e| e.op_name()));
        }
        assert_fully_decoded(&name, decoded.capture);
        let show = std::process::Command::new(NIXCAP)
            .arg("show")
            .arg(work.captures_dir().join(&name))
            .output()
            .unwrap();
        assert!(show.status.success());
        eprintln!("{}", String::from_utf8_lossy(&show.stdout));
    }
    assert!(
        ops.iter().any(|op| op == "BuildDerivation"),
        "the build hook's sessions hold no BuildDerivation: {ops:?}"
    );
    assert_eq!(names.len(), 1, "one build hook session: {ops:?}");

    // The same build again, answered by the replayer.
    let deleted = client(&peer, &work, "nix-store", &[])
        .store(&local)
        .args(["--delete", &out])
        .output()
        .unwrap();
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let capture = work.captures_dir().join(&names[0]);
    let report = work.path().join("replay-report.json");
    work.script(
        "remote-program",
        &format!(
            "exec '{NIXCAP}' replay --stdio --report '{}' '{}'",
            report.display(),
            capture.display()
        ),
    );
    let replayed = build();
    let text = |o: &std::process::Output| {
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(
        text(&replayed),
        text(&recorded),
        "nix-build --builders ({}): replayed and recorded runs differ; daemon log:\n{}",
        peer.nix_version(),
        local.log()
    );
    let report = stdio_report(&report).unwrap_or_else(|err| panic!("{err}"));
    eprintln!("{report:#}");
    assert_eq!(
        stdio_divergences(&report),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert_eq!(report["unused"], serde_json::json!([]), "{report:#}");
}

#[test]
fn nix_2_8_build_on_an_ssh_ng_builder_is_recorded_and_replayed() {
    build_is_recorded_and_replayed(NixVersion::V2_8, "ssh-ng");
}

#[test]
fn nix_2_8_build_on_an_ssh_builder_is_recorded_and_replayed() {
    build_is_recorded_and_replayed(NixVersion::V2_8, "ssh");
}

#[test]
fn nix_2_26_build_on_an_ssh_ng_builder_is_recorded_and_replayed() {
    build_is_recorded_and_replayed(NixVersion::V2_26, "ssh-ng");
}

#[test]
fn nix_2_26_build_on_an_ssh_builder_is_recorded_and_replayed() {
    build_is_recorded_and_replayed(NixVersion::V2_26, "ssh");
}

#[test]
fn nix_2_34_build_on_an_ssh_ng_builder_is_recorded_and_replayed() {
    build_is_recorded_and_replayed(NixVersion::V2_34, "ssh-ng");
}

#[test]
fn nix_2_34_build_on_an_ssh_builder_is_recorded_and_replayed() {
    build_is_recorded_and_replayed(NixVersion::V2_34, "ssh");
}
