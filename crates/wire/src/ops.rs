//! Every operation of the worker protocol: its number ([`Op`]), what the
//! client sends after the request's fixed fields ([`Upload`]), the request
//! ([`Request`]) and the reply after STDERR_LAST ([`Reply`]), at every
//! protocol version (protocol reference §7 and §8).
//!
//! A request on the wire is `u64 op` followed by the op's fields. Some ops
//! then stream a payload (a NAR, a framed stream, or strings answering
//! STDERR_READ); [`Op::upload`] says which, and the session decoder reads
//! it. Replies follow the stderr phase; [`Reply`] holds only the fields
//! after STDERR_LAST, so NarFromPath's NAR is not part of it.

mod op;
mod reply;
mod request;

pub use op::*;
pub use reply::*;
pub use request::*;

#[cfg(test)]
mod tests;
