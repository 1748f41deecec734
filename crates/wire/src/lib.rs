//! Sans-IO codec for the Nix daemon worker protocol.
//!
//! This crate turns the bytes of a client↔daemon connection into typed
//! values and back. It does no I/O and reads no clock: callers hand it bytes
//! (and timestamps, where they matter) and get values, events or bytes back.
//! Incomplete input is a value ([`session::Event`]s stop, and the decoder
//! waits for more), never an error.
//!
//! Layers, bottom up:
//! - [`primitives`]: u64, bool, padded strings, lists ([`primitives::Reader`],
//!   [`primitives::Writer`]).
//! - [`version`]: protocol versions and feature negotiation.
//! - [`types`]: store paths, content addresses, path infos, derived paths,
//!   build results, realisations, derivations.
//! - [`stderr`]: the log channel (STDERR_NEXT … STDERR_RESULT) and errors.
//! - [`handshake`]: both directions of the handshake at every version.
//! - [`ops`]: every operation's request and reply, per version.
//! - [`serve`]: value encodings of the serve protocol (`nix-store --serve`).
//! - [`nar`], [`framed`], [`export`]: the ways payloads travel.
//! - [`session`]: a streaming decoder for a whole connection.
//! - [`translate`]: requests, replies, log messages and errors of one
//!   version re-expressed for a peer of another, with every change listed.

pub mod bytes;
pub mod export;
pub mod framed;
pub mod handshake;
pub mod nar;
pub mod ops;
pub mod primitives;
pub mod serve;
pub mod session;
pub mod stderr;
pub mod translate;
pub mod types;
pub mod version;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use bytes::ByteString;
pub use version::{Negotiated, ProtocolVersion};
