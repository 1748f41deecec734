//! The invariant checker: the decoder's guarantees, checked on a
//! connection's events.

use crate::version::{Negotiated, ProtocolVersion};

use super::events::{Direction, Event, EventKind};

/// A broken session invariant, found by [`check_events`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{direction:?} at offset {offset}: {problem}")]
#[non_exhaustive]
pub struct InvariantError {
    /// The direction.
    pub direction: Direction,
    /// Where.
    pub offset: u64,
    /// What is wrong.
    pub problem: String,
}

/// Checks the decoder's guarantees on a connection's events: each
/// direction's events tile its bytes exactly, and each event re-encodes to
/// exactly its bytes. `negotiated` is the session's negotiation (any value
/// will do if none was reached, since no request or reply is decoded then).
pub fn check_events(
    events: &[Event],
    client: &[u8],
    daemon: &[u8],
    negotiated: Option<&Negotiated>,
) -> Result<(), InvariantError> {
    let fallback = Negotiated::new(ProtocolVersion::LATEST);
    let negotiated = negotiated.unwrap_or(&fallback);
    let mut ends = [0u64, 0u64];
    for event in events {
        let (index, bytes) = match event.direction {
            Direction::ClientToDaemon => (0, client),
            Direction::DaemonToClient => (1, daemon),
        };
        let fail = |problem: String| InvariantError {
            direction: event.direction,
            offset: event.offset,
            problem,
        };
        if event.offset != ends[index] {
            return Err(fail(format!("the previous event ended at {}", ends[index])));
        }
        if event.len == 0 && !matches!(event.kind, EventKind::Reply { .. }) {
            return Err(fail("an event other than a reply is empty".to_owned()));
        }
        let end = event.end();
        let Some(expected) = bytes.get(event.offset as usize..end as usize) else {
            return Err(fail(format!(
                "the event ends at {end}, past the {} bytes fed",
                bytes.len()
            )));
        };
        let encoded = event.kind.to_bytes(negotiated);
        if encoded != expected {
            return Err(fail(format!(
                "re-encoding gives {} bytes that differ from the {} bytes decoded",
                encoded.len(),
                expected.len()
            )));
        }
        ends[index] = end;
    }
    for (index, (direction, bytes)) in [
        (Direction::ClientToDaemon, client),
        (Direction::DaemonToClient, daemon),
    ]
    .into_iter()
    .enumerate()
    {
        if ends[index] != bytes.len() as u64 {
            return Err(InvariantError {
                direction,
                offset: ends[index],
                problem: format!("events cover {} of {} bytes", ends[index], bytes.len()),
            });
        }
    }
    Ok(())
}
