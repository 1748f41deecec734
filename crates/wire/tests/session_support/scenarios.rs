//! Synthetic connections covering what the real transcripts do not: every
//! protocol version, the old upload paths, the NarFromPath failure forms
//! and the fatal-error teardown. Payloads are Nix's own golden vectors.

use nixcap_wire::nar::NarWriter;
use nixcap_wire::primitives::Writer;
use nixcap_wire::stderr::{ActivityType, Field, ResultType, StderrMessage};

use super::script::{framed, nar, op, path_infos, Script, PATH};

pub const DRV: &str = "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv";

/// SetOptions as current clients send it, and its empty reply.
pub fn set_options(s: &mut Script) {
    let minor = s.version.minor;
    s.client(|w| {
        w.u64(op::SET_OPTIONS);
        for value in [0, 0, 0, 3, 1, 0, 1, 7, 0, 0, 0, 1] {
            w.u64(value);
        }
        if minor >= 12 {
            w.u64(1).string("cores").string("4");
        }
    })
    .last();
}

/// Handshake, SetOptions and IsValidPath between the two versions.
pub fn basic(client_minor: u8, daemon_minor: u8) -> Script {
    let mut s = Script::handshake(client_minor, daemon_minor);
    set_options(&mut s);
    s.is_valid_path();
    s
}

/// AddToStore ≥ 1.25: a framed NAR upload, answered with a path info.
pub fn framed_add_to_store() -> Script {
    let mut s = basic(38, 38);
    let payload = nar("simple.nar");
    s.client(|w| {
        w.u64(op::ADD_TO_STORE)
            .string("foo")
            .string("fixed:r:sha256")
            .u64(0)
            .u64(0);
    });
    s.client(|w| framed(w, &payload, 100));
    s.stderr(StderrMessage::Next {
        text: "adding\n".into(),
    });
    s.last();
    let info = path_infos().remove(0);
    s.daemon(|w| {
        w.raw(&info);
    });
    s.is_valid_path();
    s
}

/// AddToStore < 1.25: an inline NAR, answered with a path.
pub fn inline_add_to_store() -> Script {
    let mut s = basic(21, 21);
    s.client(|w| {
        w.u64(op::ADD_TO_STORE)
            .string("case")
            .u64(1)
            .u64(1)
            .string("sha256")
            .raw(&nar("case.nar"));
    });
    s.last().daemon(|w| {
        w.string(PATH);
    });
    s.is_valid_path();
    s
}

/// AddToStoreNar at `1.minor`: inline below 1.21, pulled by STDERR_READ in
/// 1.21–1.22, framed from 1.23.
pub fn add_to_store_nar(minor: u8) -> Script {
    let mut s = basic(minor, 38);
    let info = path_infos().remove(1);
    let payload = nar("simple.nar");
    s.client(|w| {
        w.u64(op::ADD_TO_STORE_NAR).raw(&info).u64(0).u64(0);
    });
    if minor < 21 {
        s.client(|w| {
            w.raw(&payload);
        });
    } else if minor < 23 {
        for piece in payload.chunks(300) {
            s.stderr(StderrMessage::Read { max_len: 300 });
            s.client(|w| {
                w.string(piece);
            });
        }
    } else {
        s.client(|w| framed(w, &payload, 256));
    }
    s.last();
    s.is_valid_path();
    s
}

/// AddMultipleToStore: three path infos and their NARs in one framed stream.
pub fn add_multiple_to_store() -> Script {
    let mut s = basic(38, 38);
    let mut payload = Writer::new();
    payload.u64(3);
    for (info, nar_name) in
        path_infos()
            .iter()
            .zip(["simple.nar", "empty-dir.nar", "case-collision.nar"])
    {
        payload.raw(info).raw(&nar(nar_name));
    }
    let payload = payload.into_bytes();
    s.client(|w| {
        w.u64(op::ADD_MULTIPLE_TO_STORE).u64(0).u64(0);
    });
    s.client(|w| framed(w, &payload, 777));
    s.stderr(StderrMessage::StartActivity {
        id: 1 << 32,
        level: 4,
        activity_type: ActivityType::COPY_PATHS,
        text: "".into(),
        fields: vec![],
        parent: 0,
    });
    s.stderr(StderrMessage::StopActivity { id: 1 << 32 });
    s.last();
    s
}

/// One export record: `u64 1`, the NAR, the trailer.
fn export_record(w: &mut Writer, nar_bytes: &[u8], path: &str) {
    w.u64(1)
        .raw(nar_bytes)
        .u64(0x4558_494e)
        .string(path)
        .u64(1)
        .string(PATH)
        .string("")
        .u64(0);
}

/// ImportPaths at 1.17: the export stream pulled by STDERR_READ in pieces.
pub fn import_paths() -> Script {
    let mut s = basic(17, 38);
    let mut stream = Writer::new();
    export_record(&mut stream, &nar("regular-one-byte-zero-padding.nar"), PATH);
    export_record(&mut stream, &nar("empty-dir.nar"), DRV);
    stream.u64(0);
    let stream = stream.into_bytes();
    s.client(|w| {
        w.u64(op::IMPORT_PATHS);
    });
    for piece in stream.chunks(100) {
        s.stderr(StderrMessage::Read { max_len: 100 });
        s.client(|w| {
            w.string(piece);
        });
    }
    s.last().daemon(|w| {
        w.string_list(&[PATH, DRV]);
    });
    s
}

/// NarFromPath answered with a whole NAR, then another op.
pub fn nar_from_path() -> Script {
    let mut s = basic(34, 34);
    s.client(|w| {
        w.u64(op::NAR_FROM_PATH).string(PATH);
    });
    let mut big = NarWriter::new();
    big.directory()
        .entry(b"big")
        .regular(true, &vec![0x5a; 200_000])
        .end_entry()
        .entry(b"small")
        .regular(false, b"x")
        .end_entry()
        .close();
    let payload = big.finish();
    s.last().daemon(|w| {
        w.raw(&payload);
    });
    s.is_valid_path();
    s
}

/// NarFromPath failing the 2.8 / 2.26 way: the NAR header, then the two
/// errors of a fatal failure, then EOF.
pub fn nar_from_path_fails_after_header() -> Script {
    let mut s = basic(34, 34);
    s.client(|w| {
        w.u64(op::NAR_FROM_PATH).string(PATH);
    });
    s.last().daemon(|w| {
        w.string("nix-archive-1");
    });
    s.error("getting status of path: No such file or directory");
    s.error("getting status of path: No such file or directory");
    s
}

/// NarFromPath failing the 2.34 way: the errors straight after STDERR_LAST.
pub fn nar_from_path_fails_at_start() -> Script {
    let mut s = basic(38, 38);
    s.client(|w| {
        w.u64(op::NAR_FROM_PATH).string(PATH);
    });
    s.last();
    s.error("path is not a valid store path");
    s.error("path is not a valid store path");
    s
}

/// An unknown op number: fatal, two errors, EOF.
pub fn unknown_op() -> Script {
    let mut s = basic(38, 38);
    s.client(|w| {
        w.u64(99);
    });
    s.error("invalid operation 99");
    s.error("invalid operation 99");
    s
}

/// QueryFailedPaths, which no 2.x daemon handles: fatal, two errors.
pub fn removed_op() -> Script {
    let mut s = basic(38, 38);
    s.client(|w| {
        w.u64(op::QUERY_FAILED_PATHS);
    });
    s.error("invalid operation 24");
    s.error("invalid operation 24");
    s
}

/// QueryRealisation to a daemon that dies without a word.
pub fn query_realisation_eof() -> Script {
    let mut s = basic(34, 34);
    s.client(|w| {
        w.u64(op::QUERY_REALISATION)
            .string(format!("sha256:{}!out", "0".repeat(64)));
    });
    s
}

/// Errors in the layout before 1.26, and a build's activity messages.
pub fn legacy_errors_and_activities() -> Script {
    let mut s = basic(25, 25);
    s.client(|w| {
        w.u64(op::QUERY_PATH_INFO).string(PATH);
    });
    s.error("path is not valid");
    s.client(|w| {
        w.u64(op::IS_VALID_PATH).string(PATH);
    });
    s.stderr(StderrMessage::StartActivity {
        id: 7,
        level: 3,
        activity_type: ActivityType::BUILD,
        text: "building".into(),
        fields: vec![
            Field::String(DRV.into()),
            Field::String("".into()),
            Field::Int(1),
            Field::Int(1),
        ],
        parent: 0,
    });
    s.stderr(StderrMessage::Result {
        id: 7,
        result_type: ResultType::BUILD_LOG_LINE,
        fields: vec![Field::String("hello".into())],
    });
    s.stderr(StderrMessage::StopActivity { id: 7 });
    s.last().daemon(|w| {
        w.u64(0);
    });
    s
}

/// A connection cut in the middle of a request.
pub fn cut_mid_request() -> Script {
    let mut s = basic(38, 38);
    s.client(|w| {
        w.u64(op::IS_VALID_PATH)
            .u64(PATH.len() as u64)
            .raw(&PATH.as_bytes()[..10]);
    });
    s
}

/// Garbage where a request belongs.
pub fn garbage_request() -> Script {
    let mut s = basic(38, 38);
    s.client(|w| {
        w.u64(op::IS_VALID_PATH).u64(3).raw(b"abcXYZ\x01\x02");
        w.raw(&[0xee; 100]);
    });
    s.error("bad request");
    s
}

/// Every scenario, named.
pub fn all() -> Vec<(String, Script)> {
    let mut out: Vec<(String, Script)> = vec![
        ("framed_add_to_store".into(), framed_add_to_store()),
        ("inline_add_to_store".into(), inline_add_to_store()),
        ("add_to_store_nar_1_20".into(), add_to_store_nar(20)),
        ("add_to_store_nar_1_21".into(), add_to_store_nar(21)),
        ("add_to_store_nar_1_23".into(), add_to_store_nar(23)),
        ("add_multiple_to_store".into(), add_multiple_to_store()),
        ("import_paths".into(), import_paths()),
        ("nar_from_path".into(), nar_from_path()),
        (
            "nar_from_path_fails_after_header".into(),
            nar_from_path_fails_after_header(),
        ),
        (
            "nar_from_path_fails_at_start".into(),
            nar_from_path_fails_at_start(),
        ),
        ("unknown_op".into(), unknown_op()),
        ("removed_op".into(), removed_op()),
        ("query_realisation_eof".into(), query_realisation_eof()),
        (
            "legacy_errors_and_activities".into(),
            legacy_errors_and_activities(),
        ),
        ("cut_mid_request".into(), cut_mid_request()),
        ("garbage_request".into(), garbage_request()),
    ];
    for minor in 10..=38 {
        out.push((format!("basic_1_{minor}"), basic(minor, minor)));
    }
    for minor in [10, 14, 25, 33, 35, 37] {
        out.push((
            format!("basic_client_1_{minor}_daemon_1_38"),
            basic(minor, 38),
        ));
        out.push((
            format!("basic_client_1_38_daemon_1_{minor}"),
            basic(38, minor),
        ));
    }
    out
}
