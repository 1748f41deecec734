//! What to send on each connection, taken from the capture: the client's
//! handshake pieces, and per op the request bytes, the upload sent with it
//! (framed stream, inline NAR) and the data that answered `STDERR_READ`.
//!
//! The bytes are sliced out of the recorded client stream by the offsets of
//! the decoded events, so a request sent at the recorded version is exactly
//! what the recorded client sent.

use nixcap_capture::Direction as CaptureDirection;
use nixcap_view::{DecodedCapture, DecodedConnection};
use nixcap_wire::handshake::HandshakePiece;
use nixcap_wire::ops::{Op, Request};
use nixcap_wire::session::{Direction, EventKind};
use nixcap_wire::{Negotiated, ProtocolVersion};

/// One recorded connection, ready to be played.
#[derive(Debug, Clone)]
pub(crate) struct ConnPlan {
    /// The connection id in the capture.
    pub conn: u64,
    /// When the recorded connection was opened.
    pub opened_nanos: u64,
    /// The client's hello, as recorded.
    pub hello: Vec<u8>,
    /// The version the recorded client announced.
    pub client_version: ProtocolVersion,
    /// The recorded client pieces after the hello.
    pub rest: Vec<HandshakePiece>,
    /// Their bytes, as recorded.
    pub rest_bytes: Vec<u8>,
    /// What the recorded connection negotiated.
    pub negotiated: Option<Negotiated>,
    /// The ops, in order.
    pub ops: Vec<OpPlan>,
    /// Why the connection cannot be played beyond its ops, if it cannot.
    pub cut: Option<String>,
}

/// One recorded op.
#[derive(Debug, Clone)]
pub(crate) struct OpPlan {
    /// The op's number in its connection.
    pub seq: u64,
    /// The op.
    pub op: Op,
    /// The decoded request.
    pub request: Request,
    /// The request's bytes as recorded.
    pub request_bytes: Vec<u8>,
    /// The upload sent right after the request (framed stream or inline
    /// NAR), as recorded.
    pub upload: Vec<u8>,
    /// The data of every `STDERR_READ` answer, joined.
    pub read_data: Vec<u8>,
    /// The payload of the upload (framed data, inline NAR or `STDERR_READ`
    /// answers) without its framing, for re-sending it in another form.
    pub payload: Vec<u8>,
    /// When the recorded request was complete.
    pub start_nanos: u64,
    /// When the recorded op's last event was complete.
    pub end_nanos: u64,
}

impl OpPlan {
    pub fn name(&self) -> &'static str {
        self.op.name()
    }
}

/// The plans of every connection of a capture, in the order they were
/// opened.
pub(crate) fn plan(capture: &DecodedCapture) -> Vec<ConnPlan> {
    let mut plans: Vec<ConnPlan> = capture
        .connections
        .iter()
        .filter_map(|decoded| {
            let raw = capture.capture.connection(decoded.conn)?;
            Some(plan_connection(
                decoded,
                &raw.stream(CaptureDirection::ClientToServer),
            ))
        })
        .collect();
    plans.sort_by_key(|p| (p.opened_nanos, p.conn));
    plans
}

fn slice(stream: &[u8], offset: u64, len: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(stream.len());
    let end = usize::try_from(offset.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(stream.len());
    &stream[start..end]
}

fn plan_connection(connection: &DecodedConnection, client: &[u8]) -> ConnPlan {
    let mut plan = ConnPlan {
        conn: connection.conn,
        opened_nanos: connection.opened.t_nanos,
        hello: Vec::new(),
        client_version: connection
            .session
            .client_version
            .unwrap_or(ProtocolVersion::LATEST),
        rest: Vec::new(),
        rest_bytes: Vec::new(),
        negotiated: connection.session.negotiated.clone(),
        ops: Vec::new(),
        cut: None,
    };
    for timed in &connection.events {
        let event = &timed.event;
        if event.direction != Direction::ClientToDaemon {
            continue;
        }
        if let EventKind::Handshake { piece } = &event.kind {
            let bytes = slice(client, event.offset, event.len);
            if matches!(piece, HandshakePiece::ClientHello(_)) {
                plan.hello = bytes.to_vec();
            } else {
                plan.rest.push(piece.clone());
                plan.rest_bytes.extend_from_slice(bytes);
            }
        }
    }
    if plan.hello.is_empty() {
        plan.cut = Some("the capture holds no complete client hello".to_owned());
        return plan;
    }
    if plan.negotiated.is_none() {
        plan.cut = Some("the recorded handshake did not complete".to_owned());
        return plan;
    }
    for exchange in &connection.exchanges {
        let (Some(op), Some(request)) = (exchange.op, &exchange.request) else {
            plan.cut = Some(format!(
                "op {} ({}) was not decoded in the capture, so it and what follows are not sent",
                exchange.seq,
                exchange.op_name()
            ));
            return plan;
        };
        let mut op_plan = OpPlan {
            seq: exchange.seq,
            op,
            request: request.clone(),
            request_bytes: Vec::new(),
            upload: Vec::new(),
            read_data: Vec::new(),
            payload: Vec::new(),
            start_nanos: exchange.start_nanos,
            end_nanos: exchange.end_nanos,
        };
        let mut upload_cut = false;
        for &index in &exchange.events {
            let event = &connection.events[index].event;
            if event.direction != Direction::ClientToDaemon {
                continue;
            }
            let bytes = slice(client, event.offset, event.len);
            match &event.kind {
                EventKind::Request { .. } => op_plan.request_bytes.extend_from_slice(bytes),
                EventKind::ReadAnswer { data, .. } => {
                    op_plan.read_data.extend_from_slice(data.as_bytes());
                    op_plan.payload.extend_from_slice(data.as_bytes());
                }
                EventKind::FramedData { data, .. } | EventKind::NarData { data, .. } => {
                    op_plan.upload.extend_from_slice(bytes);
                    op_plan.payload.extend_from_slice(data.as_bytes());
                }
                EventKind::FramedHeader { .. } | EventKind::FramedEnd { .. } => {
                    op_plan.upload.extend_from_slice(bytes)
                }
                _ => upload_cut = true,
            }
        }
        if upload_cut {
            plan.cut = Some(format!(
                "the upload of op {} ({}) was not decoded in the capture",
                exchange.seq,
                op.name()
            ));
            return plan;
        }
        plan.ops.push(op_plan);
    }
    if let Some(undecoded) = connection
        .undecoded()
        .find(|e| e.event.direction == Direction::ClientToDaemon)
    {
        plan.cut = Some(format!(
            "the client's bytes from offset {} were not decoded in the capture",
            undecoded.event.offset
        ));
    }
    plan
}
