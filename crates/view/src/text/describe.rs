//! How the text view words each piece: handshake pieces, log messages, payload
//! items, hex dumps, times and sizes, and the damage report.

use std::fmt::Write as _;

use nixcap_capture::ReadError;
use nixcap_wire::handshake::HandshakePiece;
use nixcap_wire::nar::NarEvent;
use nixcap_wire::session::{EventKind, PayloadItem};
use nixcap_wire::stderr::{ErrorInfo, Field, StderrMessage};
use serde_json::Value;

use crate::display::{clean, shorten_store_paths};

/// The damage report for stderr: what is wrong and where.
pub fn damage_report(err: &ReadError) -> String {
    let loc = &err.location;
    let mut text = format!("the capture is damaged: {}\n", err.kind);
    let mut place = format!("file offset {}", loc.offset);
    if let Some(frame) = loc.frame_index {
        let _ = write!(place, ", frame {frame}");
    }
    if let Some(block) = loc.block_index {
        let _ = write!(place, ", block {block}");
    }
    if let Some(conn) = loc.conn {
        let _ = write!(place, ", connection {conn}");
    }
    let _ = writeln!(text, "  where: {place}");
    if let Some(t) = loc.last_good_t_nanos {
        let _ = writeln!(
            text,
            "  everything up to {} s after the start was shown",
            seconds(t)
        );
    }
    if !loc.open_connections.is_empty() {
        let ids: Vec<String> = loc.open_connections.iter().map(u64::to_string).collect();
        let _ = writeln!(
            text,
            "  connections {} were open at that point; their streams end early",
            ids.join(", ")
        );
    }
    text
}

pub(super) fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Handshake { .. } => "handshake",
        EventKind::Request { .. } => "request",
        EventKind::FramedHeader { .. } => "framed header",
        EventKind::FramedData { .. } => "framed data",
        EventKind::FramedEnd { .. } => "framed end",
        EventKind::ReadAnswer { .. } => "read answer",
        EventKind::NarData { .. } => "NAR data",
        EventKind::Stderr { .. } => "log",
        EventKind::Reply { .. } => "reply",
        EventKind::ServeHello { .. } => "serve hello",
        EventKind::ServeRequest { .. } => "serve request",
        EventKind::ServeReply { .. } => "serve reply",
        EventKind::ExportData { .. } => "export data",
        EventKind::Opaque { .. } => "undecodable",
        EventKind::Truncated { .. } => "truncated",
    }
}

/// Appends an `xxd`-style dump: stream offset, 16 bytes in groups of two,
/// and the printable ASCII.
pub fn hex_dump(out: &mut String, pad: usize, base: u64, bytes: &[u8]) {
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:pad$}{:08x}: ", "", base + row as u64 * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) => {
                    let _ = write!(out, "{b:02x}");
                }
                None => out.push_str("  "),
            }
            if i % 2 == 1 {
                out.push(' ');
            }
        }
        out.push(' ');
        for &b in chunk {
            out.push(if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            });
        }
        out.push('\n');
    }
}

pub(super) fn piece_text(piece: &HandshakePiece) -> String {
    match piece {
        HandshakePiece::ClientHello(hello) => format!("client hello, version {}", hello.version),
        HandshakePiece::ClientFeatures { features } => {
            format!("client features [{}]", features.0.join(", "))
        }
        HandshakePiece::ClientAffinity(affinity) => match affinity.cpu {
            Some(cpu) => format!("CPU affinity {cpu}"),
            None => "no CPU affinity".to_owned(),
        },
        HandshakePiece::ClientReserveSpace { value } => format!("reserveSpace {value}"),
        HandshakePiece::DaemonHello(hello) => format!("daemon hello, version {}", hello.version),
        HandshakePiece::DaemonFeatures { features } => {
            format!("daemon features [{}]", features.0.join(", "))
        }
        HandshakePiece::DaemonNixVersion { version } => {
            format!("Nix version {}", clean(&version.to_string_lossy()))
        }
        HandshakePiece::DaemonTrust { trust } => format!("trust {trust:?}"),
        HandshakePiece::DaemonStderr { message } => message_text(message),
    }
}

pub(super) fn message_text(message: &StderrMessage) -> String {
    match message {
        StderrMessage::Next { text } => {
            format!(
                "log: {}",
                clean(text.to_string_lossy().trim_end_matches('\n'))
            )
        }
        StderrMessage::Read { max_len } => format!("read request, up to {max_len} bytes"),
        StderrMessage::Write { data } => format!("write, {} bytes", data.len()),
        StderrMessage::Last => "end of log (STDERR_LAST)".to_owned(),
        StderrMessage::Error(error) => format!("error: {}", first_line(error)),
        StderrMessage::StartActivity {
            id,
            level,
            activity_type,
            text,
            fields,
            parent,
        } => {
            let mut line = format!(
                "start activity {id} {} level {level}",
                activity_type
                    .name()
                    .map_or_else(|| format!("type {}", activity_type.0), str::to_owned)
            );
            let text = clean(&text.to_string_lossy());
            if !text.is_empty() {
                let _ = write!(line, " \"{}\"", shorten_store_paths(&text));
            }
            if !fields.is_empty() {
                let _ = write!(line, " {}", fields_text(fields));
            }
            if *parent != 0 {
                let _ = write!(line, " parent {parent}");
            }
            line
        }
        StderrMessage::StopActivity { id } => format!("stop activity {id}"),
        StderrMessage::Result {
            id,
            result_type,
            fields,
        } => format!(
            "result {id} {} {}",
            result_type
                .name()
                .map_or_else(|| format!("type {}", result_type.0), str::to_owned),
            fields_text(fields)
        ),
    }
}

pub(super) fn fields_text(fields: &[Field]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| match f {
            Field::Int(n) => n.to_string(),
            Field::String(s) => {
                format!("\"{}\"", shorten_store_paths(&clean(&s.to_string_lossy())))
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

pub(super) fn items_text(items: &[PayloadItem]) -> String {
    let mut nodes = 0;
    let mut parts = Vec::new();
    for item in items {
        match item {
            PayloadItem::Nar {
                nar: NarEvent::Node(_),
            } => nodes += 1,
            PayloadItem::Nar {
                nar: NarEvent::Issue {
                    offset, problem, ..
                },
            } => parts.push(format!("NAR issue at {offset}: {}", clean(problem))),
            PayloadItem::NarEnd { len } => parts.push(format!("end of a {len}-byte NAR")),
            PayloadItem::PathCount { count } => parts.push(format!("{count} paths follow")),
            PayloadItem::PathInfo { info } => {
                parts.push(format!(
                    "path {}",
                    shorten_store_paths(&info.path.to_string())
                ));
            }
            PayloadItem::ExportRecord { record } => {
                let text = serde_json::to_value(record)
                    .ok()
                    .and_then(|v| v.get("path").map(scalar))
                    .unwrap_or_else(|| "record".to_owned());
                parts.push(format!("export {}", shorten_store_paths(&clean(&text))));
            }
            PayloadItem::Undecodable { reason } => {
                parts.push(format!("payload undecodable: {}", clean(reason)));
            }
        }
    }
    if nodes > 0 {
        parts.insert(
            0,
            format!("{nodes} NAR node{}", if nodes == 1 { "" } else { "s" }),
        );
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

pub(super) fn nar_text(nar: &[NarEvent]) -> String {
    let items: Vec<PayloadItem> = nar
        .iter()
        .map(|n| PayloadItem::Nar { nar: n.clone() })
        .collect();
    items_text(&items)
}

pub(super) fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => clean(s),
        Value::Null => "none".to_owned(),
        other => clean(&other.to_string()),
    }
}

pub(super) fn first_line(error: &ErrorInfo) -> String {
    let text = clean(&error.message().to_string_lossy());
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned();
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    shorten_store_paths(line)
}

pub(super) fn seconds(t: u64) -> String {
    format!("{}.{:06}", t / 1_000_000_000, (t % 1_000_000_000) / 1000)
}

pub(super) fn duration(nanos: u64) -> String {
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        format!("{}µs", nanos / 1_000)
    } else if nanos < 1_000_000_000 {
        format!("{:.1}ms", nanos as f64 / 1e6)
    } else {
        format!("{:.2}s", nanos as f64 / 1e9)
    }
}

pub(super) fn size(bytes: u64) -> String {
    if bytes < 10 * 1024 {
        format!("{bytes} B")
    } else if bytes < 10 * 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_looks_like_xxd() {
        let mut out = String::new();
        hex_dump(
            &mut out,
            0,
            16,
            b"cxin\x00\x00\x00\x00\x26\x01\x00\x00\x00\x00\x00\x00ab",
        );
        assert_eq!(
            out,
            "00000010: 6378 696e 0000 0000 2601 0000 0000 0000  cxin....&.......\n\
             00000020: 6162                                     ab\n"
        );
    }
}
