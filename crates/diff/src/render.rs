//! The text form of a [`Report`]: a header with both sides and the
//! handshake differences, then one block per connection, one line (or a
//! few) per op.
//!
//! ```text
//! conn 2 · op 5 QueryPathInfo /nix/store/…-hello: reply.info.narSize 1234 → 1240
//! ```

use std::fmt::{self, Write as _};

use serde_json::Value;

use crate::{ConnectionDiff, FieldDiff, OpDiff, Presence, Report, Side};

/// Longest value shown before it is cut.
const MAX_VALUE_CHARS: usize = 160;

/// A store path `/nix/store/<hash>-<name>` shortened to `/nix/store/…-<name>`
/// wherever it occurs in `text`: a diff line names the path, and a change of
/// hash shows up as its own field difference.
fn shorten_store_paths(text: &str) -> String {
    nixcap_view::display::shorten_store_paths_keeping(text, 0)
}

fn show_value(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(absent)".to_owned();
    };
    let text = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// Two long strings, each cut to the neighbourhood of their first
/// difference.
fn focus(a: &str, b: &str) -> (String, String) {
    /// Characters kept before the first difference.
    const BEFORE: usize = 30;
    let a_chars: Vec<char> = a.chars().collect();
    let b_chars: Vec<char> = b.chars().collect();
    if a_chars.len().max(b_chars.len()) <= MAX_VALUE_CHARS {
        return (format!("{a:?}"), format!("{b:?}"));
    }
    let first = a_chars
        .iter()
        .zip(&b_chars)
        .take_while(|(x, y)| x == y)
        .count();
    let start = first.saturating_sub(BEFORE);
    let cut = |chars: &[char]| {
        let end = chars.len().min(start + MAX_VALUE_CHARS / 2);
        let middle: String = chars[start.min(chars.len())..end].iter().collect();
        format!(
            "{}{middle:?}{}",
            if start > 0 { "…" } else { "" },
            if end < chars.len() { "…" } else { "" }
        )
    };
    (cut(&a_chars), cut(&b_chars))
}

fn show_field(field: &FieldDiff) -> String {
    let mut line = if field.set {
        format!(
            "{}: only in A {}, only in B {}",
            field.path,
            show_value(field.a.as_ref()),
            show_value(field.b.as_ref())
        )
    } else {
        match (&field.a, &field.b) {
            (Some(_), None) => format!("{} removed: {}", field.path, show_value(field.a.as_ref())),
            (None, Some(_)) => format!("{} added: {}", field.path, show_value(field.b.as_ref())),
            (Some(Value::String(a)), Some(Value::String(b))) => {
                let (a, b) = focus(a, b);
                format!("{} {a} → {b}", field.path)
            }
            _ => format!(
                "{} {} → {}",
                field.path,
                show_value(field.a.as_ref()),
                show_value(field.b.as_ref())
            ),
        }
    };
    if let Some(note) = &field.note {
        let _ = write!(line, "  ({note})");
    }
    line
}

fn numbers(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}→{b}"),
        (Some(n), None) | (None, Some(n)) => n.to_string(),
        (None, None) => "?".to_owned(),
    }
}

fn op_title(connection: &ConnectionDiff, op: &OpDiff) -> String {
    let mut title = format!(
        "conn {} · op {} {}",
        numbers(connection.a_conn, connection.b_conn),
        numbers(op.a_seq, op.b_seq),
        op.op
    );
    if let Some(b_op) = &op.b_op {
        let _ = write!(title, " → {b_op}");
    }
    if let Some(key) = &op.key {
        let _ = write!(title, " {}", shorten_store_paths(key));
    }
    title
}

fn side_line(mark: &str, side: &Side) -> String {
    let mut line = format!(
        "{mark} {}: {} connections, {} ops",
        side.label, side.connections, side.ops
    );
    if !side.daemon_nix_versions.is_empty() {
        let _ = write!(
            line,
            ", daemon Nix {}",
            side.daemon_nix_versions.join(" | ")
        );
    }
    if !side.protocols.is_empty() {
        let _ = write!(line, ", protocol {}", side.protocols.join(" | "));
    }
    line
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", side_line("---", &self.a))?;
        writeln!(f, "{}", side_line("+++", &self.b))?;
        if !self.ignored.is_empty() {
            writeln!(f, "ignoring: {}", self.ignored.join(", "))?;
        }
        if let Some(learned) = &self.learned {
            if learned.is_empty() {
                writeln!(f, "learned from the baseline: nothing (it matches A)")?;
            } else {
                writeln!(
                    f,
                    "learned from the baseline as noise: {}",
                    learned.join(", ")
                )?;
            }
        }
        if !self.handshake.is_empty() {
            writeln!(f)?;
            writeln!(f, "handshake:")?;
            for field in &self.handshake {
                writeln!(f, "  {}", show_field(field))?;
            }
        }
        for connection in &self.connections {
            writeln!(f)?;
            let names = connection.op_names.join(", ");
            match connection.presence {
                Presence::Changed => writeln!(
                    f,
                    "conn {} ({names}):",
                    numbers(connection.a_conn, connection.b_conn)
                )?,
                Presence::Removed => writeln!(
                    f,
                    "- conn {} only in {} ({names})",
                    numbers(connection.a_conn, None),
                    self.a.label
                )?,
                Presence::Inserted => writeln!(
                    f,
                    "+ conn {} only in {} ({names})",
                    numbers(None, connection.b_conn),
                    self.b.label
                )?,
            }
            if connection.presence != Presence::Changed {
                continue;
            }
            for op in &connection.ops {
                let title = op_title(connection, op);
                match op.presence {
                    Presence::Removed => {
                        writeln!(f, "  - {title}  (only in {})", self.a.label)?;
                        continue;
                    }
                    Presence::Inserted => {
                        writeln!(f, "  + {title}  (only in {})", self.b.label)?;
                        continue;
                    }
                    Presence::Changed => {}
                }
                match (op.notes.as_slice(), op.fields.as_slice()) {
                    ([], [only]) => writeln!(f, "  {title}: {}", show_field(only))?,
                    (notes, fields) => {
                        writeln!(f, "  {title}:")?;
                        for note in notes {
                            writeln!(f, "      {note}")?;
                        }
                        for field in fields {
                            writeln!(f, "      {}", show_field(field))?;
                        }
                    }
                }
            }
        }
        writeln!(f)?;
        let changed_ops = self
            .connections
            .iter()
            .flat_map(|c| &c.ops)
            .filter(|op| op.presence == Presence::Changed)
            .count();
        let count = |presence| {
            self.connections
                .iter()
                .flat_map(|c| &c.ops)
                .filter(|op| op.presence == presence)
                .count()
        };
        if self.is_identical() {
            write!(f, "identical")?;
        } else {
            write!(
                f,
                "{} handshake differences; {} ops differ, {} only in {}, {} only in {}",
                self.handshake.len(),
                changed_ops,
                count(Presence::Removed),
                self.a.label,
                count(Presence::Inserted),
                self.b.label
            )?;
        }
        write!(
            f,
            " ({} connection pairs and {} op pairs identical",
            self.identical_connections, self.identical_ops
        )?;
        if self.dropped > 0 {
            write!(f, "; {} differences ignored", self.dropped)?;
        }
        writeln!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_are_shortened_to_their_names() {
        assert_eq!(
            shorten_store_paths("/nix/store/85bx2mf3qci1lj9bvb5q0iz07h85g5fk-file.txt!out"),
            "/nix/store/…-file.txt!out"
        );
        assert_eq!(shorten_store_paths("2 paths"), "2 paths");
    }
}
