use super::*;
use nixcap_capture::read_capture;
use std::sync::Mutex;
use std::time::Duration;

/// An output the test can read back after the relay is done with it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sh(script: &str) -> StdioConfig {
    StdioConfig::new(vec!["sh".into(), "-c".into(), script.into()])
}

#[test]
fn a_session_is_relayed_and_recorded_byte_for_byte() {
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let output = Shared::default();
    let (report, outcome) = record_stdio_to(
        sh("cat; printf end"),
        Vec::new(),
        WriterOptions::default(),
        io::Cursor::new(input.clone()),
        output.clone(),
    )
    .unwrap();
    assert!(report.status.success());
    assert!(
        outcome.finished && outcome.problems.is_empty(),
        "{outcome:?}"
    );
    assert!(!outcome.relay_vanished);
    let mut expected = input.clone();
    expected.extend_from_slice(b"end");
    assert_eq!(*output.0.lock().unwrap(), expected);
    assert_eq!(report.bytes_client_to_server, input.len() as u64);
    assert_eq!(report.bytes_server_to_client, expected.len() as u64);

    let capture = read_capture(outcome.output.unwrap().as_slice()).unwrap();
    assert_eq!(capture.header.metadata["transport"], "stdio");
    assert_eq!(capture.connections.len(), 1);
    let connection = &capture.connections[0];
    assert_eq!(connection.conn, STDIO_CONN);
    assert_eq!(
        connection.opened.metadata["command"],
        "sh -c 'cat; printf end'"
    );
    assert_eq!(connection.stream(Direction::ClientToServer), input);
    assert_eq!(connection.stream(Direction::ServerToClient), expected);
    let closed = connection.closed.as_ref().unwrap();
    assert_eq!(closed.reason, CloseReason::CleanEof);
}

#[test]
fn the_program_exit_status_is_reported() {
    let (report, outcome) = record_stdio_to(
        sh("exit 3"),
        Vec::new(),
        WriterOptions::default(),
        io::empty(),
        io::sink(),
    )
    .unwrap();
    assert_eq!(report.status.code(), Some(3));
    assert!(outcome.finished);
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let error = record_stdio_to(
        StdioConfig::new(vec!["/nonexistent/nixcap-remote".into()]),
        Vec::new(),
        WriterOptions::default(),
        io::empty(),
        io::sink(),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/nixcap-remote"),
        "{error}"
    );
}

/// A tee stream of an open, one data chunk each way and, optionally, the client's end of
/// input, with no close: what a killed relay leaves.
fn killed_relay_stream(client_eof: bool) -> Vec<u8> {
    let mut tee = Vec::new();
    tee.push(TEE_OPEN);
    put_u64(&mut tee, 1_000);
    put_u64(&mut tee, 5);
    tee.push(0);
    tee.extend_from_slice(&[0; 12]);
    put_map(
        &mut tee,
        &BTreeMap::from([("k".to_owned(), "v".to_owned())]),
    );
    put_map(&mut tee, &BTreeMap::new());
    for (direction, bytes) in [(0u8, b"ping".as_slice()), (1, b"pong")] {
        tee.push(TEE_DATA);
        tee.push(direction);
        put_u64(&mut tee, 10);
        put_u32(&mut tee, bytes.len() as u32);
        tee.extend_from_slice(bytes);
    }
    if client_eof {
        tee.push(TEE_CLIENT_EOF);
        put_u64(&mut tee, 11);
    }
    tee
}

#[test]
fn a_relay_killed_after_the_client_ended_leaves_a_clean_capture() {
    let outcome = write_stdio_capture(
        killed_relay_stream(true).as_slice(),
        Vec::new(),
        WriterOptions::default(),
    );
    assert!(
        outcome.finished && outcome.problems.is_empty(),
        "{outcome:?}"
    );
    assert!(outcome.relay_vanished);
    let capture = read_capture(outcome.output.unwrap().as_slice()).unwrap();
    let connection = &capture.connections[0];
    assert_eq!(connection.stream(Direction::ClientToServer), b"ping");
    assert_eq!(connection.stream(Direction::ServerToClient), b"pong");
    assert_eq!(
        connection.closed.as_ref().unwrap().reason,
        CloseReason::CleanEof
    );
}

#[test]
fn a_cut_tee_stream_keeps_what_came_before_and_says_where() {
    let mut tee = killed_relay_stream(false);
    // A data message cut inside its bytes.
    tee.push(TEE_DATA);
    tee.push(1);
    put_u64(&mut tee, 12);
    put_u32(&mut tee, 100);
    tee.extend_from_slice(b"half");
    let outcome = write_stdio_capture(tee.as_slice(), Vec::new(), WriterOptions::default());
    assert!(outcome.finished);
    assert_eq!(outcome.problems.len(), 1);
    assert!(
        outcome.problems[0].contains("inside a message"),
        "{:?}",
        outcome.problems
    );
    let capture = read_capture(outcome.output.unwrap().as_slice()).unwrap();
    let connection = &capture.connections[0];
    assert_eq!(connection.stream(Direction::ServerToClient), b"pong");
    assert!(matches!(
        connection.closed.as_ref().unwrap().reason,
        CloseReason::Error { .. }
    ));
}

#[test]
fn a_tee_stream_that_is_not_one_is_refused() {
    let outcome = write_stdio_capture(
        b"\x09garbage".as_slice(),
        Vec::new(),
        WriterOptions::default(),
    );
    assert!(!outcome.finished);
    assert!(
        outcome.problems[0].contains("message type 9"),
        "{:?}",
        outcome.problems
    );
    let outcome = write_stdio_capture(
        [TEE_DATA, 0, 0].as_slice(),
        Vec::new(),
        WriterOptions::default(),
    );
    assert!(!outcome.finished);
}

#[test]
fn session_names_are_utc_and_sortable() {
    let t = UNIX_EPOCH + Duration::new(1_764_747_082, 123_456_789);
    assert_eq!(
        session_file_name(t, 42),
        "20251203T073122.123456789Z-42.nixcap"
    );
    assert_eq!(
        session_file_name(UNIX_EPOCH, 1),
        "19700101T000000.000000000Z-1.nixcap"
    );
    // Leap day.
    let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert!(session_file_name(leap, 1).starts_with("20000229T"));
}
