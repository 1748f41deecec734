//! `check` against a target of a protocol no test peer speaks: a small fake
//! daemon of 1.24 (Nix 2.3's minor, below AddToStore's 1.25 change) made
//! from the recording. It speaks that version's handshake, decodes what the
//! checker sends with the codec at 1.24 and answers each request, once it
//! and its upload have arrived, with the recorded reply translated to 1.24.
//! The checker must send AddToStore with the arguments of 1.24 and the NAR
//! inline, and list both changes.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers may unwrap; clippy only exempts #[test] functions"
)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nixcap_check::{check, Options};
use nixcap_view::{DecodedCapture, Outcome};
use nixcap_wire::handshake::{DaemonHello, HandshakePiece};
use nixcap_wire::ops::{AddToStoreArgs, Request};
use nixcap_wire::primitives::Writer;
use nixcap_wire::session::{Direction, Event, EventKind, SessionDecoder};
use nixcap_wire::stderr::StderrMessage;
use nixcap_wire::translate::{self, Action, ReplyOutcome};
use nixcap_wire::{Negotiated, ProtocolVersion};

fn load(series: &str, name: &str) -> DecodedCapture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(series)
        .join(name);
    DecodedCapture::new(nixcap_capture::read_capture_file(path).unwrap())
}

/// What the fake daemon decoded of each played connection.
type Seen = Arc<Mutex<Vec<Vec<Event>>>>;

/// Serves played connections in the order their hellos arrive, the n-th
/// answered from the recording's n-th connection.
fn old_daemon(
    recorded: Arc<DecodedCapture>,
    version: ProtocolVersion,
) -> (tempfile::TempDir, PathBuf, Seen) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("old.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let seen: Seen = Arc::default();
    let served = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let recorded = Arc::clone(&recorded);
            let served = Arc::clone(&served);
            std::thread::spawn(move || serve(client, &recorded, version, &served));
        }
    });
    (dir, socket, seen)
}

fn serve(mut client: UnixStream, recorded: &DecodedCapture, version: ProtocolVersion, seen: &Seen) {
    let live = Negotiated::new(version);
    let mut decoder = SessionDecoder::new();
    let mut events = Vec::new();
    let mut index = None;
    let mut pending: Option<(u64, Request)> = None;
    let mut buf = vec![0; 65536];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        decoder.feed(Direction::ClientToDaemon, &buf[..n]);
        let mut out = Writer::new();
        for event in decoder.drain_events().collect::<Vec<_>>() {
            if event.direction != Direction::ClientToDaemon {
                continue;
            }
            match &event.kind {
                EventKind::Handshake {
                    piece: HandshakePiece::ClientHello(_),
                } => {
                    let mut list = seen.lock().unwrap();
                    index = Some(list.len());
                    list.push(Vec::new());
                    DaemonHello { version }.encode(&mut out);
                }
                // The client's last piece at 1.24; no Nix version or trust
                // below 1.33 and 1.35.
                EventKind::Handshake {
                    piece: HandshakePiece::ClientReserveSpace { .. },
                } => {
                    StderrMessage::Last.encode(&mut out);
                }
                EventKind::Request { seq, request } => {
                    pending = Some((*seq, (**request).clone()));
                }
                _ => {}
            }
            let upload_done = match (&event.kind, &pending) {
                (EventKind::Request { request, .. }, _) => {
                    request.op().upload(&live) == nixcap_wire::ops::Upload::None
                }
                (EventKind::NarData { end, .. }, _) => *end,
                (EventKind::FramedEnd { .. }, _) => true,
                _ => false,
            };
            events.push(event);
            if let (true, Some((seq, request)), Some(index)) =
                (upload_done, pending.as_ref(), index)
            {
                let connection = &recorded.connections[index];
                let exchange = connection.exchanges.iter().find(|e| e.seq == *seq).unwrap();
                let Outcome::Reply(reply) = &exchange.outcome else {
                    panic!("op {seq} of the recording has no reply");
                };
                let from = connection.session.negotiated.clone().unwrap();
                let translated = translate::reply(Some(request), reply, &from, &live).unwrap();
                let ReplyOutcome::Reply(reply) = translated.value else {
                    panic!("op {seq}: the translated reply is an error");
                };
                StderrMessage::Last.encode(&mut out);
                reply.encode(&mut out, &live);
                pending = None;
            }
        }
        let bytes = out.into_bytes();
        decoder.feed(Direction::DaemonToClient, &bytes);
        let _ = decoder.drain_events().count();
        if client.write_all(&bytes).is_err() {
            break;
        }
    }
    if let Some(index) = index {
        seen.lock().unwrap()[index] = events;
    }
}

#[test]
fn a_1_38_add_is_sent_to_a_1_24_daemon_with_legacy_arguments_and_an_inline_nar() {
    let recorded = Arc::new(load("nix-2.34", "add.nixcap"));
    let (_dir, socket, seen) = old_daemon(Arc::clone(&recorded), ProtocolVersion::new(1, 24));
    let options = Options::default().with_timeout(Duration::from_secs(10));
    let report = check(&recorded, &format!("unix://{}", socket.display()), &options)
        .unwrap()
        .report;
    assert!(report.problems.is_empty(), "{report}");
    assert_eq!(report.ops_sent, report.ops_recorded, "{report}");
    assert_eq!(report.target_protocols, vec!["1.24".to_owned()], "{report}");

    // The notes: each connection's handshake, and each AddToStore's
    // arguments converted (the upload going inline is said there).
    let handshake: Vec<_> = report
        .translations
        .iter()
        .filter(|n| n.seq.is_none())
        .collect();
    assert_eq!(handshake.len(), report.connections, "{report}");
    assert!(handshake.iter().all(|n| n.change.field == "version"
        && n.change
            .detail
            .starts_with("the recording ran at protocol 1.38; the target speaks 1.24")));
    let adds: Vec<_> = report
        .translations
        .iter()
        .filter(|n| n.seq.is_some())
        .collect();
    assert_eq!(adds.len(), 3, "{report}");
    for note in &adds {
        assert_eq!(note.change.subject, "AddToStore", "{report}");
        assert_eq!(note.change.field, "args", "{report}");
        assert_eq!(note.change.action, Action::Converted, "{report}");
        assert!(
            note.change
                .detail
                .contains("method fixed:r:sha256 becomes the arguments below 1.25")
                && note
                    .change
                    .detail
                    .contains("the upload becomes an inline NAR"),
            "{report}"
        );
    }
    let text = report.to_string();
    assert!(
        text.contains("translated for the target's protocol:"),
        "{text}"
    );
    assert!(
        text.contains("AddToStore args: converted (method fixed:r:sha256"),
        "{text}"
    );

    // What the 1.24 daemon decoded: every byte, AddToStore with the legacy
    // arguments and the recorded NAR inline, whole.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (index, events) in seen.iter().enumerate() {
        assert!(
            !events.iter().any(|e| matches!(
                e.kind,
                EventKind::Opaque { .. } | EventKind::Truncated { .. }
            )),
            "connection {index}: {events:#?}"
        );
        let request = events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Request { request, .. } => match &**request {
                    Request::AddToStore { args, .. } => Some(args.clone()),
                    _ => None,
                },
                _ => None,
            })
            .unwrap();
        // `fixed` 1 with the method spelled out, which a daemon below 1.25
        // reads as Nix's own `fixed` 0 (recursive sha256).
        assert_eq!(
            request,
            AddToStoreArgs::Legacy {
                fixed: true,
                recursive: true,
                hash_algo: "sha256".to_owned()
            },
            "connection {index}"
        );
        let sent: Vec<u8> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::NarData { data, .. } => Some(data.as_bytes().to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        let connection = &recorded.connections[index];
        let framed: Vec<u8> = connection
            .events
            .iter()
            .filter_map(|t| match &t.event.kind {
                EventKind::FramedData { data, .. } => Some(data.as_bytes().to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(!sent.is_empty());
        assert_eq!(
            sent, framed,
            "connection {index}: the NAR is the recorded upload"
        );
        assert!(events
            .iter()
            .any(|e| matches!(e.kind, EventKind::NarData { end: true, .. })));
    }

    // The answers, compared across versions: AddToStore replies with only
    // the path below 1.25, and the diff says so; the requests the target
    // saw differ in their arguments, each difference with the same note.
    assert_eq!(
        report
            .diff
            .field_diffs()
            .filter(|(_, _, f)| f.path == "reply.info")
            .count(),
        3,
        "{report}"
    );
    for (_, op, field) in report.diff.field_diffs() {
        assert_eq!(op.op, "AddToStore", "{report}");
        assert!(
            field.note.as_deref().is_some_and(|n| n.contains("1.25")),
            "{}: {report}",
            field.path
        );
    }
}
