//! The library [`Server`], started on every committed capture, answers a
//! client that sends each connection's recorded client bytes with exactly
//! the recorded daemon bytes, and its report shows no divergence.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nixcap_capture::{read_capture_file, Direction};
use nixcap_replay::{Options, Server};

#[test]
fn recorded_requests_get_the_recorded_answers() {
    insta::glob!("../../../../testdata/captures", "**/*.nixcap", |path| {
        let name = path.display().to_string();
        let capture = read_capture_file(path).unwrap();
        let server = Server::start_file(path, Options::default()).unwrap();
        for connection in &capture.connections {
            let sent = connection.stream(Direction::ClientToServer);
            let expected = connection.stream(Direction::ServerToClient);
            let stream = UnixStream::connect(server.socket_path()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            // A separate writer, so that a large upload and the answers
            // cannot fill both socket buffers and wait on each other.
            let feeder = std::thread::spawn(move || {
                let written = writer.write_all(&sent);
                let _ = writer.shutdown(Shutdown::Write);
                written
            });
            let mut answered = Vec::new();
            (&stream).read_to_end(&mut answered).unwrap();
            feeder.join().unwrap().unwrap();
            assert!(
                answered == expected,
                "{name} conn {}: {} bytes answered, {} recorded, first difference at {:?}",
                connection.conn,
                answered.len(),
                expected.len(),
                answered.iter().zip(&expected).position(|(a, b)| a != b)
            );
        }
        let report = server.finish();
        assert!(!report.diverged(), "{name}:\n{}", report.render());
        assert_eq!(
            report.connections,
            capture.connections.len() as u64,
            "{name}"
        );
        let requests: usize = nixcap_view::DecodedCapture::new(capture)
            .connections
            .iter()
            .map(|c| c.exchanges.len())
            .sum();
        assert!(requests > 0, "{name}");
        assert_eq!(report.served, requests as u64, "{name}");
        assert!(report.unmatched.is_empty(), "{name}");
        assert!(report.upload_mismatches.is_empty(), "{name}");
        assert!(report.problems.is_empty(), "{name}:\n{}", report.render());
    });
}
