//! Fuzz target for the streaming views of a capture: `nixcap log` and the
//! Chrome trace export. Whatever the bytes, decoding them as they are read
//! never panics, every log message renders as an internal-json line that is
//! valid JSON, and the trace written is valid JSON whatever damage the
//! capture has.
//!
//! Each input is used as it is and with every checksum recomputed, so that
//! mutations get past the checksums and reach the protocol decoder. Seed the
//! corpus with the files of `testdata/corrupt/` and the fixture captures.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nixcap_capture::fuzzing;
use nixcap_export::chrome::export_chrome_trace;
use nixcap_view::internal_json::{self, Style};
use nixcap_view::stream::{EventStream, StreamItem};
use nixcap_wire::session::EventKind;

fn check(data: &[u8]) {
    if let Ok(stream) = EventStream::new(data) {
        for item in stream {
            let Ok(StreamItem::Event { event, .. }) = item else {
                continue;
            };
            if let EventKind::Stderr { message, .. } = &event.kind {
                for parent in [false, true] {
                    if let Some(line) = internal_json::line(message, Style { parent }, None) {
                        let json = line
                            .strip_prefix(internal_json::PREFIX)
                            .expect("the prefix");
                        serde_json::from_str::<serde_json::Value>(json).expect("a JSON line");
                    }
                }
            }
        }
    }
    if let Ok(stream) = EventStream::new(data) {
        let mut out = Vec::new();
        export_chrome_trace(stream, &mut out, &mut |_| {}).expect("writing to memory");
        serde_json::from_slice::<serde_json::Value>(&out).expect("a JSON trace");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut resealed = data.to_vec();
    fuzzing::reseal(&mut resealed);
    check(&resealed);
});
