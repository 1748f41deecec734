//! Unit tests of the streaming NAR parser: lengths, splits, limits and the
//! failed-dump word.

use super::*;
use crate::primitives::Writer;

fn sample() -> Vec<u8> {
    let mut w = NarWriter::new();
    w.directory()
        .entry(b"bin")
        .directory()
        .entry(b"hello")
        .regular(true, b"#!/bin/sh\necho hi\n")
        .end_entry()
        .close()
        .end_entry()
        .entry(b"empty")
        .regular(false, b"")
        .end_entry()
        .entry(b"link")
        .symlink(b"bin/hello")
        .end_entry()
        .close();
    w.finish()
}

/// Feeds `bytes` in pieces cut at `cuts`, keeping the unconsumed tail as a
/// caller must, and returns the events and the consumed total.
fn feed_split(
    bytes: &[u8],
    cuts: &[usize],
    options: NarOptions,
) -> (Vec<NarEvent>, usize, NarStatus) {
    let mut parser = NarParser::new(options);
    let mut events = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut consumed_total = 0;
    let mut last = 0;
    let mut status = NarStatus::NeedMore;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        pending.extend_from_slice(&bytes[last..cut]);
        last = cut;
        let progress = parser.feed(&pending, &mut events);
        consumed_total += progress.consumed;
        pending.drain(..progress.consumed);
        status = progress.status;
        if status != NarStatus::NeedMore {
            break;
        }
    }
    (events, consumed_total, status)
}

#[test]
fn a_written_nar_parses_with_paths_kinds_and_exact_length() {
    let mut bytes = sample();
    let len = bytes.len();
    bytes.extend_from_slice(b"trailing junk");
    let summary = parse_nar(&bytes, NarOptions::default()).unwrap();
    assert_eq!(summary.len as usize, len);
    let rendered: Vec<String> = summary
        .nodes
        .iter()
        .map(|node| format!("{} {:?}", node.path, node.kind))
        .collect();
    assert_eq!(
        rendered,
        vec![
            " Directory".to_string(),
            "bin Directory".into(),
            "bin/hello Regular { executable: true, size: 18 }".into(),
            "empty Regular { executable: false, size: 0 }".into(),
            "link Symlink { target: \"bin/hello\" }".into(),
        ]
    );
    assert_eq!(summary.nodes[0].offset, 24);
}

#[test]
fn every_split_gives_the_same_events_and_length() {
    let bytes = sample();
    let (whole, consumed, status) = feed_split(&bytes, &[], NarOptions::default());
    assert_eq!(status, NarStatus::Done);
    assert_eq!(consumed, bytes.len());
    for cut in 0..=bytes.len() {
        assert_eq!(
            feed_split(&bytes, &[cut], NarOptions::default()),
            (whole.clone(), consumed, NarStatus::Done)
        );
    }
    let every: Vec<usize> = (0..bytes.len()).collect();
    assert_eq!(feed_split(&bytes, &every, NarOptions::default()).0, whole);
}

#[test]
fn huge_contents_are_skipped_without_buffering() {
    let mut w = Writer::new();
    w.string(NAR_MAGIC)
        .string("(")
        .string("type")
        .string("regular")
        .string("contents");
    w.u64(1 << 40);
    let header = w.into_bytes();
    let mut parser = NarParser::default();
    let mut events = Vec::new();
    let progress = parser.feed(&header, &mut events);
    assert_eq!(progress.consumed, header.len());
    assert_eq!(progress.status, NarStatus::NeedMore);
    let chunk = vec![0u8; 1 << 20];
    let progress = parser.feed(&chunk, &mut events);
    assert_eq!(progress.consumed, chunk.len());
    assert!(
        matches!(&events[0], NarEvent::Node(NarNode { kind: NarNodeKind::Regular { size, .. }, .. }) if *size == 1 << 40)
    );
}

#[test]
fn stderr_error_at_a_tag_is_a_failed_dump_when_asked_for() {
    let options = NarOptions {
        detect_stderr_error: true,
        ..NarOptions::default()
    };
    let error_word = STDERR_ERROR.to_le_bytes();
    // 2.34: straight after STDERR_LAST.
    let progress = NarParser::new(options).feed(&error_word, &mut Vec::new());
    assert_eq!(
        progress,
        NarProgress {
            consumed: 0,
            status: NarStatus::DumpFailed
        }
    );
    // 2.8 / 2.26: after the header.
    let mut w = Writer::new();
    w.string(NAR_MAGIC).raw(&error_word).string("rest");
    let bytes = w.into_bytes();
    let progress = NarParser::new(options).feed(&bytes, &mut Vec::new());
    assert_eq!(
        progress,
        NarProgress {
            consumed: 24,
            status: NarStatus::DumpFailed
        }
    );
    // Without the option it is an over-long tag.
    let progress = NarParser::default().feed(&bytes, &mut Vec::new());
    assert!(matches!(
        progress.status,
        NarStatus::Failed(NarError {
            offset: 24,
            kind: NarErrorKind::StringTooLong { .. }
        })
    ));
    assert_eq!(progress.consumed, 24);
}

#[test]
fn invalid_names_are_issues_when_names_are_not_strict() {
    let mut w = NarWriter::new();
    w.directory()
        .entry(b"b")
        .regular(false, b"")
        .end_entry()
        .entry(b"a/x")
        .regular(false, b"")
        .end_entry()
        .close();
    let bytes = w.finish();
    let error = parse_nar(&bytes, NarOptions::default()).unwrap_err();
    assert!(matches!(error.kind, NarErrorKind::InvalidName(_)));
    let lenient = NarOptions {
        strict_names: false,
        ..NarOptions::default()
    };
    let summary = parse_nar(&bytes, lenient).unwrap();
    assert_eq!(summary.len as usize, bytes.len());
    assert_eq!(summary.issues.len(), 2, "{:?}", summary.issues);
}

#[test]
fn unsorted_entries_are_rejected() {
    let mut w = NarWriter::new();
    w.directory()
        .entry(b"b")
        .regular(false, b"")
        .end_entry()
        .entry(b"a")
        .regular(false, b"")
        .end_entry()
        .close();
    let error = parse_nar(&w.finish(), NarOptions::default()).unwrap_err();
    assert!(
        matches!(error.kind, NarErrorKind::NotSorted { .. }),
        "{error}"
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_rejected() {
    let mut w = NarWriter::new();
    for _ in 0..5 {
        w.directory().entry(b"d");
    }
    let bytes = w.finish();
    let options = NarOptions {
        max_depth: 3,
        ..NarOptions::default()
    };
    let progress = NarParser::new(options).feed(&bytes, &mut Vec::new());
    assert!(matches!(
        progress.status,
        NarStatus::Failed(NarError {
            kind: NarErrorKind::TooDeep { max: 3 },
            ..
        })
    ));
}

#[test]
fn after_the_end_nothing_more_is_consumed() {
    let bytes = sample();
    let mut parser = NarParser::default();
    let mut events = Vec::new();
    assert_eq!(parser.feed(&bytes, &mut events).status, NarStatus::Done);
    assert!(parser.is_done());
    assert_eq!(
        parser.feed(b"more", &mut events),
        NarProgress {
            consumed: 0,
            status: NarStatus::Done
        }
    );
}
