//! Serve-protocol connections built from fixed values.

use crate::export::EXPORT_MAGIC;
use crate::nar::NarWriter;
use crate::primitives::Writer;
use crate::serve::ops::{ServeAddToStoreNar, ServeHello, ServeReply, ServeRequest};
use crate::serve::{BuildOptions, ServePathInfo, SERVE_MAGIC_1, SERVE_MAGIC_2};
use crate::session::Direction;
use crate::types::{BasicDerivation, BuildResult, BuildStatus, DerivationOutput, StorePath};
use crate::{ByteString, ProtocolVersion};

const C: Direction = Direction::ClientToDaemon;
const S: Direction = Direction::DaemonToClient;

fn path(name: &str) -> StorePath {
    StorePath::new(format!(
        "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-{name}"
    ))
}

fn nar(contents: &[u8]) -> Vec<u8> {
    NarWriter::new().regular(false, contents).finish()
}

/// An export stream of one record.
fn export_stream(nar: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(1).raw(nar).u64(EXPORT_MAGIC);
    w.string(path("hello").as_str())
        .string_list::<&str>(&[])
        .string("")
        .u64(0);
    w.u64(0);
    w.into_bytes()
}

fn options() -> BuildOptions {
    BuildOptions {
        max_silent_time: 0,
        build_timeout: 0,
        max_log_size: 0,
        nr_repeats: 0,
        enforce_determinism: false,
        keep_failed: false,
    }
}

/// A serve connection as chunks in the order sent, at serve version
/// `2.minor`, using every command the version has (BuildDerivation from
/// 2.6 on is left out, its reply differing by minor), with both hellos:
/// built with the codec's own encoders from fixed values, for tests and
/// for the seed corpus of the `serve_session` fuzz target.
pub fn every_serve_command(minor: u8) -> Vec<(Direction, Vec<u8>)> {
    let version = ProtocolVersion::new(2, minor);
    let mut chunks = Vec::new();
    let mut push = |direction: Direction, bytes: Vec<u8>| chunks.push((direction, bytes));
    let encode_request = |request: &ServeRequest| {
        let mut w = Writer::new();
        request.encode(&mut w, version);
        w.into_bytes()
    };
    let encode_reply = |reply: &ServeReply| {
        let mut w = Writer::new();
        reply.encode(&mut w, version);
        w.into_bytes()
    };
    let mut w = Writer::new();
    ServeHello {
        magic: SERVE_MAGIC_1,
        version,
    }
    .encode(&mut w);
    push(C, w.into_bytes());
    let mut w = Writer::new();
    ServeHello {
        magic: SERVE_MAGIC_2,
        version,
    }
    .encode(&mut w);
    push(S, w.into_bytes());

    let hello = nar(b"hello\n");
    let info = ServePathInfo {
        deriver: None,
        references: vec![path("dep")],
        download_size: hello.len() as u64,
        nar_size: hello.len() as u64,
        nar_hash: if minor >= 4 {
            "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s".to_owned()
        } else {
            String::new()
        },
        ca: None,
        sigs: Vec::new(),
    };
    let exchanges: Vec<(ServeRequest, Vec<u8>, Vec<u8>)> = vec![
        (
            ServeRequest::QueryValidPaths {
                lock: false,
                substitute: true,
                paths: vec![path("hello"), path("gone")],
            },
            Vec::new(),
            encode_reply(&ServeReply::Paths {
                paths: vec![path("hello")],
            }),
        ),
        (
            ServeRequest::QueryPathInfos {
                paths: vec![path("hello")],
            },
            Vec::new(),
            encode_reply(&ServeReply::PathInfos {
                infos: vec![(path("hello"), info)],
            }),
        ),
        (
            ServeRequest::DumpStorePath {
                path: path("hello"),
            },
            Vec::new(),
            hello.clone(),
        ),
        (
            ServeRequest::ImportPaths,
            export_stream(&hello),
            encode_reply(&ServeReply::Done { status: 1 }),
        ),
        (
            ServeRequest::ExportPaths {
                sign: 0,
                paths: vec![path("hello")],
            },
            Vec::new(),
            export_stream(&hello),
        ),
        (
            ServeRequest::BuildPaths {
                paths: vec![ByteString(
                    b"/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-x.drv!out".to_vec(),
                )],
                options: options(),
            },
            Vec::new(),
            encode_reply(&ServeReply::BuildStatus {
                status: 1,
                error_msg: Some(ByteString(b"builder failed".to_vec())),
            }),
        ),
        (
            ServeRequest::QueryClosure {
                include_outputs: false,
                paths: vec![path("hello")],
            },
            Vec::new(),
            encode_reply(&ServeReply::Paths {
                paths: vec![path("dep"), path("hello")],
            }),
        ),
        (
            ServeRequest::BuildDerivation {
                drv_path: path("x.drv"),
                drv: Box::new(BasicDerivation {
                    outputs: vec![DerivationOutput {
                        name: "out".into(),
                        path: Some(path("x")),
                        hash_algo: String::new(),
                        hash: String::new(),
                    }],
                    input_srcs: vec![],
                    platform: ByteString(b"x86_64-linux".to_vec()),
                    builder: ByteString(b"/bin/sh".to_vec()),
                    args: vec![
                        ByteString(b"-c".to_vec()),
                        ByteString(b"echo hi > $out".to_vec()),
                    ],
                    env: vec![(
                        ByteString(b"out".to_vec()),
                        ByteString(path("x").as_str().as_bytes().to_vec()),
                    )],
                }),
                options: options(),
            },
            Vec::new(),
            encode_reply(&ServeReply::BuildResult {
                result: Box::new(BuildResult::new(BuildStatus::from_wire(0), "")),
            }),
        ),
        (
            ServeRequest::AddToStoreNar(Box::new(ServeAddToStoreNar {
                path: path("hello"),
                deriver: Some(path("x.drv")),
                nar_hash: "ab".repeat(32),
                references: vec![],
                registration_time: 1_700_000_000,
                nar_size: hello.len() as u64,
                ultimate: true,
                sigs: vec!["cache:AAAA".into()],
                ca: None,
            })),
            hello.clone(),
            encode_reply(&ServeReply::Done { status: 1 }),
        ),
    ];
    for (request, upload, reply) in exchanges {
        if minor < 6 || !matches!(request, ServeRequest::BuildDerivation { .. }) {
            let mut bytes = encode_request(&request);
            bytes.extend_from_slice(&upload);
            push(C, bytes);
            push(S, reply);
        }
    }
    chunks
}
