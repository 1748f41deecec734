//! The daemon's log channel as Nix's `--log-format internal-json` lines.
//!
//! A Nix client that reads a log message from the daemon hands it to its
//! logger: `STDERR_NEXT` becomes `printError(chomp(text))`, and
//! `STDERR_START_ACTIVITY`, `STDERR_STOP_ACTIVITY` and `STDERR_RESULT` are
//! passed on with the daemon's ids, levels, types, fields and parents. With
//! `--log-format internal-json` that logger is Nix's `JSONLogger`, which
//! prints each call as `@nix ` and one JSON object dumped by nlohmann::json:
//! keys in sorted order (its objects are `std::map`s), no spaces, UTF-8 kept
//! as it is, invalid UTF-8 replaced by U+FFFD, control characters escaped.
//! [`line`] renders a message exactly so (checked against real 2.8, 2.26 and
//! 2.34 clients in the `nixcap log` tests).
//!
//! ```text
//! @nix {"action":"msg","level":0,"msg":"…"}
//! @nix {"action":"start","fields":[…],"id":…,"level":…,"parent":…,"text":"…","type":…}
//! @nix {"action":"stop","id":…}
//! @nix {"action":"result","fields":[…],"id":…,"type":…}
//! ```
//!
//! `fields` is left out when there are none, as Nix does. `parent` is
//! printed by clients since Nix 2.18 (NixOS/nix#8959) and not by older ones
//! such as 2.8: see [`Style::parent`] and [`parent_for_client`]. Messages the
//! client does not log (`STDERR_READ`, `STDERR_WRITE`, `STDERR_LAST`) have
//! no line; neither has `STDERR_ERROR`, which the client raises as an error
//! and prints (or not) in its own words when it handles it.

use std::fmt::Write as _;

use nixcap_wire::stderr::{Field, StderrMessage};

/// The prefix of every line.
pub const PREFIX: &str = "@nix ";

/// Nix's `lvlError`, the level of every `STDERR_NEXT` line.
const LEVEL_ERROR: u64 = 0;

/// What differs between the lines of Nix versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Whether `start` lines carry the `parent` key.
    pub parent: bool,
}

/// Whether a client that announced protocol `1.minor` prints `parent`.
///
/// Protocol 1.34 is Nix 2.8 to 2.14, which do not; 1.37 and later are
/// 2.20 and later, which do. 1.35 (2.15 to 2.19) is ambiguous, as `parent`
/// came with 2.18: such clients are taken to print it.
pub fn parent_for_client(minor: u8) -> bool {
    minor >= 35
}

/// Where and when a message was recorded, for the optional `nixcap` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The connection.
    pub conn: u64,
    /// Nanoseconds since the capture start.
    pub t_nanos: u64,
    /// The capture start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
}

/// The line a Nix client of `style` prints for `message` with
/// `--log-format internal-json`, without the final newline; `None` for
/// messages it prints nothing for.
///
/// With a `stamp`, the object gets one more key, last:
/// `"nixcap":{"conn":N,"t":SECONDS,"unix":SECONDS}` (since the capture
/// start and since the epoch, to the microsecond).
pub fn line(message: &StderrMessage, style: Style, stamp: Option<&Stamp>) -> Option<String> {
    let mut out = String::with_capacity(96);
    out.push_str(PREFIX);
    match message {
        StderrMessage::Next { text } => {
            out.push_str("{\"action\":\"msg\",\"level\":");
            let _ = write!(out, "{LEVEL_ERROR}");
            out.push_str(",\"msg\":");
            json_string(&mut out, chomp(text.as_bytes()));
        }
        StderrMessage::StartActivity {
            id,
            level,
            activity_type,
            text,
            fields,
            parent,
        } => {
            out.push_str("{\"action\":\"start\"");
            json_fields(&mut out, fields);
            let _ = write!(out, ",\"id\":{id},\"level\":{level}");
            if style.parent {
                let _ = write!(out, ",\"parent\":{parent}");
            }
            out.push_str(",\"text\":");
            json_string(&mut out, text.as_bytes());
            let _ = write!(out, ",\"type\":{}", activity_type.0);
        }
        StderrMessage::StopActivity { id } => {
            let _ = write!(out, "{{\"action\":\"stop\",\"id\":{id}");
        }
        StderrMessage::Result {
            id,
            result_type,
            fields,
        } => {
            out.push_str("{\"action\":\"result\"");
            json_fields(&mut out, fields);
            let _ = write!(out, ",\"id\":{id},\"type\":{}", result_type.0);
        }
        StderrMessage::Read { .. }
        | StderrMessage::Write { .. }
        | StderrMessage::Last
        | StderrMessage::Error(_) => return None,
    }
    if let Some(stamp) = stamp {
        let unix = stamp.start_unix_nanos.saturating_add(stamp.t_nanos);
        let _ = write!(
            out,
            ",\"nixcap\":{{\"conn\":{},\"t\":{},\"unix\":{}}}",
            stamp.conn,
            micros(stamp.t_nanos),
            micros(unix)
        );
    }
    out.push('}');
    Some(out)
}

/// Seconds with six decimals.
fn micros(nanos: u64) -> String {
    format!(
        "{}.{:06}",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000 / 1000
    )
}

/// Nix's `chomp`: the text without trailing spaces, tabs, CRs and LFs.
fn chomp(text: &[u8]) -> &[u8] {
    let end = text
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        .map_or(0, |i| i + 1);
    &text[..end]
}

fn json_fields(out: &mut String, fields: &[Field]) {
    if fields.is_empty() {
        return;
    }
    out.push_str(",\"fields\":[");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match field {
            Field::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Field::String(text) => json_string(out, text.as_bytes()),
        }
    }
    out.push(']');
}

/// Writes `bytes` as a JSON string as nlohmann::json's `dump` does with
/// `ensure_ascii = false` and `error_handler_t::replace`.
///
/// `"` and `\` are escaped, `\b \f \n \r \t` by name, other characters
/// below U+0020 as `\u00xx` (lower-case hex); everything else, DEL included,
/// is copied. Each maximal ill-formed UTF-8 subsequence becomes one U+FFFD,
/// the byte that ended it being read again — what nlohmann's decoder does.
pub fn json_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            out.push('\u{fffd}');
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixcap_wire::stderr::{ActivityType, ResultType};
    use nixcap_wire::ByteString;

    const NEW: Style = Style { parent: true };
    const OLD: Style = Style { parent: false };

    fn next(text: &[u8]) -> String {
        line(
            &StderrMessage::Next {
                text: ByteString::from(text),
            },
            NEW,
            None,
        )
        .expect("a line")
    }

    #[test]
    fn a_log_line_is_chomped_and_escaped() {
        assert_eq!(
            next(b"\x1b[31;1mwarning:\x1b[0m \"x\" \\ y\t\n\n"),
            r#"@nix {"action":"msg","level":0,"msg":"\u001b[31;1mwarning:\u001b[0m \"x\" \\ y"}"#
        );
        assert_eq!(
            next(b" \r\n\t"),
            r#"@nix {"action":"msg","level":0,"msg":""}"#
        );
        assert_eq!(
            next(b"a\x01\x08\x0c\x7f\xc3\xa9\r\nb"),
            "@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"a\\u0001\\b\\f\x7f\u{e9}\\r\\nb\"}"
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_as_nlohmann_does() {
        let mut out = String::new();
        // A lone continuation byte, a truncated sequence followed by ASCII,
        // an encoded surrogate and a truncated sequence at the end.
        json_string(&mut out, b"\x80|\xe2\x82A|\xed\xa0\x80|\xf0\x9f");
        assert_eq!(
            out,
            "\"\u{fffd}|\u{fffd}A|\u{fffd}\u{fffd}\u{fffd}|\u{fffd}\""
        );
    }

    #[test]
    fn activities_have_sorted_keys_and_fields_only_when_present() {
        let start = StderrMessage::StartActivity {
            id: 0x1234_0000_0001,
            level: 3,
            activity_type: ActivityType::BUILD,
            text: ByteString::from("building '/nix/store/x.drv'"),
            fields: vec![
                Field::String(ByteString::from("/nix/store/x.drv")),
                Field::String(ByteString::from("")),
                Field::Int(1),
                Field::Int(1),
            ],
            parent: 0x1234_0000_0000,
        };
        assert_eq!(
            line(&start, NEW, None).expect("a line"),
            r#"@nix {"action":"start","fields":["/nix/store/x.drv","",1,1],"id":20014547599361,"level":3,"parent":20014547599360,"text":"building '/nix/store/x.drv'","type":105}"#
        );
        let bare = StderrMessage::StartActivity {
            id: 7,
            level: 0,
            activity_type: ActivityType::UNKNOWN,
            text: ByteString::from(""),
            fields: vec![],
            parent: 0,
        };
        assert_eq!(
            line(&bare, NEW, None).expect("a line"),
            r#"@nix {"action":"start","id":7,"level":0,"parent":0,"text":"","type":0}"#
        );
        assert_eq!(
            line(&bare, OLD, None).expect("a line"),
            r#"@nix {"action":"start","id":7,"level":0,"text":"","type":0}"#
        );
        assert!(!parent_for_client(34));
        assert!(parent_for_client(38));
        let result = StderrMessage::Result {
            id: 7,
            result_type: ResultType::PROGRESS,
            fields: vec![Field::Int(0), Field::Int(1), Field::Int(1), Field::Int(0)],
        };
        assert_eq!(
            line(&result, OLD, None).expect("a line"),
            r#"@nix {"action":"result","fields":[0,1,1,0],"id":7,"type":105}"#
        );
        assert_eq!(
            line(&StderrMessage::StopActivity { id: 7 }, NEW, None).expect("a line"),
            r#"@nix {"action":"stop","id":7}"#
        );
    }

    #[test]
    fn a_stamp_adds_one_key_last() {
        let stamp = Stamp {
            conn: 3,
            t_nanos: 1_500_000_999,
            start_unix_nanos: 1_764_000_000_000_001_000,
        };
        assert_eq!(
            line(&StderrMessage::StopActivity { id: 7 }, NEW, Some(&stamp)).expect("a line"),
            r#"@nix {"action":"stop","id":7,"nixcap":{"conn":3,"t":1.500000,"unix":1764000001.500001}}"#
        );
    }

    #[test]
    fn messages_the_client_does_not_log_have_no_line() {
        assert_eq!(line(&StderrMessage::Last, NEW, None), None);
        assert_eq!(line(&StderrMessage::Read { max_len: 8 }, OLD, None), None);
    }
}
