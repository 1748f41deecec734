//! What the capture thread writes to: one capture [`Writer`], or a rotated
//! set of them ([`crate::rotate::RotatingOutput`]). Both take the
//! recorder's timestamps (nanoseconds since the recorder started).

use std::collections::BTreeMap;
use std::io::Write;

use nixcap_capture::{
    CloseReason, Direction, PeerCred, StoreObjectKind, Summary, WriteError, Writer,
};

/// The operations of a capture writer that the capture thread uses.
pub(crate) trait CaptureOutput {
    /// What a finished output gives back.
    type Out;

    fn open_connection(
        &mut self,
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), WriteError>;
    fn data(
        &mut self,
        conn: u64,
        direction: Direction,
        t: u64,
        bytes: &[u8],
    ) -> Result<(), WriteError>;
    fn close_connection(
        &mut self,
        conn: u64,
        t: u64,
        reason: CloseReason,
    ) -> Result<(), WriteError>;
    fn annotate(&mut self, t: u64, text: &str) -> Result<(), WriteError>;
    /// Adds a store object; returns its id.
    fn store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        contents: &[u8],
    ) -> Result<u64, WriteError>;
    /// Records a store object that could not be had; returns its id.
    fn missing_store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        reason: &str,
    ) -> Result<u64, WriteError>;
    fn flush_if_due(&mut self, now: u64) -> Result<bool, WriteError>;
    fn flush_frame(&mut self) -> Result<(), WriteError>;
    /// Frees idle frame buffers once the open frame is written (see
    /// [`Writer::release_buffers`]), as a drained recorder does before the
    /// capture is read back.
    fn release_buffers(&mut self);
    fn summary(&self) -> Summary;
    fn finish(self, end: u64) -> Result<(Self::Out, Summary), WriteError>;
}

impl<W: Write> CaptureOutput for Writer<W> {
    type Out = W;

    fn open_connection(
        &mut self,
        conn: u64,
        t: u64,
        peer: Option<PeerCred>,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), WriteError> {
        Writer::open_connection(self, conn, t, peer, metadata)
    }

    fn data(
        &mut self,
        conn: u64,
        direction: Direction,
        t: u64,
        bytes: &[u8],
    ) -> Result<(), WriteError> {
        Writer::data(self, conn, direction, t, bytes)
    }

    fn close_connection(
        &mut self,
        conn: u64,
        t: u64,
        reason: CloseReason,
    ) -> Result<(), WriteError> {
        Writer::close_connection(self, conn, t, reason)
    }

    fn annotate(&mut self, t: u64, text: &str) -> Result<(), WriteError> {
        Writer::annotate(self, t, text)
    }

    fn store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        contents: &[u8],
    ) -> Result<u64, WriteError> {
        Writer::store_object(self, t, kind, name, contents)
    }

    fn missing_store_object(
        &mut self,
        t: u64,
        kind: StoreObjectKind,
        name: &str,
        reason: &str,
    ) -> Result<u64, WriteError> {
        Writer::missing_store_object(self, t, kind, name, reason)
    }

    fn flush_if_due(&mut self, now: u64) -> Result<bool, WriteError> {
        Writer::flush_if_due(self, now)
    }

    fn flush_frame(&mut self) -> Result<(), WriteError> {
        Writer::flush_frame(self)
    }

    fn release_buffers(&mut self) {
        Writer::release_buffers(self)
    }

    fn summary(&self) -> Summary {
        Writer::summary(self)
    }

    fn finish(self, end: u64) -> Result<(W, Summary), WriteError> {
        Writer::finish(self, end)
    }
}
