//! Unit tests of the operation codecs: every request and reply variant
//! round-trips at every protocol version that changes a layout, truncated
//! input is always incomplete (never invalid, never a panic), and
//! whatever decodes from mutated input re-encodes to the bytes it consumed.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::bytes::ByteString;
use crate::primitives::{InvalidKind, ReadError, Reader, Writer};
use crate::types::{
    BasicDerivation, BinaryBuiltOutput, BuildMode, BuildResult, BuildStatus, BuiltOutputs,
    ClientSettings, ContentAddress, ContentAddressMethodWithAlgo, DerivationOutput, DerivedPath,
    DrvOutput, GcAction, GcOptions, GcPaths, JsonBuiltOutput, KeyedBuildResult, OutputsSpec,
    Realisation, RealisationJson, RealisationQueryResult, SingleDerivedPath, StorePath,
    SubstitutablePathInfo, UnkeyedRealisation, UnkeyedValidPathInfo, ValidPathInfo,
};
use crate::version::{feature, Negotiated, ProtocolVersion};

fn sp(name: &str) -> StorePath {
    StorePath(format!(
        "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-{name}"
    ))
}

/// The versions whose layouts differ, and 1.38 with and without the 2.35
/// features (and the two unreleased ones).
fn negotiations() -> Vec<Negotiated> {
    let mut all: Vec<Negotiated> = [10, 16, 21, 25, 30, 34, 37, 38]
        .into_iter()
        .map(|minor| Negotiated::new(ProtocolVersion::new(1, minor)))
        .collect();
    let mut features = vec![
        feature::REALISATION_WITH_PATH_NOT_HASH.to_owned(),
        feature::DELETE_DEAD_SPECIFIC_REFERRERS.to_owned(),
        feature::DISABLE_SET_OPTIONS.to_owned(),
        feature::ADD_TO_STORE_SCANNING.to_owned(),
        feature::SUBMIT_OUTPUT.to_owned(),
    ];
    features.sort();
    all.push(Negotiated {
        version: ProtocolVersion::LATEST,
        features,
    });
    all
}

fn derived_paths(n: &Negotiated) -> Vec<DerivedPath> {
    let mut paths = vec![
        DerivedPath::Opaque { path: sp("foo") },
        DerivedPath::Built {
            drv_path: sp("bar.drv"),
            outputs: OutputsSpec::All,
        },
        DerivedPath::Built {
            drv_path: sp("bar.drv"),
            outputs: OutputsSpec::Names(vec!["dev".into(), "out".into()]),
        },
    ];
    if n.at_least(30) {
        paths.push(DerivedPath::Opaque {
            path: sp("foo.drv"),
        });
        // A dynamic derivation: the derivation is itself an output.
        paths.push(DerivedPath::Built {
            drv_path: StorePath(format!("{}!out", sp("gen.drv"))),
            outputs: OutputsSpec::Names(vec!["bin".into()]),
        });
    }
    paths
}

fn path_info(n: &Negotiated) -> UnkeyedValidPathInfo {
    let mut info = UnkeyedValidPathInfo {
        deriver: Some(sp("foo.drv")),
        nar_hash: "15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527".into(),
        // Unsorted on purpose: order is kept as sent.
        references: vec![sp("zzz"), sp("foo")],
        registration_time: 1_700_000_000,
        nar_size: 1234,
        ultimate: false,
        sigs: Vec::new(),
        ca: None,
    };
    if n.at_least(16) {
        info.ultimate = true;
        info.sigs = vec!["cache.nixos.org-1:abc".into()];
        info.ca = Some(ContentAddress(
            "fixed:r:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh".into(),
        ));
    }
    info
}

fn realisation(n: &Negotiated) -> Realisation {
    if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
        Realisation::Binary {
            drv_path: sp("foo.drv"),
            output_name: "out".into(),
            realisation: UnkeyedRealisation {
                out_path: sp("foo"),
                signatures: vec!["k:sig".into()],
            },
        }
    } else if n.at_least(31) {
        Realisation::Json {
            json: RealisationJson(r#"{"dependentRealisations":{},"id":"sha256:00!out","outPath":"x-foo","signatures":[]}"#.into()),
        }
    } else {
        Realisation::Legacy {
            id: "sha256:00!out".into(),
            out_path: "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo".into(),
        }
    }
}

fn drv_output(n: &Negotiated) -> DrvOutput {
    if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
        DrvOutput::Path {
            drv_path: sp("foo.drv"),
            output_name: "out".into(),
        }
    } else {
        DrvOutput::Id("sha256:00!out".into())
    }
}

fn build_result(n: &Negotiated, status: BuildStatus) -> BuildResult {
    let mut result = BuildResult::new(
        status,
        if status.is_success() {
            ""
        } else {
            "builder failed\n"
        },
    );
    if n.at_least(29) {
        result.times_built = 1;
        result.is_non_deterministic = status == BuildStatus::NotDeterministic;
        result.start_time = 30;
        result.stop_time = 50;
    }
    if n.at_least(37) {
        result.cpu_user = Some(5);
        result.cpu_system = None;
    }
    if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
        result.built_outputs = BuiltOutputs::Binary(vec![BinaryBuiltOutput {
            output_name: "out".into(),
            realisation: UnkeyedRealisation {
                out_path: sp("foo"),
                signatures: Vec::new(),
            },
        }]);
    } else if n.at_least(28) {
        result.built_outputs = BuiltOutputs::Json(vec![JsonBuiltOutput {
            id: "sha256:00!out".into(),
            realisation: RealisationJson(r#"{"id":"sha256:00!out","outPath":"x-foo"}"#.into()),
        }]);
    }
    result
}

fn settings(n: &Negotiated) -> ClientSettings {
    ClientSettings {
        keep_failed: false,
        keep_going: true,
        try_fallback: false,
        verbosity: 3,
        max_build_jobs: 4,
        max_silent_time: 0,
        use_build_hook: 1,
        verbose_build: 7,
        log_type: 0,
        print_build_trace: 0,
        build_cores: 0,
        use_substitutes: true,
        overrides: if n.at_least(12) {
            vec![
                (
                    "substituters".into(),
                    ByteString::from("https://cache.nixos.org/"),
                ),
                ("post-build-hook".into(), ByteString(vec![0xff, 0xfe])),
            ]
        } else {
            Vec::new()
        },
    }
}

fn gc_options(n: &Negotiated) -> Vec<GcOptions> {
    let base = |action, paths| GcOptions {
        action,
        paths,
        ignore_liveness: false,
        max_freed: u64::MAX,
        obsolete: [0, 0, 0],
    };
    if n.has(feature::DELETE_DEAD_SPECIFIC_REFERRERS) {
        vec![
            base(GcAction::DeleteDead, GcPaths::WholeStore),
            base(
                GcAction::DeleteDead,
                GcPaths::Specific {
                    paths: vec![sp("foo")],
                    delete_referrers: true,
                },
            ),
        ]
    } else {
        vec![
            base(GcAction::ReturnDead, GcPaths::Set { paths: Vec::new() }),
            base(
                GcAction::DeleteSpecific,
                GcPaths::Set {
                    paths: vec![sp("foo")],
                },
            ),
        ]
    }
}

fn derivation() -> BasicDerivation {
    BasicDerivation {
        outputs: vec![
            DerivationOutput {
                name: "out".into(),
                path: Some(sp("foo")),
                hash_algo: String::new(),
                hash: String::new(),
            },
            DerivationOutput {
                name: "src".into(),
                path: None,
                hash_algo: "r:sha256".into(),
                hash: String::new(),
            },
        ],
        input_srcs: vec![sp("builder.sh")],
        platform: "x86_64-linux".into(),
        builder: "/bin/sh".into(),
        args: vec!["-e".into(), ByteString(vec![0x80])],
        env: vec![("out".into(), sp("foo").0.into()), ("z".into(), "".into())],
    }
}

/// At least one request per op, each valid at `n`.
fn requests(n: &Negotiated) -> Vec<Request> {
    let path = sp("foo");
    let mut out = vec![
        Request::IsValidPath { path: path.clone() },
        Request::HasSubstitutes { path: path.clone() },
        Request::QueryPathHash { path: path.clone() },
        Request::QueryReferences { path: path.clone() },
        Request::QueryReferrers { path: path.clone() },
        Request::AddTextToStore {
            name: "hello.txt".into(),
            text: ByteString(b"hello\0\xff".to_vec()),
            references: vec![sp("b"), sp("a")],
        },
        Request::BuildPaths {
            paths: derived_paths(n),
            mode: if n.at_least(15) {
                BuildMode::Check
            } else {
                BuildMode::Normal
            },
        },
        Request::EnsurePath { path: path.clone() },
        Request::AddTempRoot { path: path.clone() },
        Request::AddIndirectRoot {
            path: ByteString::from("/home/u/result"),
        },
        Request::SyncWithGC {},
        Request::FindRoots {},
        Request::ExportPath {
            path: path.clone(),
            sign: 0,
        },
        Request::QueryDeriver { path: path.clone() },
        Request::SetOptions {
            settings: settings(n),
        },
        Request::QuerySubstitutablePathInfo { path: path.clone() },
        Request::QueryDerivationOutputs {
            path: sp("foo.drv"),
        },
        Request::QueryAllValidPaths {},
        Request::QueryFailedPaths {},
        Request::ClearFailedPaths {
            paths: vec![sp("x"), sp("a")],
        },
        Request::QueryPathInfo { path: path.clone() },
        Request::ImportPaths {},
        Request::QueryDerivationOutputNames {
            path: sp("foo.drv"),
        },
        Request::QueryPathFromHashPart {
            hash_part: "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q".into(),
        },
        Request::QuerySubstitutablePathInfos {
            paths: vec![
                (sp("b"), None),
                (
                    sp("a"),
                    n.at_least(22).then(|| {
                        ContentAddress("fixed:sha1:1amk6n7wxjlw4qkq6dcj6mm7hw3acrw0".into())
                    }),
                ),
            ],
        },
        Request::QueryValidPaths {
            paths: vec![sp("a"), sp("b")],
            substitute: n.at_least(27),
        },
        Request::QuerySubstitutablePaths { paths: vec![] },
        Request::QueryValidDerivers { path: path.clone() },
        Request::OptimiseStore {},
        Request::VerifyStore {
            check_contents: true,
            repair: false,
        },
        Request::BuildDerivation {
            drv_path: sp("foo.drv"),
            derivation: derivation(),
            mode: BuildMode::Repair,
        },
        Request::AddSignatures {
            path: path.clone(),
            signatures: vec!["k2:x".into(), "k1:y".into()],
        },
        Request::NarFromPath { path: path.clone() },
        Request::AddToStoreNar {
            // Always the 1.16 layout.
            info: ValidPathInfo {
                path: path.clone(),
                info: path_info(&Negotiated::new(ProtocolVersion::new(1, 16))),
            },
            repair: false,
            dont_check_sigs: true,
        },
        Request::QueryMissing {
            paths: derived_paths(n),
        },
        Request::QueryDerivationOutputMap {
            path: sp("foo.drv"),
        },
        Request::RegisterDrvOutput {
            realisation: realisation(n),
        },
        Request::QueryRealisation { id: drv_output(n) },
        Request::AddMultipleToStore {
            repair: true,
            dont_check_sigs: false,
        },
        Request::AddBuildLog {
            base_name: "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv".into(),
        },
        Request::BuildPathsWithResults {
            paths: derived_paths(n),
            mode: BuildMode::Normal,
        },
        Request::AddPermRoot {
            path: path.clone(),
            gc_root: ByteString::from("/nix/var/nix/gcroots/x"),
        },
        Request::SubmitOutput {
            path: SingleDerivedPath::Built {
                drv_path: Box::new(SingleDerivedPath::Opaque {
                    path: sp("foo.drv"),
                }),
                output: "out".into(),
            },
            output: "out".into(),
        },
        Request::AddToStoreScanning {
            name: "foo".into(),
            method: ContentAddressMethodWithAlgo("fixed:r:sha256".into()),
        },
    ];
    out.push(Request::AddToStore {
        name: "foo".into(),
        args: if n.at_least(25) {
            AddToStoreArgs::Ca {
                method: ContentAddressMethodWithAlgo("text:sha256".into()),
                references: vec![sp("b")],
                repair: false,
            }
        } else {
            AddToStoreArgs::Legacy {
                fixed: true,
                recursive: true,
                hash_algo: "sha256".into(),
            }
        },
    });
    for options in gc_options(n) {
        out.push(Request::CollectGarbage { options });
    }
    out
}

/// At least one reply per op, each valid at `n`.
fn replies(n: &Negotiated) -> Vec<Reply> {
    let paths = vec![sp("b"), sp("a")];
    let mut out = vec![
        Reply::IsValidPath { valid: true },
        Reply::IsValidPath { valid: false },
        Reply::HasSubstitutes {
            has_substitutes: false,
        },
        Reply::QueryPathHash {
            hash: "15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527".into(),
        },
        Reply::QueryReferences {
            paths: paths.clone(),
        },
        Reply::QueryReferrers { paths: vec![] },
        Reply::AddToStore {
            path: sp("foo"),
            info: n.at_least(25).then(|| path_info(n)),
        },
        Reply::AddTextToStore { path: sp("foo") },
        Reply::BuildPaths { result: 1 },
        Reply::EnsurePath { result: 1 },
        Reply::AddTempRoot { result: 1 },
        Reply::AddIndirectRoot { result: 1 },
        Reply::SyncWithGC { result: 1 },
        Reply::FindRoots {
            roots: vec![
                (ByteString::from("/proc/1/maps"), sp("foo")),
                (ByteString(vec![b'/', 0xff]), sp("bar")),
            ],
        },
        Reply::ExportPath { result: 1 },
        Reply::QueryDeriver { deriver: None },
        Reply::QueryDeriver {
            deriver: Some(sp("foo.drv")),
        },
        Reply::SetOptions {},
        Reply::CollectGarbage {
            paths: vec![sp("a").0, sp("b").0],
            bytes_freed: 4096,
            obsolete: 0,
        },
        Reply::QuerySubstitutablePathInfo { info: None },
        Reply::QuerySubstitutablePathInfo {
            info: Some(SubstitutablePathInfo {
                deriver: None,
                references: paths.clone(),
                download_size: 10,
                nar_size: 20,
            }),
        },
        Reply::QueryDerivationOutputs {
            paths: paths.clone(),
        },
        Reply::QueryAllValidPaths {
            paths: paths.clone(),
        },
        Reply::QueryFailedPaths { paths: vec![] },
        Reply::ClearFailedPaths { result: 1 },
        Reply::QueryPathInfo {
            info: Some(path_info(n)),
        },
        Reply::ImportPaths {
            paths: paths.clone(),
        },
        Reply::QueryDerivationOutputNames {
            names: vec!["out".into(), "dev".into()],
        },
        Reply::QueryPathFromHashPart { path: None },
        Reply::QuerySubstitutablePathInfos {
            infos: vec![(
                sp("foo"),
                SubstitutablePathInfo {
                    deriver: Some(sp("foo.drv")),
                    references: vec![],
                    download_size: 1,
                    nar_size: 2,
                },
            )],
        },
        Reply::QueryValidPaths {
            paths: paths.clone(),
        },
        Reply::QuerySubstitutablePaths { paths: vec![] },
        Reply::QueryValidDerivers {
            paths: paths.clone(),
        },
        Reply::OptimiseStore { result: 1 },
        Reply::VerifyStore { errors_found: true },
        Reply::BuildDerivation {
            result: build_result(n, BuildStatus::Built),
        },
        Reply::BuildDerivation {
            result: build_result(n, BuildStatus::Other(99)),
        },
        Reply::AddSignatures { result: 1 },
        Reply::NarFromPath {},
        Reply::AddToStoreNar {},
        Reply::QueryMissing {
            will_build: vec![sp("x.drv")],
            will_substitute: paths.clone(),
            unknown: vec![],
            download_size: 100,
            nar_size: 200,
        },
        Reply::QueryDerivationOutputMap {
            outputs: vec![("out".into(), Some(sp("foo"))), ("dev".into(), None)],
        },
        Reply::RegisterDrvOutput {},
        Reply::AddMultipleToStore {},
        Reply::AddBuildLog { result: 1 },
        Reply::BuildPathsWithResults {
            results: derived_paths(n)
                .into_iter()
                .zip(
                    [
                        BuildStatus::Built,
                        BuildStatus::PermanentFailure,
                        BuildStatus::AlreadyValid,
                    ]
                    .into_iter()
                    .cycle(),
                )
                .map(|(path, status)| KeyedBuildResult {
                    path,
                    result: build_result(n, status),
                })
                .collect(),
        },
        Reply::AddPermRoot {
            gc_root: ByteString::from("/nix/var/nix/gcroots/x"),
        },
        Reply::SubmitOutput { result: 1 },
        Reply::AddToStoreScanning {
            info: ValidPathInfo {
                path: sp("foo"),
                info: path_info(n),
            },
        },
    ];
    if n.at_least(17) {
        out.push(Reply::QueryPathInfo { info: None });
    }
    let realisation_results = if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
        vec![
            RealisationQueryResult::Binary(None),
            RealisationQueryResult::Binary(Some(UnkeyedRealisation {
                out_path: sp("foo"),
                signatures: vec!["k:s".into()],
            })),
        ]
    } else if n.at_least(31) {
        vec![
            RealisationQueryResult::Json(vec![]),
            RealisationQueryResult::Json(vec![RealisationJson("{}".into())]),
        ]
    } else {
        vec![RealisationQueryResult::OutPaths(vec![sp("foo")])]
    };
    out.extend(
        realisation_results
            .into_iter()
            .map(|result| Reply::QueryRealisation { result }),
    );
    out
}

fn encode_request(request: &Request, n: &Negotiated) -> Vec<u8> {
    let mut w = Writer::new();
    request.encode(&mut w, n);
    w.into_bytes()
}

fn encode_reply(reply: &Reply, n: &Negotiated) -> Vec<u8> {
    let mut w = Writer::new();
    reply.encode(&mut w, n);
    w.into_bytes()
}

#[test]
fn samples_cover_every_op() {
    for n in negotiations() {
        let request_ops: BTreeSet<Op> = requests(&n).iter().map(Request::op).collect();
        let reply_ops: BTreeSet<Op> = replies(&n).iter().map(Reply::op).collect();
        let all: BTreeSet<Op> = Op::ALL.into_iter().collect();
        assert_eq!(request_ops, all, "requests at {n:?}");
        assert_eq!(reply_ops, all, "replies at {n:?}");
    }
}

#[test]
fn every_request_round_trips_at_every_version() {
    for n in negotiations() {
        for request in requests(&n) {
            let bytes = encode_request(&request, &n);
            let mut r = Reader::new(&bytes);
            let decoded = Request::decode_with_op(&mut r, &n)
                .unwrap_or_else(|e| panic!("{request:?} at {n:?}: {e}"));
            assert!(r.is_empty(), "{request:?} at {n:?}: bytes left");
            assert_eq!(decoded, request, "at {n:?}");
            assert_eq!(encode_request(&decoded, &n), bytes);
        }
    }
}

#[test]
fn every_reply_round_trips_at_every_version() {
    for n in negotiations() {
        for reply in replies(&n) {
            let bytes = encode_reply(&reply, &n);
            let mut r = Reader::new(&bytes);
            let decoded = Reply::decode(reply.op(), &mut r, &n)
                .unwrap_or_else(|e| panic!("{reply:?} at {n:?}: {e}"));
            assert!(r.is_empty(), "{reply:?} at {n:?}: bytes left");
            assert_eq!(decoded, reply, "at {n:?}");
            assert_eq!(encode_reply(&decoded, &n), bytes);
        }
    }
}

#[test]
fn truncated_requests_are_incomplete_at_every_byte() {
    for n in negotiations() {
        for request in requests(&n) {
            let bytes = encode_request(&request, &n);
            for cut in 0..bytes.len() {
                let mut r = Reader::new(&bytes[..cut]);
                match Request::decode_with_op(&mut r, &n) {
                    Err(ReadError::Incomplete { needed }) => assert!(needed > 0),
                    other => panic!("{request:?} at {n:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn truncated_replies_are_incomplete_at_every_byte() {
    for n in negotiations() {
        for reply in replies(&n) {
            let bytes = encode_reply(&reply, &n);
            for cut in 0..bytes.len() {
                let mut r = Reader::new(&bytes[..cut]);
                match Reply::decode(reply.op(), &mut r, &n) {
                    Err(ReadError::Incomplete { needed }) => assert!(needed > 0),
                    other => panic!("{reply:?} at {n:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn requests_and_replies_round_trip_through_json() {
    for n in negotiations() {
        for request in requests(&n) {
            let json = serde_json::to_value(&request).unwrap();
            assert_eq!(json["op"].as_str(), Some(request.op().name()));
            assert_eq!(serde_json::from_value::<Request>(json).unwrap(), request);
        }
        for reply in replies(&n) {
            let json = serde_json::to_value(&reply).unwrap();
            assert_eq!(json["op"].as_str(), Some(reply.op().name()));
            assert_eq!(serde_json::from_value::<Reply>(json).unwrap(), reply);
        }
    }
}

#[test]
fn op_numbers_and_names_match_nix() {
    assert_eq!(Op::ALL.len(), 46);
    for op in Op::ALL {
        assert_eq!(Op::from_wire(op.to_wire()), Some(op));
        assert_eq!(Op::from_name(op.name()), Some(op));
        assert_eq!(Op::from_name(&op.name().to_lowercase()), Some(op));
    }
    assert_eq!(Op::QueryPathInfo.to_wire(), 26);
    assert_eq!(Op::AddPermRoot.to_wire(), 47);
    assert_eq!(Op::SubmitOutput.to_wire(), 1000);
    for unused in [0, 2, 15, 17, 48, 49, 50, 99, 1002] {
        assert_eq!(Op::from_wire(unused), None, "op {unused}");
    }
    assert_eq!(Op::from_name("NoSuchOp"), None);
}

#[test]
fn uploads_follow_the_version() {
    let at = |minor| Negotiated::new(ProtocolVersion::new(1, minor));
    assert_eq!(Op::AddToStore.upload(&at(24)), Upload::InlineNar);
    assert_eq!(Op::AddToStore.upload(&at(25)), Upload::Framed);
    assert_eq!(Op::AddToStoreNar.upload(&at(20)), Upload::InlineNar);
    assert_eq!(Op::AddToStoreNar.upload(&at(21)), Upload::StderrReadAnswers);
    assert_eq!(Op::AddToStoreNar.upload(&at(22)), Upload::StderrReadAnswers);
    assert_eq!(Op::AddToStoreNar.upload(&at(23)), Upload::Framed);
    for op in [
        Op::AddMultipleToStore,
        Op::AddBuildLog,
        Op::AddToStoreScanning,
    ] {
        assert_eq!(op.upload(&at(38)), Upload::Framed);
    }
    assert_eq!(Op::ImportPaths.upload(&at(10)), Upload::StderrReadAnswers);
    assert_eq!(Op::NarFromPath.upload(&at(38)), Upload::None);
    assert_eq!(Op::QueryPathInfo.upload(&at(38)), Upload::None);
}

#[test]
fn unknown_op_is_invalid() {
    let mut w = Writer::new();
    w.u64(99);
    let bytes = w.into_bytes();
    assert!(matches!(
        Request::decode_with_op(
            &mut Reader::new(&bytes),
            &Negotiated::new(ProtocolVersion::LATEST)
        ),
        Err(ReadError::Invalid {
            offset: 0,
            kind: InvalidKind::OutOfRange {
                field: "op",
                value: 99
            }
        })
    ));
}

#[test]
fn query_path_info_reply_depends_on_1_17() {
    let info = path_info(&Negotiated::new(ProtocolVersion::new(1, 16)));
    let reply = Reply::QueryPathInfo { info: Some(info) };
    let old = Negotiated::new(ProtocolVersion::new(1, 16));
    let new = Negotiated::new(ProtocolVersion::new(1, 17));
    let old_bytes = encode_reply(&reply, &old);
    let new_bytes = encode_reply(&reply, &new);
    // From 1.17 a `valid` flag comes first.
    assert_eq!(&new_bytes[..8], &1u64.to_le_bytes());
    assert_eq!(&new_bytes[8..], &old_bytes[..]);
    assert_eq!(
        encode_reply(&Reply::QueryPathInfo { info: None }, &new),
        0u64.to_le_bytes()
    );
}

#[test]
fn set_options_verbose_build_is_a_verbosity() {
    let n = Negotiated::new(ProtocolVersion::LATEST);
    let mut s = settings(&n);
    assert!(!s.verbose_build_on());
    s.verbose_build = 0;
    assert!(s.verbose_build_on());
}

proptest! {
    /// Whatever decodes from a mutated encoding re-encodes to exactly the
    /// bytes it consumed, and nothing panics.
    #[test]
    fn mutated_requests_decode_exactly_or_fail(
        n_idx in 0usize..9,
        sample_idx in 0usize..64,
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let all = negotiations();
        let n = &all[n_idx % all.len()];
        let samples = requests(n);
        let mut bytes = encode_request(&samples[sample_idx % samples.len()], n);
        for (at, value) in mutations {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let mut r = Reader::new(&bytes);
        if let Ok(decoded) = Request::decode_with_op(&mut r, n) {
            prop_assert_eq!(encode_request(&decoded, n), &bytes[..r.position()]);
        }
    }

    /// The same for replies.
    #[test]
    fn mutated_replies_decode_exactly_or_fail(
        n_idx in 0usize..9,
        sample_idx in 0usize..64,
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let all = negotiations();
        let n = &all[n_idx % all.len()];
        let samples = replies(n);
        let reply = &samples[sample_idx % samples.len()];
        let mut bytes = encode_reply(reply, n);
        if bytes.is_empty() {
            return Ok(());
        }
        for (at, value) in mutations {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let mut r = Reader::new(&bytes);
        if let Ok(decoded) = Reply::decode(reply.op(), &mut r, n) {
            prop_assert_eq!(encode_reply(&decoded, n), &bytes[..r.position()]);
        }
    }
}
