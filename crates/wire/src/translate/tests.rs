//! Tests of the translation between versions: for every op, a reply
//! decoded at one version, translated and re-encoded at another, decodes
//! there with every field both versions carry unchanged (a property test
//! over random values and every pair of minors); requests are mapped as
//! Nix maps them; errors and activities take the older forms.

use proptest::prelude::*;

use super::*;
use crate::bytes::ByteString;
use crate::handshake::{DaemonNixVersion, Trust};
use crate::ops::{AddToStoreArgs, Op, Request};
use crate::primitives::{Reader, Writer};
use crate::stderr::{ActivityType, StderrMessage};
use crate::types::{
    BinaryBuiltOutput, BuildMode, BuildResult, BuildStatus, BuiltOutputs, ClientSettings,
    ContentAddress, ContentAddressMethodWithAlgo, DerivedPath, JsonBuiltOutput, KeyedBuildResult,
    OutputsSpec, RealisationJson, RealisationQueryResult, StorePath, SubstitutablePathInfo,
    UnkeyedRealisation, UnkeyedValidPathInfo, ValidPathInfo,
};
use crate::version::ProtocolVersion;

/// Every minor from 1.10 to 1.38, and 1.38 with the 2.35 features.
fn negotiations() -> Vec<Negotiated> {
    let mut all: Vec<Negotiated> = (10..=38)
        .map(|minor| Negotiated::new(ProtocolVersion::new(1, minor)))
        .collect();
    let mut features = vec![
        feature::REALISATION_WITH_PATH_NOT_HASH.to_owned(),
        feature::DELETE_DEAD_SPECIFIC_REFERRERS.to_owned(),
    ];
    features.sort();
    all.push(Negotiated {
        version: ProtocolVersion::LATEST,
        features,
    });
    all
}

/// What both sides carry: the lower version, the features both have.
fn common(a: &Negotiated, b: &Negotiated) -> Negotiated {
    let version = if a.version <= b.version {
        a.version
    } else {
        b.version
    };
    Negotiated {
        version,
        features: a
            .features
            .iter()
            .filter(|f| b.features.contains(f))
            .cloned()
            .collect(),
    }
}

fn store_path() -> impl Strategy<Value = StorePath> {
    "[0-9a-df-np-sv-z]{32}-[a-z]{1,6}(\\.drv)?"
        .prop_map(|base| StorePath(format!("/nix/store/{base}")))
}

fn paths() -> impl Strategy<Value = Vec<StorePath>> {
    proptest::collection::vec(store_path(), 0..3)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z:-]{0,12}"
}

fn path_info(n: &Negotiated) -> BoxedStrategy<UnkeyedValidPathInfo> {
    let with_1_16 = n.at_least(16);
    (
        proptest::option::of(store_path()),
        "[0-9a-f]{64}",
        paths(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        proptest::collection::vec(text(), 0..2),
        proptest::option::of(text().prop_map(|t| ContentAddress(format!("fixed:r:sha256:{t}")))),
    )
        .prop_map(
            move |(
                deriver,
                nar_hash,
                references,
                registration_time,
                nar_size,
                ultimate,
                sigs,
                ca,
            )| {
                let mut info = UnkeyedValidPathInfo {
                    deriver,
                    nar_hash,
                    references,
                    registration_time,
                    nar_size,
                    ultimate,
                    sigs,
                    ca,
                };
                if !with_1_16 {
                    info.ultimate = false;
                    info.sigs.clear();
                    info.ca = None;
                }
                info
            },
        )
        .boxed()
}

fn realisation_json() -> impl Strategy<Value = RealisationJson> {
    ("[0-9a-f]{8}", "[a-z]{1,4}", store_path()).prop_map(|(hash, name, path)| {
        let base = path.0.trim_start_matches("/nix/store/").to_owned();
        let json = serde_json::json!({
            "dependentRealisations": {},
            "id": format!("sha256:{hash}!{name}"),
            "outPath": base,
            "signatures": [],
        });
        RealisationJson(json.to_string())
    })
}

fn built_outputs(n: &Negotiated) -> BoxedStrategy<BuiltOutputs> {
    if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
        proptest::collection::vec(
            (
                "[a-z]{1,4}",
                store_path(),
                proptest::collection::vec(text(), 0..2),
            ),
            0..2,
        )
        .prop_map(|entries| {
            BuiltOutputs::Binary(
                entries
                    .into_iter()
                    .map(|(output_name, out_path, signatures)| BinaryBuiltOutput {
                        output_name,
                        realisation: UnkeyedRealisation {
                            out_path,
                            signatures,
                        },
                    })
                    .collect(),
            )
        })
        .boxed()
    } else if n.at_least(28) {
        proptest::collection::vec(("[0-9a-f]{8}", realisation_json()), 0..2)
            .prop_map(|entries| {
                BuiltOutputs::Json(
                    entries
                        .into_iter()
                        .map(|(hash, realisation)| JsonBuiltOutput {
                            id: format!("sha256:{hash}!out"),
                            realisation,
                        })
                        .collect(),
                )
            })
            .boxed()
    } else {
        Just(BuiltOutputs::default()).boxed()
    }
}

fn build_result(n: &Negotiated) -> BoxedStrategy<BuildResult> {
    let (with_29, with_37) = (n.at_least(29), n.at_least(37));
    (
        0u64..15,
        text(),
        (any::<u64>(), any::<bool>(), any::<u64>(), any::<u64>()),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
        ),
        built_outputs(n),
    )
        .prop_map(
            move |(status, msg, (times, nondet, start, stop), (user, system), outputs)| {
                let mut result = BuildResult::new(BuildStatus::from_wire(status), msg);
                if with_29 {
                    result.times_built = times;
                    result.is_non_deterministic = nondet;
                    result.start_time = start;
                    result.stop_time = stop;
                }
                if with_37 {
                    result.cpu_user = user;
                    result.cpu_system = system;
                }
                result.built_outputs = outputs;
                result
            },
        )
        .boxed()
}

fn derived_path() -> impl Strategy<Value = DerivedPath> {
    prop_oneof![
        "[0-9a-df-np-sv-z]{32}-[a-z]{1,6}".prop_map(|b| DerivedPath::Opaque {
            path: StorePath(format!("/nix/store/{b}"))
        }),
        ("[0-9a-df-np-sv-z]{32}-[a-z]{1,6}", any::<bool>()).prop_map(|(b, all)| {
            DerivedPath::Built {
                drv_path: StorePath(format!("/nix/store/{b}.drv")),
                outputs: if all {
                    OutputsSpec::All
                } else {
                    OutputsSpec::Names(vec!["out".to_owned()])
                },
            }
        }),
    ]
}

fn substitutable() -> impl Strategy<Value = SubstitutablePathInfo> {
    (
        proptest::option::of(store_path()),
        paths(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(deriver, references, download_size, nar_size)| SubstitutablePathInfo {
                deriver,
                references,
                download_size,
                nar_size,
            },
        )
}

/// A random reply of `op`, in the form `n` carries.
fn reply_at(op: Op, n: &Negotiated) -> BoxedStrategy<Reply> {
    let n = n.clone();
    let one = || (0u64..3).boxed();
    match op {
        Op::IsValidPath => any::<bool>()
            .prop_map(|valid| Reply::IsValidPath { valid })
            .boxed(),
        Op::HasSubstitutes => any::<bool>()
            .prop_map(|has_substitutes| Reply::HasSubstitutes { has_substitutes })
            .boxed(),
        Op::QueryPathHash => "[0-9a-f]{64}"
            .prop_map(|hash| Reply::QueryPathHash { hash })
            .boxed(),
        Op::QueryReferences => paths()
            .prop_map(|paths| Reply::QueryReferences { paths })
            .boxed(),
        Op::QueryReferrers => paths()
            .prop_map(|paths| Reply::QueryReferrers { paths })
            .boxed(),
        Op::AddToStore => {
            let with_info = n.at_least(25);
            (store_path(), path_info(&n))
                .prop_map(move |(path, info)| Reply::AddToStore {
                    path,
                    info: with_info.then_some(info),
                })
                .boxed()
        }
        Op::AddTextToStore => store_path()
            .prop_map(|path| Reply::AddTextToStore { path })
            .boxed(),
        Op::BuildPaths => one()
            .prop_map(|result| Reply::BuildPaths { result })
            .boxed(),
        Op::EnsurePath => one()
            .prop_map(|result| Reply::EnsurePath { result })
            .boxed(),
        Op::AddTempRoot => one()
            .prop_map(|result| Reply::AddTempRoot { result })
            .boxed(),
        Op::AddIndirectRoot => one()
            .prop_map(|result| Reply::AddIndirectRoot { result })
            .boxed(),
        Op::SyncWithGC => one()
            .prop_map(|result| Reply::SyncWithGC { result })
            .boxed(),
        Op::FindRoots => proptest::collection::vec((text(), store_path()), 0..3)
            .prop_map(|roots| Reply::FindRoots {
                roots: roots
                    .into_iter()
                    .map(|(l, p)| (ByteString::from(l), p))
                    .collect(),
            })
            .boxed(),
        Op::ExportPath => one()
            .prop_map(|result| Reply::ExportPath { result })
            .boxed(),
        Op::QueryDeriver => proptest::option::of(store_path())
            .prop_map(|deriver| Reply::QueryDeriver { deriver })
            .boxed(),
        Op::SetOptions => Just(Reply::SetOptions {}).boxed(),
        Op::CollectGarbage => (
            proptest::collection::vec(text(), 0..3),
            any::<u64>(),
            0u64..2,
        )
            .prop_map(|(paths, bytes_freed, obsolete)| Reply::CollectGarbage {
                paths,
                bytes_freed,
                obsolete,
            })
            .boxed(),
        Op::QuerySubstitutablePathInfo => proptest::option::of(substitutable())
            .prop_map(|info| Reply::QuerySubstitutablePathInfo { info })
            .boxed(),
        Op::QueryDerivationOutputs => paths()
            .prop_map(|paths| Reply::QueryDerivationOutputs { paths })
            .boxed(),
        Op::QueryAllValidPaths => paths()
            .prop_map(|paths| Reply::QueryAllValidPaths { paths })
            .boxed(),
        Op::QueryFailedPaths => paths()
            .prop_map(|paths| Reply::QueryFailedPaths { paths })
            .boxed(),
        Op::ClearFailedPaths => one()
            .prop_map(|result| Reply::ClearFailedPaths { result })
            .boxed(),
        Op::QueryPathInfo => {
            // Below 1.17 an invalid path is an error, not a reply.
            let with_flag = n.at_least(17);
            (path_info(&n), any::<bool>())
                .prop_map(move |(info, valid)| Reply::QueryPathInfo {
                    info: (valid || !with_flag).then_some(info),
                })
                .boxed()
        }
        Op::ImportPaths => paths()
            .prop_map(|paths| Reply::ImportPaths { paths })
            .boxed(),
        Op::QueryDerivationOutputNames => proptest::collection::vec(text(), 0..3)
            .prop_map(|names| Reply::QueryDerivationOutputNames { names })
            .boxed(),
        Op::QueryPathFromHashPart => proptest::option::of(store_path())
            .prop_map(|path| Reply::QueryPathFromHashPart { path })
            .boxed(),
        Op::QuerySubstitutablePathInfos => {
            proptest::collection::vec((store_path(), substitutable()), 0..3)
                .prop_map(|infos| Reply::QuerySubstitutablePathInfos { infos })
                .boxed()
        }
        Op::QueryValidPaths => paths()
            .prop_map(|paths| Reply::QueryValidPaths { paths })
            .boxed(),
        Op::QuerySubstitutablePaths => paths()
            .prop_map(|paths| Reply::QuerySubstitutablePaths { paths })
            .boxed(),
        Op::QueryValidDerivers => paths()
            .prop_map(|paths| Reply::QueryValidDerivers { paths })
            .boxed(),
        Op::OptimiseStore => one()
            .prop_map(|result| Reply::OptimiseStore { result })
            .boxed(),
        Op::VerifyStore => any::<bool>()
            .prop_map(|errors_found| Reply::VerifyStore { errors_found })
            .boxed(),
        Op::BuildDerivation => build_result(&n)
            .prop_map(|result| Reply::BuildDerivation { result })
            .boxed(),
        Op::AddSignatures => one()
            .prop_map(|result| Reply::AddSignatures { result })
            .boxed(),
        Op::NarFromPath => Just(Reply::NarFromPath {}).boxed(),
        Op::AddToStoreNar => Just(Reply::AddToStoreNar {}).boxed(),
        Op::QueryMissing => (paths(), paths(), paths(), any::<u64>(), any::<u64>())
            .prop_map(
                |(will_build, will_substitute, unknown, download_size, nar_size)| {
                    Reply::QueryMissing {
                        will_build,
                        will_substitute,
                        unknown,
                        download_size,
                        nar_size,
                    }
                },
            )
            .boxed(),
        Op::QueryDerivationOutputMap => {
            proptest::collection::vec(("[a-z]{1,4}", proptest::option::of(store_path())), 0..3)
                .prop_map(|outputs| Reply::QueryDerivationOutputMap { outputs })
                .boxed()
        }
        Op::RegisterDrvOutput => Just(Reply::RegisterDrvOutput {}).boxed(),
        Op::QueryRealisation => {
            let result: BoxedStrategy<RealisationQueryResult> =
                if n.has(feature::REALISATION_WITH_PATH_NOT_HASH) {
                    proptest::option::of(
                        (store_path(), proptest::collection::vec(text(), 0..2)).prop_map(
                            |(out_path, signatures)| UnkeyedRealisation {
                                out_path,
                                signatures,
                            },
                        ),
                    )
                    .prop_map(RealisationQueryResult::Binary)
                    .boxed()
                } else if n.at_least(31) {
                    proptest::collection::vec(realisation_json(), 0..2)
                        .prop_map(RealisationQueryResult::Json)
                        .boxed()
                } else {
                    proptest::collection::vec(store_path(), 0..2)
                        .prop_map(RealisationQueryResult::OutPaths)
                        .boxed()
                };
            result
                .prop_map(|result| Reply::QueryRealisation { result })
                .boxed()
        }
        Op::AddMultipleToStore => Just(Reply::AddMultipleToStore {}).boxed(),
        Op::AddBuildLog => one()
            .prop_map(|result| Reply::AddBuildLog { result })
            .boxed(),
        Op::BuildPathsWithResults => {
            proptest::collection::vec((derived_path(), build_result(&n)), 0..3)
                .prop_map(|results| Reply::BuildPathsWithResults {
                    results: results
                        .into_iter()
                        .map(|(path, result)| KeyedBuildResult { path, result })
                        .collect(),
                })
                .boxed()
        }
        Op::AddPermRoot => text()
            .prop_map(|root| Reply::AddPermRoot {
                gc_root: ByteString::from(root),
            })
            .boxed(),
        Op::SubmitOutput => one()
            .prop_map(|result| Reply::SubmitOutput { result })
            .boxed(),
        Op::AddToStoreScanning => (store_path(), path_info(&n))
            .prop_map(|(path, info)| Reply::AddToStoreScanning {
                info: ValidPathInfo { path, info },
            })
            .boxed(),
    }
}

fn encode(reply: &Reply, n: &Negotiated) -> Vec<u8> {
    let mut w = Writer::new();
    reply.encode(&mut w, n);
    w.into_bytes()
}

fn decode(op: Op, bytes: &[u8], n: &Negotiated) -> Reply {
    let mut r = Reader::new(bytes);
    let reply = Reply::decode(op, &mut r, n)
        .unwrap_or_else(|e| panic!("{op} does not decode at {}: {e:?}", n.version));
    assert_eq!(r.position(), bytes.len(), "{op} at {}", n.version);
    reply
}

/// The fields of `reply` that `n` carries: the reply written and read at
/// `n`. Realisations are compared by their output paths, the part every
/// form carries.
fn carried(reply: &Reply, n: &Negotiated) -> serde_json::Value {
    if let Reply::QueryRealisation { result } = reply {
        let outs: Vec<String> = match result {
            RealisationQueryResult::OutPaths(paths) => paths.iter().map(|p| p.0.clone()).collect(),
            RealisationQueryResult::Json(jsons) => jsons
                .iter()
                .map(|j| {
                    format!(
                        "/nix/store/{}",
                        j.parse().map(|p| p.out_path).unwrap_or_default()
                    )
                })
                .collect(),
            RealisationQueryResult::Binary(found) => {
                found.iter().map(|r| r.out_path.0.clone()).collect()
            }
        };
        return serde_json::json!(outs);
    }
    let mut value = serde_json::to_value(decode(reply.op(), &encode(reply, n), n))
        .unwrap_or(serde_json::Value::Null);
    // An empty builtOutputs map reads the same in either form.
    fn empty_outputs(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    if key == "builtOutputs"
                        && item
                            .as_object()
                            .and_then(|o| o.values().next())
                            .and_then(|v| v.as_array())
                            .is_some_and(|a| a.is_empty())
                    {
                        *item = serde_json::Value::Null;
                    } else {
                        empty_outputs(item);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(empty_outputs),
            _ => {}
        }
    }
    empty_outputs(&mut value);
    value
}

/// Whether `translate::reply` may refuse: the cases the module documents.
fn may_refuse(reply: &Reply, from: &Negotiated, to: &Negotiated) -> bool {
    let feature_differs = realisation_feature(from) != realisation_feature(to);
    match reply {
        Reply::BuildPathsWithResults { results } => {
            !to.at_least(34)
                || (feature_differs && results.iter().any(|r| !r.result.built_outputs.is_empty()))
        }
        Reply::BuildDerivation { result } => feature_differs && !result.built_outputs.is_empty(),
        Reply::AddToStore { info: None, .. } => to.at_least(25),
        Reply::QueryRealisation { result } => {
            !result.is_empty()
                && (feature_differs
                    || (matches!(result, RealisationQueryResult::OutPaths(_)) && to.at_least(31)))
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// decode(reply at A) → translate → encode at B → decode at B keeps every
    /// field both A and B carry, for every op and every pair of minors.
    #[test]
    fn replies_keep_the_fields_both_versions_carry(
        (op, a, b, reply) in (0usize..Op::ALL.len(), 0usize..30, 0usize..30).prop_flat_map(|(o, a, b)| {
            let all = negotiations();
            let (a, b) = (all[a].clone(), all[b].clone());
            let op = Op::ALL[o];
            (Just(op), Just(a.clone()), Just(b), reply_at(op, &a))
        }),
        path in store_path(),
    ) {
        let at_a = decode(op, &encode(&reply, &a), &a);
        let request = Request::QueryPathInfo { path: path.clone() };
        match super::reply(Some(&request), &at_a, &a, &b) {
            Ok(Translated { value: ReplyOutcome::Reply(translated), notes }) => {
                let at_b = decode(op, &encode(&translated, &b), &b);
                let both = common(&a, &b);
                prop_assert_eq!(carried(&at_b, &both), carried(&at_a, &both),
                    "{} from {} to {}; notes {:?}", op, a.version, b.version, notes);
                // Whatever the target does not carry is noted when it held a value.
                if a.version == b.version && a.features == b.features {
                    prop_assert!(notes.is_empty(), "{:?}", notes);
                }
            }
            Ok(Translated { value: ReplyOutcome::Error(info), .. }) => {
                prop_assert_eq!(op, Op::QueryPathInfo);
                prop_assert!(!b.at_least(17));
                let expected = format!("path '{path}' is not valid");
                prop_assert_eq!(info.message().to_string(), expected);
            }
            Err(refused) => {
                prop_assert!(may_refuse(&at_a, &a, &b), "{} from {} to {}: {}", op, a.version, b.version, refused);
            }
        }
    }
}

fn v(minor: u8) -> Negotiated {
    Negotiated::new(ProtocolVersion::new(1, minor))
}

fn sp(name: &str) -> StorePath {
    StorePath(format!(
        "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-{name}"
    ))
}

#[test]
fn build_paths_with_results_becomes_build_paths_below_1_34() {
    let request = Request::BuildPathsWithResults {
        paths: vec![DerivedPath::Built {
            drv_path: sp("x.drv"),
            outputs: OutputsSpec::Names(vec!["out".into()]),
        }],
        mode: BuildMode::Normal,
    };
    let translated = super::request(&request, &v(38), &v(33)).unwrap();
    assert!(matches!(translated.value, Request::BuildPaths { .. }));
    assert_eq!(translated.notes[0].action, Action::Mapped);
    // At 1.34 and later the op stays.
    let same = super::request(&request, &v(38), &v(34)).unwrap();
    assert_eq!(same.value, request);
    assert!(same.notes.is_empty());
    // A derivation file itself cannot be asked for below 1.30.
    let drv = Request::BuildPaths {
        paths: vec![DerivedPath::Opaque { path: sp("x.drv") }],
        mode: BuildMode::Normal,
    };
    let err = super::request(&drv, &v(38), &v(29)).unwrap_err();
    assert!(err.reason.contains("1.30"), "{err}");
    // Nor a build mode other than Normal below 1.15.
    let repair = Request::BuildPaths {
        paths: Vec::new(),
        mode: BuildMode::Repair,
    };
    assert!(super::request(&repair, &v(38), &v(14)).is_err());
}

#[test]
fn add_to_store_arguments_convert_both_ways() {
    let legacy = Request::AddToStore {
        name: "hello.txt".into(),
        args: AddToStoreArgs::Legacy {
            fixed: true,
            recursive: false,
            hash_algo: "sha256".into(),
        },
    };
    let ca = super::request(&legacy, &v(24), &v(25)).unwrap();
    assert_eq!(
        ca.value,
        Request::AddToStore {
            name: "hello.txt".into(),
            args: AddToStoreArgs::Ca {
                method: ContentAddressMethodWithAlgo("fixed:sha256".into()),
                references: Vec::new(),
                repair: false,
            },
        }
    );
    let back = super::request(&ca.value, &v(25), &v(24)).unwrap();
    assert_eq!(back.value, legacy);
    // `fixed = 0` is the old default: sha256, recursive.
    let old_default = Request::AddToStore {
        name: "dir".into(),
        args: AddToStoreArgs::Legacy {
            fixed: false,
            recursive: false,
            hash_algo: "md5".into(),
        },
    };
    let Request::AddToStore { args, .. } =
        super::request(&old_default, &v(24), &v(38)).unwrap().value
    else {
        panic!("not AddToStore");
    };
    assert_eq!(
        args,
        AddToStoreArgs::Ca {
            method: ContentAddressMethodWithAlgo("fixed:r:sha256".into()),
            references: Vec::new(),
            repair: false,
        }
    );
    // Text and references have no legacy AddToStore form.
    let text = Request::AddToStore {
        name: "x.drv".into(),
        args: AddToStoreArgs::Ca {
            method: ContentAddressMethodWithAlgo("text:sha256".into()),
            references: vec![sp("dep")],
            repair: false,
        },
    };
    assert!(super::request(&text, &v(38), &v(24)).is_err());
}

#[test]
fn version_dependent_request_fields_are_dropped_or_filled() {
    let query = Request::QueryValidPaths {
        paths: vec![sp("a")],
        substitute: true,
    };
    let old = super::request(&query, &v(38), &v(26)).unwrap();
    assert_eq!(
        old.value,
        Request::QueryValidPaths {
            paths: vec![sp("a")],
            substitute: false,
        }
    );
    assert_eq!(old.notes[0].field, "substitute");
    assert_eq!(old.notes[0].action, Action::Dropped);
    let filled = super::request(&old.value, &v(26), &v(38)).unwrap();
    assert_eq!(filled.notes[0].action, Action::Filled);
    let settings = ClientSettings {
        keep_failed: false,
        keep_going: false,
        try_fallback: false,
        verbosity: 3,
        max_build_jobs: 1,
        max_silent_time: 0,
        use_build_hook: 1,
        verbose_build: 7,
        log_type: 0,
        print_build_trace: 0,
        build_cores: 2,
        use_substitutes: true,
        overrides: vec![("sandbox".into(), ByteString::from("false"))],
    };
    let set = Request::SetOptions { settings };
    let Request::SetOptions { settings } = super::request(&set, &v(38), &v(11)).unwrap().value
    else {
        panic!("not SetOptions");
    };
    assert!(settings.overrides.is_empty());
}

#[test]
fn build_results_lose_and_gain_the_fields_of_1_29_and_1_37() {
    let mut result = BuildResult::new(BuildStatus::Built, "");
    result.times_built = 1;
    result.start_time = 10;
    result.stop_time = 12;
    result.cpu_user = Some(5);
    result.cpu_system = Some(6);
    let reply = Reply::BuildDerivation {
        result: result.clone(),
    };
    let at_34 = super::reply(None, &reply, &v(38), &v(34)).unwrap();
    let ReplyOutcome::Reply(Reply::BuildDerivation { result: got }) = &at_34.value else {
        panic!("{:?}", at_34.value);
    };
    assert_eq!(got.cpu_user, None);
    assert_eq!(got.times_built, 1);
    let fields: Vec<&str> = at_34.notes.iter().map(|n| n.field.as_str()).collect();
    assert_eq!(fields, ["cpuUser, cpuSystem"]);
    let at_28 = super::reply(None, &reply, &v(38), &v(28)).unwrap();
    let ReplyOutcome::Reply(Reply::BuildDerivation { result: got }) = &at_28.value else {
        panic!("{:?}", at_28.value);
    };
    assert_eq!((got.times_built, got.start_time), (0, 0));
    // From 1.28 to 1.38: the newer fields are filled with what an older
    // daemon leaves them at.
    let up = super::reply(None, &at_28_reply(got), &v(28), &v(38)).unwrap();
    assert!(
        up.notes.iter().all(|n| n.action == Action::Filled),
        "{:?}",
        up.notes
    );
    assert_eq!(up.notes.len(), 2);
}

fn at_28_reply(result: &BuildResult) -> Reply {
    Reply::BuildDerivation {
        result: result.clone(),
    }
}

#[test]
fn an_invalid_path_is_an_error_below_1_17() {
    let request = Request::QueryPathInfo { path: sp("gone") };
    let reply = Reply::QueryPathInfo { info: None };
    let out = super::reply(Some(&request), &reply, &v(38), &v(16)).unwrap();
    let ReplyOutcome::Error(ErrorInfo::Legacy {
        message,
        exit_status,
    }) = out.value
    else {
        panic!("{:?}", out.value);
    };
    assert_eq!(
        message.to_string(),
        format!("path '{}' is not valid", sp("gone"))
    );
    assert_eq!(exit_status, 1);
}

#[test]
fn errors_and_activities_take_the_older_forms() {
    let structured = StderrMessage::Error(ErrorInfo::Structured {
        level: 0,
        name: ByteString::from("Error"),
        message: ByteString::from("builder failed"),
        traces: vec![ByteString::from("while building")],
    });
    let legacy = stderr(&structured, &v(38), &v(25), 3);
    assert_eq!(
        legacy.value,
        Some(StderrMessage::Error(ErrorInfo::Legacy {
            message: ByteString::from("builder failed\nwhile building"),
            exit_status: 1,
        }))
    );
    let back = stderr(legacy.value.as_ref().unwrap(), &v(25), &v(38), 3);
    assert!(matches!(
        back.value,
        Some(StderrMessage::Error(ErrorInfo::Structured { .. }))
    ));
    let start = StderrMessage::StartActivity {
        id: 7,
        level: 3,
        activity_type: ActivityType(105),
        text: ByteString::from("building 'x.drv'"),
        fields: Vec::new(),
        parent: 0,
    };
    assert_eq!(
        stderr(&start, &v(38), &v(19), 3).value,
        Some(StderrMessage::Next {
            text: ByteString::from("building 'x.drv'...\n")
        })
    );
    assert_eq!(stderr(&start, &v(38), &v(19), 0).value, None);
    assert_eq!(
        stderr(&StderrMessage::StopActivity { id: 7 }, &v(38), &v(19), 3).value,
        None
    );
    assert_eq!(stderr(&start, &v(38), &v(20), 3).value, Some(start.clone()));
}

#[test]
fn the_daemon_post_handshake_fields_follow_the_version() {
    let version = ByteString::from("2.34.8");
    let at_34 = daemon_post(Some(&version), Some(Trust::Trusted), &v(34));
    let mut w = Writer::new();
    DaemonNixVersion(version.clone()).encode(&mut w);
    assert_eq!(at_34.value, w.into_bytes());
    assert_eq!(at_34.notes[0].field, "trust");
    let at_38 = daemon_post(Some(&version), None, &v(38));
    assert_eq!(at_38.notes[0].action, Action::Filled);
    assert!(daemon_post(None, None, &v(32)).value.is_empty());
}
