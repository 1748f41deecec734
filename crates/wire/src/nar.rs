//! A streaming NAR parser (protocol reference §10) that finds where a NAR
//! ends without buffering file contents.
//!
//! A NAR has no length prefix: inline NAR uploads and NarFromPath downloads
//! end where the grammar says they end. [`NarParser`] is fed bytes as they
//! arrive and reports how many it consumed and whether the NAR ended. It
//! consumes whole tokens only, so the caller keeps the unconsumed tail (at
//! most one token, a few KiB) and presents it again with more bytes.
//! `contents` strings are skipped as they stream past, whatever their length,
//! so a multi-gigabyte file costs no memory.
//!
//! The parser checks what Nix's own parser checks: tags, zero padding,
//! string limits, file names and their order. Invalid or unsorted names are
//! errors by default; a passive decoder that only needs the NAR's end can
//! ask for them to be reported as [`NarEvent::Issue`] instead (the daemon
//! rejects such a NAR itself, but its bytes are still laid out as a NAR).
//!
//! NarFromPath (§7.7) adds a twist: when the daemon's dump fails, a
//! `STDERR_ERROR` word stands where a tag was expected.
//! [`NarOptions::detect_stderr_error`] makes the parser stop there with
//! [`NarStatus::DumpFailed`], leaving the word unconsumed for the stderr
//! decoder.

use serde::{Deserialize, Serialize};

use crate::bytes::ByteString;
use crate::primitives::padding_len;
use crate::stderr::STDERR_ERROR;

/// The magic string every NAR starts with.
pub const NAR_MAGIC: &[u8] = b"nix-archive-1";
/// Longest keyword token (`(`, `type`, `entry`, …) the parser accepts.
pub const MAX_TAG_LEN: u64 = 32;
/// Longest file name in a directory entry.
pub const MAX_NAME_LEN: u64 = 255;
/// Longest symlink target.
pub const MAX_TARGET_LEN: u64 = 4095;
/// Deepest directory nesting the parser accepts by default.
pub const DEFAULT_MAX_DEPTH: usize = 1024;

/// How strict the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NarOptions {
    /// Whether invalid or unsorted names are errors (`true`, as in Nix) or
    /// reported as [`NarEvent::Issue`] while parsing goes on.
    pub strict_names: bool,
    /// Whether a `STDERR_ERROR` word where a tag is expected ends the NAR
    /// with [`NarStatus::DumpFailed`] (for NarFromPath downloads).
    pub detect_stderr_error: bool,
    /// Deepest directory nesting accepted.
    pub max_depth: usize,
}

impl Default for NarOptions {
    fn default() -> Self {
        NarOptions {
            strict_names: true,
            detect_stderr_error: false,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// What a node of the archive is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum NarNodeKind {
    /// A directory; its entries follow as their own nodes.
    Directory,
    /// A regular file.
    #[serde(rename_all = "camelCase")]
    Regular {
        /// Whether the executable marker was present.
        executable: bool,
        /// Length of the contents in bytes.
        size: u64,
    },
    /// A symbolic link.
    #[serde(rename_all = "camelCase")]
    Symlink {
        /// Where it points.
        target: ByteString,
    },
}

/// One node of the archive, reported as soon as its kind (and, for a file,
/// its size) is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NarNode {
    /// Path inside the archive: names joined with `/`; empty for the root.
    pub path: ByteString,
    /// Offset of the node's `(` token from the start of the NAR.
    pub offset: u64,
    /// Offset just past the token that made the node known (its type, its
    /// contents length or its target), from the start of the NAR.
    pub known_at: u64,
    /// What the node is.
    #[serde(flatten)]
    pub kind: NarNodeKind,
}

/// Something the parser reports while it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum NarEvent {
    /// A node.
    Node(NarNode),
    /// A problem Nix would reject, reported instead of failing because
    /// [`NarOptions::strict_names`] is off.
    #[serde(rename_all = "camelCase")]
    Issue {
        /// Offset of the offending token.
        offset: u64,
        /// Offset just past the offending token.
        known_at: u64,
        /// What is wrong.
        problem: String,
    },
}

/// Why a NAR is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NarErrorKind {
    /// A string is longer than the parser accepts at that point.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    StringTooLong {
        /// What the string is.
        what: &'static str,
        /// Its announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The padding after a string holds non-zero bytes.
    #[error("non-zero padding")]
    NonZeroPadding,
    /// A keyword other than the one the grammar requires.
    #[error("expected tag {expected}, got '{found}'")]
    ExpectedTag {
        /// The tag or tags allowed here, quoted.
        expected: &'static str,
        /// The tag found.
        found: ByteString,
    },
    /// A node type other than regular, symlink or directory.
    #[error("unknown file type '{0}'")]
    UnknownType(ByteString),
    /// A directory entry name that Nix refuses.
    #[error("NAR contains invalid file name '{0}'")]
    InvalidName(ByteString),
    /// Directory entries not in strictly increasing order.
    #[error("NAR directory is not sorted: '{name}' follows '{previous}'")]
    NotSorted {
        /// The entry before.
        previous: ByteString,
        /// The entry out of order.
        name: ByteString,
    },
    /// Directories nested deeper than allowed.
    #[error("NAR nests directories deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The input ended inside the NAR (from [`parse_nar`] only; the
    /// streaming parser just waits for more).
    #[error("unexpected end of file")]
    UnexpectedEof,
}

/// An invalid NAR: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NAR invalid at byte {offset}: {kind}")]
pub struct NarError {
    /// Offset from the start of the NAR.
    pub offset: u64,
    /// What is wrong.
    pub kind: NarErrorKind,
}

/// Where the parser stands after a [`NarParser::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NarStatus {
    /// The NAR goes on; feed the unconsumed tail again with more bytes.
    NeedMore,
    /// The NAR ended; bytes after it were left unconsumed.
    Done,
    /// A `STDERR_ERROR` word stood where a tag was expected (only with
    /// [`NarOptions::detect_stderr_error`]); it was left unconsumed.
    DumpFailed,
    /// The NAR is invalid; the offending token was left unconsumed.
    Failed(NarError),
}

/// Result of one [`NarParser::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarProgress {
    /// Bytes of the input that belong to the NAR and were consumed.
    pub consumed: usize,
    /// Where the parser stands.
    pub status: NarStatus,
}

/// The keyword tokens, and the value strings, the grammar expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Magic,
    Open,
    Type,
    Kind,
    RegularTag,
    ExecutableEmpty,
    ContentsTag,
    ContentsLen,
    Close,
    TargetTag,
    Target,
    EntryOrClose,
    EntryOpen,
    NameTag,
    Name,
    NodeTag,
    EntryClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Token(Expect),
    Contents { remaining: u64, pad: usize },
    Done,
}

/// One open directory.
#[derive(Debug, Clone)]
struct Dir {
    /// Length of the directory's own path in the parser's `path`.
    path_len: usize,
    /// The previous entry name, for the order check.
    previous: Option<Vec<u8>>,
}

/// A streaming NAR parser. See the module documentation.
#[derive(Debug, Clone)]
pub struct NarParser {
    options: NarOptions,
    state: State,
    /// Bytes consumed so far.
    pos: u64,
    /// Path of the node being parsed.
    path: Vec<u8>,
    /// Open directories, innermost last.
    dirs: Vec<Dir>,
    /// Offset of the current node's `(`.
    node_offset: u64,
    /// Whether the current regular file is executable.
    executable: bool,
    /// Terminal status, once reached.
    terminal: Option<NarStatus>,
}

impl Default for NarParser {
    fn default() -> Self {
        NarParser::new(NarOptions::default())
    }
}

/// Where a token lies, as offsets from the start of the NAR.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
}

/// Outcome of looking at one token in the input.
enum Token<'a> {
    /// Not enough bytes yet.
    Incomplete,
    /// A complete string token and its total encoded length.
    Complete(&'a [u8], usize),
    /// `STDERR_ERROR` where a tag was expected.
    StderrError,
    /// A malformed token.
    Bad(NarError),
}

impl NarEvent {
    /// Offset just past the token that produced the event, from the start
    /// of the NAR. A caller cutting the NAR into pieces attaches the event
    /// to the piece holding the byte before this offset.
    pub fn known_at(&self) -> u64 {
        match self {
            NarEvent::Node(node) => node.known_at,
            NarEvent::Issue { known_at, .. } => *known_at,
        }
    }
}

impl NarParser {
    /// A parser at the start of a NAR.
    pub fn new(options: NarOptions) -> Self {
        NarParser {
            options,
            state: State::Token(Expect::Magic),
            pos: 0,
            path: Vec::new(),
            dirs: Vec::new(),
            node_offset: 0,
            executable: false,
            terminal: None,
        }
    }

    /// Bytes of the NAR consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether the NAR has ended (successfully).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether a tag position was reached where `STDERR_ERROR` would be
    /// recognised right now (used by callers that must tell a failed dump
    /// from a NAR). True at the very start, too.
    pub fn at_tag(&self) -> bool {
        matches!(self.state, State::Token(expect) if expect != Expect::ContentsLen)
    }

    /// Consumes as much of `input` as belongs to the NAR, pushing nodes and
    /// issues to `events`. Tokens are consumed whole; the unconsumed tail
    /// must be presented again, followed by more bytes, on the next call.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<NarEvent>) -> NarProgress {
        if let Some(status) = &self.terminal {
            return NarProgress {
                consumed: 0,
                status: status.clone(),
            };
        }
        let mut i = 0usize;
        let status = loop {
            match self.state {
                State::Done => break NarStatus::Done,
                State::Contents { remaining, pad } => {
                    let available = (input.len() - i) as u64;
                    if remaining > 0 {
                        let n = remaining.min(available);
                        i += n as usize;
                        self.pos += n;
                        let remaining = remaining - n;
                        self.state = State::Contents { remaining, pad };
                        if remaining > 0 {
                            break NarStatus::NeedMore;
                        }
                        continue;
                    }
                    if input.len() - i < pad {
                        break NarStatus::NeedMore;
                    }
                    let padding = &input[i..i + pad];
                    if let Some(bad) = padding.iter().position(|&b| b != 0) {
                        break NarStatus::Failed(NarError {
                            offset: self.pos + bad as u64,
                            kind: NarErrorKind::NonZeroPadding,
                        });
                    }
                    i += pad;
                    self.pos += pad as u64;
                    self.state = State::Token(Expect::Close);
                }
                State::Token(Expect::ContentsLen) => {
                    if input.len() - i < 8 {
                        break NarStatus::NeedMore;
                    }
                    let size = word(&input[i..i + 8]);
                    i += 8;
                    self.pos += 8;
                    events.push(NarEvent::Node(NarNode {
                        path: ByteString(self.path.clone()),
                        offset: self.node_offset,
                        known_at: self.pos,
                        kind: NarNodeKind::Regular {
                            executable: self.executable,
                            size,
                        },
                    }));
                    self.state = State::Contents {
                        remaining: size,
                        pad: padding_len(size),
                    };
                }
                State::Token(expect) => {
                    let (text, len) = match self.token(&input[i..], expect) {
                        Token::Incomplete => break NarStatus::NeedMore,
                        Token::StderrError => break NarStatus::DumpFailed,
                        Token::Bad(error) => break NarStatus::Failed(error),
                        Token::Complete(text, len) => (text, len),
                    };
                    let token = Span {
                        start: self.pos,
                        end: self.pos + len as u64,
                    };
                    if let Err(error) = self.accept(expect, text, token, events) {
                        break NarStatus::Failed(error);
                    }
                    i += len;
                    self.pos += len as u64;
                }
            }
        };
        if status != NarStatus::NeedMore {
            self.terminal = Some(status.clone());
        }
        NarProgress {
            consumed: i,
            status,
        }
    }

    /// Looks at the next string token without consuming it.
    fn token<'a>(&self, input: &'a [u8], expect: Expect) -> Token<'a> {
        if input.len() < 8 {
            return Token::Incomplete;
        }
        let len = word(&input[..8]);
        if self.options.detect_stderr_error && len == STDERR_ERROR {
            return Token::StderrError;
        }
        let (what, max) = match expect {
            Expect::Name => ("file name", MAX_NAME_LEN),
            Expect::Target => ("symlink target", MAX_TARGET_LEN),
            _ => ("tag", MAX_TAG_LEN),
        };
        if len > max {
            return Token::Bad(NarError {
                offset: self.pos,
                kind: NarErrorKind::StringTooLong { what, len, max },
            });
        }
        let len = len as usize;
        let pad = padding_len(len as u64);
        let total = 8 + len + pad;
        if input.len() < total {
            return Token::Incomplete;
        }
        if let Some(bad) = input[8 + len..total].iter().position(|&b| b != 0) {
            return Token::Bad(NarError {
                offset: self.pos + (8 + len + bad) as u64,
                kind: NarErrorKind::NonZeroPadding,
            });
        }
        Token::Complete(&input[8..8 + len], total)
    }

    /// Applies one complete token to the grammar.
    fn accept(
        &mut self,
        expect: Expect,
        text: &[u8],
        token: Span,
        events: &mut Vec<NarEvent>,
    ) -> Result<(), NarError> {
        let offset = token.start;
        let fail = |kind| Err(NarError { offset, kind });
        let expected = |expected: &'static str| {
            Err(NarError {
                offset,
                kind: NarErrorKind::ExpectedTag {
                    expected,
                    found: ByteString(text.to_vec()),
                },
            })
        };
        let next = match expect {
            Expect::Magic => {
                if text != NAR_MAGIC {
                    return expected("'nix-archive-1'");
                }
                self.node_offset = offset + 24;
                Expect::Open
            }
            Expect::Open => {
                if text != b"(" {
                    return expected("'('");
                }
                Expect::Type
            }
            Expect::Type => {
                if text != b"type" {
                    return expected("'type'");
                }
                Expect::Kind
            }
            Expect::Kind => match text {
                b"regular" => {
                    self.executable = false;
                    Expect::RegularTag
                }
                b"symlink" => Expect::TargetTag,
                b"directory" => {
                    if self.dirs.len() >= self.options.max_depth {
                        return fail(NarErrorKind::TooDeep {
                            max: self.options.max_depth,
                        });
                    }
                    events.push(NarEvent::Node(NarNode {
                        path: ByteString(self.path.clone()),
                        offset: self.node_offset,
                        known_at: token.end,
                        kind: NarNodeKind::Directory,
                    }));
                    self.dirs.push(Dir {
                        path_len: self.path.len(),
                        previous: None,
                    });
                    Expect::EntryOrClose
                }
                other => return fail(NarErrorKind::UnknownType(ByteString(other.to_vec()))),
            },
            Expect::RegularTag => match text {
                b"executable" => {
                    self.executable = true;
                    Expect::ExecutableEmpty
                }
                b"contents" => Expect::ContentsLen,
                _ => return expected("'contents'"),
            },
            Expect::ExecutableEmpty => {
                if !text.is_empty() {
                    return expected("''");
                }
                Expect::ContentsTag
            }
            Expect::ContentsTag => {
                if text != b"contents" {
                    return expected("'contents'");
                }
                Expect::ContentsLen
            }
            // The contents length is a plain word, read by `feed` itself.
            Expect::ContentsLen => Expect::ContentsLen,
            Expect::Close => {
                if text != b")" {
                    return expected("')'");
                }
                self.end_node();
                return Ok(());
            }
            Expect::TargetTag => {
                if text != b"target" {
                    return expected("'target'");
                }
                Expect::Target
            }
            Expect::Target => {
                events.push(NarEvent::Node(NarNode {
                    path: ByteString(self.path.clone()),
                    offset: self.node_offset,
                    known_at: token.end,
                    kind: NarNodeKind::Symlink {
                        target: ByteString(text.to_vec()),
                    },
                }));
                Expect::Close
            }
            Expect::EntryOrClose => match text {
                b")" => {
                    // The directory itself is closed.
                    self.dirs.pop();
                    self.end_node();
                    return Ok(());
                }
                b"entry" => Expect::EntryOpen,
                _ => return expected("'entry' or ')'"),
            },
            Expect::EntryOpen => {
                if text != b"(" {
                    return expected("'('");
                }
                Expect::NameTag
            }
            Expect::NameTag => {
                if text != b"name" {
                    return expected("'name'");
                }
                Expect::Name
            }
            Expect::Name => {
                self.check_name(text, token, events)?;
                if let Some(dir) = self.dirs.last_mut() {
                    dir.previous = Some(text.to_vec());
                }
                if !self.path.is_empty() {
                    self.path.push(b'/');
                }
                self.path.extend_from_slice(text);
                Expect::NodeTag
            }
            Expect::NodeTag => {
                if text != b"node" {
                    return expected("'node'");
                }
                self.node_offset = offset + 16;
                Expect::Open
            }
            Expect::EntryClose => {
                if text != b")" {
                    return expected("')'");
                }
                Expect::EntryOrClose
            }
        };
        self.state = State::Token(next);
        Ok(())
    }

    /// A node's closing `)` was read (or a directory's): either the whole
    /// NAR ends, or the enclosing entry's `)` comes next.
    fn end_node(&mut self) {
        match self.dirs.last() {
            None => self.state = State::Done,
            Some(dir) => {
                self.path.truncate(dir.path_len);
                self.state = State::Token(Expect::EntryClose);
            }
        }
    }

    fn check_name(
        &mut self,
        name: &[u8],
        token: Span,
        events: &mut Vec<NarEvent>,
    ) -> Result<(), NarError> {
        let offset = token.start;
        let mut problems = Vec::new();
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            problems.push(NarErrorKind::InvalidName(ByteString(name.to_vec())));
        }
        if let Some(previous) = self.dirs.last().and_then(|dir| dir.previous.as_ref()) {
            if name <= previous.as_slice() {
                problems.push(NarErrorKind::NotSorted {
                    previous: ByteString(previous.clone()),
                    name: ByteString(name.to_vec()),
                });
            }
        }
        for kind in problems {
            if self.options.strict_names {
                return Err(NarError { offset, kind });
            }
            events.push(NarEvent::Issue {
                offset,
                known_at: token.end,
                problem: kind.to_string(),
            });
        }
        Ok(())
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(w)
}

/// A whole NAR, parsed from a slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NarSummary {
    /// Length of the NAR in bytes; anything after it was not read.
    pub len: u64,
    /// Every node, in archive order.
    pub nodes: Vec<NarNode>,
    /// Problems reported instead of failing (non-strict names only).
    pub issues: Vec<String>,
}

/// Parses the NAR at the start of `bytes`. Bytes after its end are left
/// unread; a NAR cut short is [`NarErrorKind::UnexpectedEof`].
pub fn parse_nar(bytes: &[u8], options: NarOptions) -> Result<NarSummary, NarError> {
    let mut parser = NarParser::new(options);
    let mut events = Vec::new();
    let progress = parser.feed(bytes, &mut events);
    match progress.status {
        NarStatus::Done => {}
        NarStatus::Failed(error) => return Err(error),
        NarStatus::NeedMore | NarStatus::DumpFailed => {
            return Err(NarError {
                offset: parser.position(),
                kind: NarErrorKind::UnexpectedEof,
            })
        }
    }
    let mut nodes = Vec::new();
    let mut issues = Vec::new();
    for event in events {
        match event {
            NarEvent::Node(node) => nodes.push(node),
            NarEvent::Issue { problem, .. } => issues.push(problem),
        }
    }
    Ok(NarSummary {
        len: parser.position(),
        nodes,
        issues,
    })
}

/// Writes NARs, for tests and for tools that build payloads.
#[derive(Debug, Default)]
pub struct NarWriter {
    out: crate::primitives::Writer,
}

impl NarWriter {
    /// A writer that has written the magic.
    pub fn new() -> Self {
        let mut out = crate::primitives::Writer::new();
        out.string(NAR_MAGIC);
        NarWriter { out }
    }

    /// Opens a node and writes its type.
    fn open(&mut self, kind: &str) -> &mut Self {
        self.out.string("(").string("type").string(kind);
        self
    }

    /// Writes a whole regular-file node.
    pub fn regular(&mut self, executable: bool, contents: &[u8]) -> &mut Self {
        self.open("regular");
        if executable {
            self.out.string("executable").string("");
        }
        self.out.string("contents").string(contents).string(")");
        self
    }

    /// Writes a whole symlink node.
    pub fn symlink(&mut self, target: &[u8]) -> &mut Self {
        self.open("symlink");
        self.out.string("target").string(target).string(")");
        self
    }

    /// Opens a directory node; follow with [`NarWriter::entry`] calls and
    /// [`NarWriter::close`].
    pub fn directory(&mut self) -> &mut Self {
        self.open("directory")
    }

    /// Starts a directory entry; follow with one node and
    /// [`NarWriter::end_entry`].
    pub fn entry(&mut self, name: &[u8]) -> &mut Self {
        self.out
            .string("entry")
            .string("(")
            .string("name")
            .string(name)
            .string("node");
        self
    }

    /// Ends a directory entry.
    pub fn end_entry(&mut self) -> &mut Self {
        self.out.string(")");
        self
    }

    /// Closes a directory node.
    pub fn close(&mut self) -> &mut Self {
        self.out.string(")");
        self
    }

    /// The bytes written.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out).into_bytes()
    }
}

#[cfg(test)]
mod tests;
