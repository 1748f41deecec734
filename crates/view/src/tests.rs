use nixcap_test_support::real_sessions::{capture_bytes_from_session, load_real_session};

use super::*;

fn decoded(name: &str) -> DecodedCapture {
    let bytes = capture_bytes_from_session(&load_real_session(name));
    let capture = nixcap_capture::read_capture(&bytes[..]).expect("capture reads back");
    DecodedCapture::new(capture)
}

#[test]
fn every_connection_of_a_real_cli_session_decodes_into_exchanges() {
    for name in [
        "nix-2.8.0.nxsess.zst",
        "nix-2.26.3.nxsess.zst",
        "nix-2.34.8.nxsess.zst",
    ] {
        let capture = decoded(name);
        assert!(!capture.connections.is_empty(), "{name}");
        for connection in &capture.connections {
            assert!(
                connection.fully_decoded(),
                "{name} conn {}: {:?}",
                connection.conn,
                connection.undecoded().next()
            );
            assert!(
                connection.session.negotiated.is_some(),
                "{name} conn {}",
                connection.conn
            );
            for exchange in &connection.exchanges {
                assert!(
                    exchange.request.is_some(),
                    "{name} conn {} op {}",
                    connection.conn,
                    exchange.seq
                );
                assert!(
                    !matches!(exchange.outcome, Outcome::Unfinished),
                    "{name} conn {} op {} {} unfinished",
                    connection.conn,
                    exchange.seq,
                    exchange.op_name()
                );
                assert!(exchange.start_nanos <= exchange.end_nanos);
            }
            // Every client starts with SetOptions.
            if let Some(first) = connection.exchanges.first() {
                assert_eq!(
                    first.op,
                    Some(Op::SetOptions),
                    "{name} conn {}",
                    connection.conn
                );
            }
        }
    }
}

#[test]
fn exchange_byte_counts_add_up_to_the_streams() {
    let capture = decoded("nix-2.34.8.nxsess.zst");
    for (connection, raw) in capture.connections.iter().zip(&capture.capture.connections) {
        let handshake_and_stray = |direction: Direction| -> u64 {
            connection
                .events
                .iter()
                .filter(|e| e.event.direction == direction && e.event.kind.seq().is_none())
                .map(|e| e.event.len)
                .sum()
        };
        let client: u64 = connection
            .exchanges
            .iter()
            .map(|e| e.client_bytes)
            .sum::<u64>()
            + handshake_and_stray(Direction::ClientToDaemon);
        let daemon: u64 = connection
            .exchanges
            .iter()
            .map(|e| e.daemon_bytes)
            .sum::<u64>()
            + handshake_and_stray(Direction::DaemonToClient);
        assert_eq!(
            client,
            raw.byte_count(nixcap_capture::Direction::ClientToServer)
        );
        assert_eq!(
            daemon,
            raw.byte_count(nixcap_capture::Direction::ServerToClient)
        );
    }
}

#[test]
fn histogram_and_versions_are_reported() {
    let capture = decoded("client-2.8.0-daemon-2.34.8.nxsess.zst");
    let histogram = capture.op_histogram();
    assert!(histogram.get("SetOptions").copied().unwrap_or(0) > 0);
    let versions = capture.versions();
    assert!(versions
        .iter()
        .all(|v| v.negotiated.as_ref().map(|n| n.version) == Some(ProtocolVersion::new(1, 34))));
    assert!(versions
        .iter()
        .any(|v| v.daemon_nix_version.as_ref().map(|s| s.to_string()) == Some("2.34.8".into())));
}
