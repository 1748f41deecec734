//! Short, safe text shared by every view of a capture (`show`, `diff`,
//! `replay` reports, exports): capture text cleaned of terminal escapes,
//! store paths shortened for one-line displays, and the one-line displays
//! of requests and replies (`ops.rs`).

use std::fmt::Write as _;

mod ops;

pub use ops::{key_argument, reply_summary, serve_reply_summary, serve_request_summary};

/// Removes ANSI escape sequences and shows other control characters as
/// escapes, so capture contents cannot drive the terminal. Newlines and
/// tabs are kept.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\n' || c == '\t' {
            out.push(c);
        } else if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

const NIX_BASE32: &str = "0123456789abcdfghijklmnpqrsvwxyz";

/// Shortens every store path in `text` to its store directory, the first
/// seven characters of its hash, `…` and its name:
/// `/nix/store/6vcyk9z…-hello-2.12.1`.
pub fn shorten_store_paths(text: &str) -> String {
    shorten_store_paths_keeping(text, 7)
}

/// Shortens every store path in `text` to its store directory, the first
/// `hash_chars` characters of its hash (at most 32), `…` and its name;
/// with 0, `/nix/store/…-hello-2.12.1`.
pub fn shorten_store_paths_keeping(text: &str, hash_chars: usize) -> String {
    let hash_chars = hash_chars.min(32);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let is_hash = bytes[i] == b'/'
            && bytes.len() > i + 33
            && bytes[i + 33] == b'-'
            && bytes[i + 1..i + 33]
                .iter()
                .all(|b| NIX_BASE32.as_bytes().contains(b));
        if is_hash {
            out.push_str(&text[copied..i + 1 + hash_chars]);
            out.push('…');
            i += 33;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_keep_their_name_and_a_hash_prefix() {
        assert_eq!(
            shorten_store_paths("/nix/store/6vcyk9zsr0sj8ii0b13wzbkbdbahkxd5-hello-2.12.1 and x"),
            "/nix/store/6vcyk9z…-hello-2.12.1 and x"
        );
        assert_eq!(
            shorten_store_paths("2 paths: /nix/store/abc"),
            "2 paths: /nix/store/abc"
        );
    }

    #[test]
    fn escapes_are_removed_and_controls_shown() {
        assert_eq!(clean("\x1b[31;1merror:\x1b[0m bad\x07"), "error: bad\\u{7}");
    }
}
