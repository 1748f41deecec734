//! A serve-protocol session of a newer `nix copy --to ssh://` (Nix 2.26: it asks QueryPathInfos
//! of the path before uploading it) served from the capture of an older one (Nix 2.8, which did
//! not ask): refused as `not in capture` by default, answered from the capture with
//! `VersionPolicy::Translate`, with the same bytes the newer recording holds.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nixcap_capture::{read_capture_file, Direction};
use nixcap_replay::{serve_stdio, Options, VersionPolicy};
use nixcap_view::DecodedCapture;

/// An output that the test reads after the session.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fixture(series: &str) -> nixcap_capture::Capture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(format!("nix-{series}/copy-ssh.nixcap"));
    read_capture_file(&path).unwrap()
}

#[test]
fn a_newer_copy_to_an_ssh_store_is_answered_from_an_older_capture_only_when_translating() {
    let older = DecodedCapture::new(fixture("2.8"));
    let newer = fixture("2.26");
    let [connection] = newer.connections.as_slice() else {
        panic!("one session in the 2.26 capture");
    };
    let sent = connection.stream(Direction::ClientToServer);
    let expected = connection.stream(Direction::ServerToClient);

    let output = Shared::default();
    let report = serve_stdio(
        &older,
        Options::default().version_policy(VersionPolicy::Translate),
        std::io::Cursor::new(sent.clone()),
        output.clone(),
    )
    .unwrap();
    assert!(!report.diverged(), "{}", report.render());
    let derived: Vec<&str> = report.derived.iter().map(|d| d.op.as_str()).collect();
    assert_eq!(derived, ["QueryPathInfos"], "{}", report.render());
    assert!(report.unused.is_empty(), "{}", report.render());
    let answered = output.0.lock().unwrap().clone();
    assert!(
        answered == expected,
        "{} bytes answered, {} recorded by 2.26, first difference at {:?}",
        answered.len(),
        expected.len(),
        answered.iter().zip(&expected).position(|(a, b)| a != b)
    );

    // The default policy makes up nothing: the client is told the capture has no answer.
    let report = serve_stdio(
        &older,
        Options::default(),
        std::io::Cursor::new(sent),
        Shared::default(),
    )
    .unwrap();
    let unmatched: Vec<&str> = report.unmatched.iter().map(|u| u.op.as_str()).collect();
    assert_eq!(unmatched, ["QueryPathInfos"], "{}", report.render());
    assert!(report.derived.is_empty(), "{}", report.render());
}
