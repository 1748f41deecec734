//! The NAR corpus from Nix's own tests (`testdata/nix-upstream/nars`): each
//! file is accepted or rejected exactly as the corpus README says, valid
//! ones consume exactly their length, and trailing bytes are left unread.

use std::path::PathBuf;

use nixcap_wire::nar::{parse_nar, NarErrorKind, NarNodeKind, NarOptions, NarSummary};

fn nar(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "testdata",
        "nix-upstream",
        "nars",
        name,
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses a valid NAR with junk appended, checking the junk is left unread.
fn valid(name: &str, len: u64) -> NarSummary {
    let mut bytes = nar(name);
    assert_eq!(bytes.len() as u64, len, "{name} has the documented size");
    bytes.extend_from_slice(b"\x01junk after the archive\x02");
    let summary =
        parse_nar(&bytes, NarOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(summary.len, len, "{name} consumes exactly its length");
    assert!(summary.issues.is_empty());
    summary
}

fn invalid(name: &str) -> NarErrorKind {
    let bytes = nar(name);
    parse_nar(&bytes, NarOptions::default())
        .expect_err(name)
        .kind
}

fn paths(summary: &NarSummary) -> Vec<String> {
    summary
        .nodes
        .iter()
        .map(|node| node.path.to_string())
        .collect()
}

#[test]
fn simple_is_valid_with_four_entries() {
    let summary = valid("simple.nar", 856);
    assert_eq!(
        paths(&summary),
        ["", "empty-subdir", "emptyfile", "hello", "link"]
    );
    assert_eq!(summary.nodes[1].kind, NarNodeKind::Directory);
    assert_eq!(
        summary.nodes[2].kind,
        NarNodeKind::Regular {
            executable: false,
            size: 0
        }
    );
    assert_eq!(
        summary.nodes[3].kind,
        NarNodeKind::Regular {
            executable: false,
            size: 13
        }
    );
    assert_eq!(
        summary.nodes[4].kind,
        NarNodeKind::Symlink {
            target: "somelink".into()
        }
    );
}

#[test]
fn empty_dir_is_valid() {
    let summary = valid("empty-dir.nar", 96);
    assert_eq!(summary.nodes.len(), 1);
    assert_eq!(summary.nodes[0].kind, NarNodeKind::Directory);
}

#[test]
fn empty_subdir_is_valid() {
    let summary = valid("empty-subdir.nar", 272);
    assert_eq!(paths(&summary), ["", "empty-subdir"]);
}

#[test]
fn case_is_valid() {
    let summary = valid("case.nar", 2416);
    let names = paths(&summary);
    for name in ["FOO", "Foo", "foo", "xt_CONNMARK.h", "xt_CONNmark.h"] {
        assert!(
            names.iter().any(|p| p.ends_with(name)),
            "{name} in {names:?}"
        );
    }
}

#[test]
fn case_collision_is_valid_with_an_executable_of_43_bytes() {
    let summary = valid("case-collision.nar", 1928);
    let names = paths(&summary);
    assert!(names.contains(&"Test".to_string()));
    assert!(names.contains(&"Test~nix~case~hack~1".to_string()));
    assert!(summary
        .nodes
        .iter()
        .any(|node| node.path.to_string().starts_with("test/")
            && node.kind
                == NarNodeKind::Regular {
                    executable: true,
                    size: 43
                }));
}

#[test]
fn regular_one_byte_zero_padding_is_valid_and_exactly_120_bytes() {
    let summary = valid("regular-one-byte-zero-padding.nar", 120);
    assert_eq!(
        summary.nodes[0].kind,
        NarNodeKind::Regular {
            executable: false,
            size: 1
        }
    );
}

#[test]
fn regular_one_byte_non_zero_padding_is_rejected() {
    assert_eq!(
        invalid("regular-one-byte-non-zero-padding.nar"),
        NarErrorKind::NonZeroPadding
    );
}

#[test]
fn regular_truncated_large_contents_is_end_of_file() {
    assert_eq!(
        invalid("regular-truncated-large-contents.nar"),
        NarErrorKind::UnexpectedEof
    );
}

#[test]
fn regular_truncated_padding_is_end_of_file() {
    assert_eq!(
        invalid("regular-truncated-padding.nar"),
        NarErrorKind::UnexpectedEof
    );
}

#[test]
fn invalid_tag_instead_of_contents_is_rejected() {
    let kind = invalid("invalid-tag-instead-of-contents.nar");
    assert_eq!(kind.to_string(), "expected tag 'contents', got 'AAAAAAAA'");
}

#[test]
fn executable_after_contents_is_rejected() {
    let kind = invalid("executable-after-contents.nar");
    assert_eq!(kind.to_string(), "expected tag ')', got 'executable'");
}

#[test]
fn name_after_node_is_rejected() {
    let kind = invalid("name-after-node.nar");
    assert!(
        kind.to_string().starts_with("expected tag 'name'"),
        "{kind}"
    );
}

#[test]
fn empty_name_is_rejected() {
    assert_eq!(invalid("empty.nar"), NarErrorKind::InvalidName("".into()));
}

#[test]
fn dot_is_rejected() {
    assert_eq!(invalid("dot.nar"), NarErrorKind::InvalidName(".".into()));
}

#[test]
fn dotdot_is_rejected() {
    assert_eq!(
        invalid("dotdot.nar"),
        NarErrorKind::InvalidName("..".into())
    );
}

#[test]
fn slash_is_rejected() {
    assert_eq!(
        invalid("slash.nar"),
        NarErrorKind::InvalidName("x/y".into())
    );
}

#[test]
fn nul_character_is_rejected() {
    assert_eq!(
        invalid("nul-character.nar"),
        NarErrorKind::InvalidName(b"f\0o".as_slice().into())
    );
}

#[test]
fn invalid_names_still_parse_to_their_end_when_names_are_not_strict() {
    let lenient = NarOptions {
        strict_names: false,
        ..NarOptions::default()
    };
    for name in [
        "empty.nar",
        "dot.nar",
        "dotdot.nar",
        "slash.nar",
        "nul-character.nar",
    ] {
        let bytes = nar(name);
        let summary = parse_nar(&bytes, lenient).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.len as usize, bytes.len(), "{name}");
        assert_eq!(summary.issues.len(), 1, "{name}: {:?}", summary.issues);
    }
}
