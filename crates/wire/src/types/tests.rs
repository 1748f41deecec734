//! Unit tests of the composite types: parsed views, edge cases of the
//! version-dependent syntaxes, and values that must be refused.

use super::*;
use crate::primitives::ReadError;
use crate::version::{feature, Negotiated, ProtocolVersion};

fn at(minor: u8) -> Negotiated {
    Negotiated::new(ProtocolVersion::new(1, minor))
}

fn bytes_of(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.into_bytes()
}

#[test]
fn store_path_parts() {
    let path = StorePath::from("/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo-bar.drv");
    assert_eq!(path.store_dir(), "/nix/store");
    assert_eq!(
        path.base_name(),
        "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo-bar.drv"
    );
    assert_eq!(path.hash_part(), "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q");
    assert_eq!(path.name(), "foo-bar.drv");
    assert!(path.is_derivation());
    let odd = StorePath::from("nodash");
    assert_eq!(
        (odd.store_dir(), odd.hash_part(), odd.name()),
        ("", "nodash", "")
    );
    assert_eq!(serde_json::to_string(&path).unwrap(), format!("\"{path}\""));
}

#[test]
fn optional_store_path_uses_the_empty_string() {
    let bytes = bytes_of(|w| StorePath::encode_optional(None, w));
    assert_eq!(bytes, 0u64.to_le_bytes());
    assert_eq!(
        StorePath::decode_optional(&mut Reader::new(&bytes)),
        Ok(None)
    );
}

#[test]
fn store_paths_must_be_utf8() {
    let bytes = bytes_of(|w| {
        w.string([0xff]);
    });
    assert!(matches!(
        StorePath::decode(&mut Reader::new(&bytes)),
        Err(ReadError::Invalid {
            kind: InvalidKind::NotUtf8 { .. },
            ..
        })
    ));
}

#[test]
fn content_address_parsed_view() {
    let ca = ContentAddress(
        "fixed:r:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh".into(),
    );
    let parsed = ca.parse().unwrap();
    assert_eq!(parsed.method, ContentAddressMethod::Nar);
    assert_eq!(parsed.algo, "sha256");
    assert_eq!(
        parsed.digest().unwrap(),
        base16_decode("10c209fa0890fe02c85a8c663ca8e7a37cc766bc5b1b29a0cc61b266f64121d3").unwrap()
    );
    let git = ContentAddress("fixed:git:sha1:1amk6n7wxjlw4qkq6dcj6mm7hw3acrw0".into());
    assert_eq!(git.parse().unwrap().method, ContentAddressMethod::Git);
    assert_eq!(ContentAddress("nonsense".into()).parse(), None);
    assert_eq!(ContentAddress("text:sha256".into()).parse(), None);

    let method = ContentAddressMethodWithAlgo("fixed:r:sha256".into());
    assert_eq!(
        method.parse(),
        Some((ContentAddressMethod::Nar, "sha256".into()))
    );
    let flat = ContentAddressMethodWithAlgo("fixed:sha1".into());
    assert_eq!(
        flat.parse(),
        Some((ContentAddressMethod::Flat, "sha1".into()))
    );
    assert_eq!(ContentAddressMethodWithAlgo("fixed:".into()).parse(), None);
}

#[test]
fn nix32_decodes_known_hashes_and_rejects_bad_ones() {
    let h1 =
        base16_decode("15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527").unwrap();
    assert_eq!(
        nix32_decode("09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm", 32),
        Some(h1)
    );
    // Wrong length, a letter outside the alphabet, and bits beyond the
    // digest are all refused.
    assert_eq!(nix32_decode("09ym", 32), None);
    assert_eq!(
        nix32_decode("e9ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm", 32),
        None
    );
    assert_eq!(
        nix32_decode("z9ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm", 32),
        None
    );
    assert_eq!(base16_decode("abc"), None);
    assert_eq!(base16_decode("zz"), None);
}

#[test]
fn derived_path_syntax_depends_on_1_30() {
    let drv = "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv";
    let all = DerivedPath::Built {
        drv_path: StorePath::from(drv),
        outputs: OutputsSpec::All,
    };
    assert_eq!(DerivedPath::parse(drv, &at(29)), all);
    assert_eq!(
        DerivedPath::parse(drv, &at(30)),
        DerivedPath::Opaque {
            path: StorePath::from(drv)
        }
    );
    assert_eq!(DerivedPath::parse(&format!("{drv}!*"), &at(30)), all);
    assert_eq!(all.to_wire_string(&at(29)), drv);
    assert_eq!(all.to_wire_string(&at(30)), format!("{drv}!*"));
    assert_eq!(all.to_string(), format!("{drv}!*"));
    // Below 1.30 `*` is an output name, so the text survives unchanged.
    let star = DerivedPath::parse(&format!("{drv}!*"), &at(29));
    assert_eq!(star.to_wire_string(&at(29)), format!("{drv}!*"));
    // At 1.30 the outputs follow the last `!` (dynamic derivations).
    let nested = DerivedPath::parse(&format!("{drv}!out!bin"), &at(30));
    assert_eq!(
        nested,
        DerivedPath::Built {
            drv_path: StorePath(format!("{drv}!out")),
            outputs: OutputsSpec::Names(vec!["bin".into()]),
        }
    );
    // Odd output lists still re-encode exactly.
    for text in [
        format!("{drv}!"),
        format!("{drv}!a,,b"),
        format!("{drv}!*,a"),
    ] {
        for minor in [29, 30] {
            assert_eq!(
                DerivedPath::parse(&text, &at(minor)).to_wire_string(&at(minor)),
                text
            );
        }
    }
}

#[test]
fn single_derived_path_nests_and_has_a_depth_limit() {
    let path = SingleDerivedPath::Built {
        drv_path: Box::new(SingleDerivedPath::Built {
            drv_path: Box::new(SingleDerivedPath::Opaque {
                path: StorePath::from("/nix/store/x-a.drv"),
            }),
            output: "out".into(),
        }),
        output: "bin".into(),
    };
    let bytes = bytes_of(|w| path.encode(w));
    assert_eq!(
        SingleDerivedPath::decode(&mut Reader::new(&bytes)).unwrap(),
        path
    );
    assert_eq!(path.to_string(), "/nix/store/x-a.drv^out^bin");

    let deep = bytes_of(|w| {
        for _ in 0..=MAX_DERIVED_PATH_DEPTH + 1 {
            w.u64(1);
        }
    });
    assert!(matches!(
        SingleDerivedPath::decode(&mut Reader::new(&deep)),
        Err(ReadError::Invalid { .. })
    ));
    let bad_tag = bytes_of(|w| {
        w.u64(2);
    });
    assert!(matches!(
        SingleDerivedPath::decode(&mut Reader::new(&bad_tag)),
        Err(ReadError::Invalid {
            offset: 0,
            kind: InvalidKind::OutOfRange { value: 2, .. }
        })
    ));
}

#[test]
fn closed_enumerations_refuse_unknown_values() {
    let three = 3u64.to_le_bytes();
    assert!(matches!(
        BuildMode::decode(&mut Reader::new(&three)),
        Err(ReadError::Invalid { .. })
    ));
    assert!(matches!(
        TrustedFlag::decode_optional(&mut Reader::new(&three)),
        Err(ReadError::Invalid { .. })
    ));
    let four = 4u64.to_le_bytes();
    assert!(matches!(
        GcAction::decode(&mut Reader::new(&four)),
        Err(ReadError::Invalid { .. })
    ));
}

#[test]
fn build_status_keeps_unknown_numbers() {
    for value in 0..20u64 {
        let status = BuildStatus::from_wire(value);
        assert_eq!(status.to_wire(), value);
        assert_eq!(matches!(status, BuildStatus::Other(_)), value >= 15);
    }
    assert_eq!(
        BuildStatus::from_wire(13),
        BuildStatus::ResolvesToAlreadyValid
    );
    assert!(BuildStatus::ResolvesToAlreadyValid.is_success());
    assert!(!BuildStatus::Other(15).is_success());
    assert_eq!(BuildStatus::Other(42).to_string(), "status 42");
    assert_eq!(BuildStatus::TimedOut.to_string(), "TimedOut");
}

#[test]
fn build_result_fields_follow_the_version() {
    let mut result = BuildResult::new(BuildStatus::Built, "");
    result.times_built = 1;
    result.cpu_user = Some(7);
    let n37 = at(37);
    result.built_outputs = BuiltOutputs::empty_for(&n37);
    let len = |minor: u8| {
        let n = at(minor);
        bytes_of(|w| result.encode(w, &n)).len()
    };
    // status + empty message; + empty map; + 4 time words; + cpu tags
    // (the user time carries a value).
    assert_eq!(len(27), 16);
    assert_eq!(len(28), 24);
    assert_eq!(len(29), 56);
    assert_eq!(len(37), 56 + 8 + 16);
    let bad_tag = bytes_of(|w| {
        w.u64(0).string("").u64(0).u64(0).u64(0).u64(0).u64(2);
    });
    assert!(matches!(
        BuildResult::decode(&mut Reader::new(&bad_tag), &n37),
        Err(ReadError::Invalid { .. })
    ));
}

#[test]
fn built_outputs_name_their_outputs_in_both_forms() {
    let json = BuiltOutputs::Json(vec![JsonBuiltOutput {
        id: "sha256:00!out".into(),
        realisation: RealisationJson(r#"{"id":"sha256:00!out","outPath":"x-foo"}"#.into()),
    }]);
    assert_eq!(
        json.outputs(),
        vec![("out".to_owned(), Some("x-foo".to_owned()))]
    );
    let broken = BuiltOutputs::Json(vec![JsonBuiltOutput {
        id: "sha256:00!out".into(),
        realisation: RealisationJson("not json".into()),
    }]);
    assert_eq!(broken.outputs(), vec![("out".to_owned(), None)]);
    let binary = BuiltOutputs::Binary(vec![BinaryBuiltOutput {
        output_name: "out".into(),
        realisation: UnkeyedRealisation {
            out_path: StorePath::from("/nix/store/x-foo"),
            signatures: Vec::new(),
        },
    }]);
    assert_eq!(
        binary.outputs(),
        vec![("out".to_owned(), Some("/nix/store/x-foo".to_owned()))]
    );
}

#[test]
fn realisation_json_is_kept_verbatim_and_parsed_on_the_side() {
    // Keys out of Nix's order and extra spaces survive re-encoding.
    let text = r#"{ "outPath": "x-foo", "id": "sha256:00!out", "signatures": ["k:s"], "dependentRealisations": {"sha256:11!dev": "y-dev"} }"#;
    let json = RealisationJson(text.into());
    let bytes = bytes_of(|w| json.encode(w));
    let back = RealisationJson::decode(&mut Reader::new(&bytes)).unwrap();
    assert_eq!(back.0, text);
    let parsed = back.parse().unwrap();
    assert_eq!(parsed.id, "sha256:00!out");
    assert_eq!(parsed.out_path, "x-foo");
    assert_eq!(parsed.signatures, vec!["k:s".to_owned()]);
    assert_eq!(
        parsed.dependent_realisations,
        vec![("sha256:11!dev".to_owned(), "y-dev".to_owned())]
    );
    assert_eq!(RealisationJson(r#"{"id":"x"}"#.into()).parse(), None);
}

#[test]
fn realisation_form_follows_version_and_feature() {
    let legacy = bytes_of(|w| {
        w.string("sha256:00!out").string("x-foo");
    });
    assert_eq!(
        Realisation::decode(&mut Reader::new(&legacy), &at(30)).unwrap(),
        Realisation::Legacy {
            id: "sha256:00!out".into(),
            out_path: "x-foo".into(),
        }
    );
    let n = Negotiated {
        version: ProtocolVersion::LATEST,
        features: vec![feature::REALISATION_WITH_PATH_NOT_HASH.into()],
    };
    let found = bytes_of(|w| {
        w.u64(1).string("/nix/store/x-foo").u64(0);
    });
    let result = RealisationQueryResult::decode(&mut Reader::new(&found), &n).unwrap();
    assert_eq!(result.len(), 1);
    let bad_tag = 2u64.to_le_bytes();
    assert!(matches!(
        RealisationQueryResult::decode(&mut Reader::new(&bad_tag), &n),
        Err(ReadError::Invalid { .. })
    ));
}

#[test]
fn gc_paths_form_follows_the_feature() {
    let n = Negotiated {
        version: ProtocolVersion::LATEST,
        features: vec![feature::DELETE_DEAD_SPECIFIC_REFERRERS.into()],
    };
    let whole = 1u64.to_le_bytes();
    assert_eq!(
        GcPaths::decode(&mut Reader::new(&whole), &n).unwrap(),
        GcPaths::WholeStore
    );
    // Without the feature the same word is a one-element set's count.
    assert!(matches!(
        GcPaths::decode(&mut Reader::new(&whole), &at(38)),
        Err(ReadError::Incomplete { .. })
    ));
    let bad_tag = 2u64.to_le_bytes();
    assert!(matches!(
        GcPaths::decode(&mut Reader::new(&bad_tag), &n),
        Err(ReadError::Invalid { .. })
    ));
}

#[test]
fn client_settings_overrides_start_at_1_12() {
    let settings = ClientSettings {
        keep_failed: false,
        keep_going: false,
        try_fallback: false,
        verbosity: 0,
        max_build_jobs: 1,
        max_silent_time: 0,
        use_build_hook: 1,
        verbose_build: 7,
        log_type: 0,
        print_build_trace: 0,
        build_cores: 0,
        use_substitutes: true,
        overrides: Vec::new(),
    };
    assert_eq!(bytes_of(|w| settings.encode(w, &at(11))).len(), 12 * 8);
    assert_eq!(bytes_of(|w| settings.encode(w, &at(12))).len(), 13 * 8);
}

#[test]
fn path_info_1_16_fields() {
    let info = UnkeyedValidPathInfo {
        deriver: None,
        nar_hash: "00".into(),
        references: Vec::new(),
        registration_time: 1,
        nar_size: 2,
        ultimate: false,
        sigs: Vec::new(),
        ca: None,
    };
    let old = bytes_of(|w| info.encode(w, &at(15)));
    let new = bytes_of(|w| info.encode(w, &at(16)));
    assert_eq!(new.len(), old.len() + 24);
    assert_eq!(bytes_of(|w| info.encode_1_16(w)), new);
    assert_eq!(
        UnkeyedValidPathInfo::decode_1_16(&mut Reader::new(&new)).unwrap(),
        info
    );
}

#[test]
fn verbosity_names() {
    assert_eq!(verbosity_name(0), Some("error"));
    assert_eq!(verbosity_name(7), Some("vomit"));
    assert_eq!(verbosity_name(8), None);
}
