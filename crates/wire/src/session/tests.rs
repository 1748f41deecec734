//! Unit tests of the session decoder: how the two directions wait for each
//! other, opaque and truncated bytes, and the invariant checker.

use super::*;
use crate::handshake::{
    ClientHandshake, ClientHello, DaemonHandshake, DaemonHello, DaemonNixVersion, FeatureList,
};
use crate::primitives::Writer;
use crate::stderr::ErrorInfo;
use crate::stderr::StderrMessage;

const C: Direction = Direction::ClientToDaemon;
const D: Direction = Direction::DaemonToClient;

fn bytes(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    write(&mut w);
    w.into_bytes()
}

/// The two sides of a 1.`minor` handshake, as current Nix sends them.
fn handshake(minor: u8) -> (Vec<u8>, Vec<u8>) {
    let version = ProtocolVersion::new(1, minor);
    let client = bytes(|w| ClientHandshake::typical(version, version, vec![]).encode(w));
    let daemon = bytes(|w| {
        DaemonHandshake {
            hello: DaemonHello { version },
            features: version.at_least(38).then(FeatureList::default),
            nix_version: version
                .at_least(33)
                .then(|| DaemonNixVersion("2.26.3".into())),
            trust: version.at_least(35).then_some(Trust::Trusted),
            drain: vec![StderrMessage::Last],
        }
        .encode(w)
    });
    (client, daemon)
}

fn kinds(decoder: &mut SessionDecoder) -> Vec<String> {
    decoder
        .drain_events()
        .map(|e| {
            let json = serde_json::to_value(&e.kind).unwrap_or_default();
            format!(
                "{} {}",
                e.direction.arrow(),
                json["kind"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn error() -> StderrMessage {
    StderrMessage::Error(ErrorInfo::Structured {
        level: 0,
        name: "Error".into(),
        message: "no".into(),
        traces: vec![],
    })
}

#[test]
fn an_empty_connection_has_no_events() {
    let (events, decoder) = SessionDecoder::decode_all([]);
    assert!(events.is_empty());
    assert!(decoder.is_finished());
    assert_eq!(decoder.negotiated(), None);
}

#[test]
fn the_client_handshake_waits_for_the_daemon_version() {
    let (client, daemon) = handshake(38);
    let mut decoder = SessionDecoder::new();
    decoder.feed(C, &client);
    // Only the hello can be decoded: whether a feature list follows
    // depends on the daemon's version.
    assert_eq!(kinds(&mut decoder), ["C>D handshake"]);
    decoder.feed(D, &daemon[..16]);
    assert_eq!(
        kinds(&mut decoder),
        [
            "D>C handshake",
            "C>D handshake",
            "C>D handshake",
            "C>D handshake"
        ]
    );
    assert_eq!(
        decoder.negotiated(),
        None,
        "the daemon's feature list is still missing"
    );
    decoder.feed(D, &daemon[16..]);
    assert_eq!(
        decoder.negotiated(),
        Some(&Negotiated::new(ProtocolVersion::LATEST))
    );
    assert_eq!(
        decoder.daemon_nix_version(),
        Some(&ByteString::from("2.26.3"))
    );
    assert_eq!(decoder.trust(), Some(Trust::Trusted));
}

#[test]
fn a_daemon_message_after_an_op_waits_until_the_client_decides_its_op() {
    let (client, daemon) = handshake(34);
    let mut decoder = SessionDecoder::new();
    decoder.feed(C, &client);
    decoder.feed(D, &daemon);
    // QueryFailedPaths, which every 2.x daemon refuses fatally.
    decoder.feed(C, &24u64.to_le_bytes());
    decoder.feed(D, &bytes(|w| error().encode(w)));
    decoder.feed(D, &bytes(|w| error().encode(w)));
    let events: Vec<Event> = decoder.drain_events().collect();
    let stderr: Vec<Option<u64>> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Stderr { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    // The first error ends op 0; the second could belong to an op the
    // client has not sent yet, so it waits.
    assert_eq!(stderr, [Some(0)]);
    decoder.finish();
    let rest: Vec<Event> = decoder.drain_events().collect();
    assert!(
        matches!(
            rest[..],
            [Event {
                kind: EventKind::Stderr { seq: None, .. },
                ..
            }]
        ),
        "{rest:?}"
    );
}

#[test]
fn a_bad_magic_makes_the_whole_direction_opaque() {
    let mut decoder = SessionDecoder::with_limits(Limits {
        piece_len: 4,
        ..Limits::default()
    });
    decoder.feed(C, b"GET / HTTP/1.1\r\n");
    let events: Vec<Event> = decoder.drain_events().collect();
    assert_eq!(events.len(), 4, "cut into pieces of four bytes");
    assert!(events.iter().all(
        |e| matches!(&e.kind, EventKind::Opaque { reason, .. } if reason.contains("client magic"))
    ));
    decoder.feed(C, b"Ho");
    decoder.finish();
    let rest: Vec<Event> = decoder.drain_events().collect();
    assert_eq!((rest.len(), rest[0].offset, rest[0].len), (1, 16, 2));
}

#[test]
fn a_version_below_1_10_is_not_decoded_past_the_hellos() {
    let mut decoder = SessionDecoder::new();
    decoder.feed(
        C,
        &bytes(|w| {
            ClientHello {
                version: ProtocolVersion::new(1, 9),
            }
            .encode(w)
        }),
    );
    decoder.feed(
        D,
        &bytes(|w| {
            DaemonHello {
                version: ProtocolVersion::new(1, 38),
            }
            .encode(w)
        }),
    );
    decoder.feed(C, &[0; 8]);
    decoder.finish();
    let events: Vec<Event> = decoder.drain_events().collect();
    let last = events.last().map(|e| &e.kind);
    assert!(
        matches!(last, Some(EventKind::Opaque { reason, .. }) if reason.contains("1.9 is not supported")),
        "{events:?}"
    );
}

#[test]
fn bytes_fed_after_finish_are_opaque_at_the_right_offset() {
    let (client, _) = handshake(38);
    let mut decoder = SessionDecoder::new();
    decoder.feed(C, &client[..10]);
    decoder.finish();
    decoder.feed(C, b"late");
    let events: Vec<Event> = decoder.drain_events().collect();
    assert!(matches!(events[0].kind, EventKind::Truncated { .. }));
    assert_eq!((events[1].offset, events[1].len), (10, 4));
    assert!(
        matches!(&events[1].kind, EventKind::Opaque { reason, .. } if reason.contains("after the connection was finished"))
    );
}

#[test]
fn stderr_read_answers_are_counted_by_the_daemons_reads() {
    let (client, daemon) = handshake(17);
    let mut decoder = SessionDecoder::new();
    decoder.feed(C, &client);
    decoder.feed(D, &daemon);
    // ImportPaths, then an answer the daemon has not asked for yet.
    decoder.feed(
        C,
        &bytes(|w| {
            w.u64(27).string("abc");
        }),
    );
    assert_eq!(
        kinds(&mut decoder).last().map(String::as_str),
        Some("C>D request")
    );
    decoder.feed(D, &bytes(|w| StderrMessage::Read { max_len: 3 }.encode(w)));
    assert_eq!(kinds(&mut decoder), ["D>C stderr", "C>D readAnswer"]);
    // After the daemon's STDERR_LAST the next client bytes are a request.
    decoder.feed(D, &bytes(|w| StderrMessage::Last.encode(w)));
    decoder.feed(
        C,
        &bytes(|w| {
            w.u64(1).string("/nix/store/x");
        }),
    );
    let kinds = kinds(&mut decoder);
    assert!(kinds.contains(&"C>D request".to_string()), "{kinds:?}");
}

#[test]
fn events_serialize_to_json_and_back() {
    let (client, daemon) = handshake(38);
    let (events, decoder) =
        SessionDecoder::decode_all([(C, client.as_slice()), (D, daemon.as_slice())]);
    assert!(check_events(&events, &client, &daemon, decoder.negotiated()).is_ok());
    for event in events {
        let json = serde_json::to_string(&event).unwrap_or_default();
        let back: Event = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, event);
    }
}

#[test]
fn check_events_reports_gaps_and_wrong_bytes() {
    let (client, daemon) = handshake(38);
    let (events, decoder) =
        SessionDecoder::decode_all([(C, client.as_slice()), (D, daemon.as_slice())]);
    let n = decoder.negotiated();
    let gap = check_events(&events[1..], &client, &daemon, n);
    assert!(gap.is_err());
    let mut other = client.clone();
    other[9] ^= 1;
    let wrong = check_events(&events, &other, &daemon, n).err();
    assert!(wrong.is_some_and(|e| e.problem.contains("re-encoding")));
    let short = check_events(&events, &client, &daemon[..daemon.len() - 8], n);
    assert!(short.is_err());
}
