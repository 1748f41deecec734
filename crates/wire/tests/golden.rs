//! Nix's own golden protocol vectors (`testdata/nix-upstream`), one test
//! per `.bin` file.
//!
//! Each test decodes the file with the codec for the value its README
//! describes, checks that every byte was consumed and that the decoded
//! value is exactly the one described (built here field by field from the
//! README), re-encodes it to the identical bytes, and, where the file has
//! a `.json` twin in a comparable schema, checks the value against that
//! JSON too. The NAR corpus in the same folder is tested with the NAR
//! parser.

// Tests may unwrap (the workspace's clippy.toml allows it in test
// functions); the helpers of this test crate are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod golden {
    pub mod support;
}

use golden::support::*;
use nixcap_wire::primitives::Reader;
use nixcap_wire::serve::{self, BuildOptions, ServePathInfo, SERVE_MAGIC_2};
use nixcap_wire::types::{
    BinaryBuiltOutput, BuildMode, BuildResult, BuildStatus, BuiltOutputs, ContentAddress,
    ContentAddressMethod, DerivedPath, DrvOutput, JsonBuiltOutput, KeyedBuildResult, OutputsSpec,
    Realisation, RealisationJson, StorePath, TrustedFlag, UnkeyedRealisation, UnkeyedValidPathInfo,
    ValidPathInfo,
};
use nixcap_wire::version::{feature, WORKER_MAGIC_2};
use nixcap_wire::{ByteString, Negotiated, ProtocolVersion};

// ---------------------------------------------------------------------------
// The README's shared constants.

const G: &str = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q";
const G2: &str = "g1w7hyyyy1w7hy3qg1w7hy3qgqqqqy3q";
const H1: &str = "15e3c560894cbb27085cf65b5a2ecb18488c999497f4531b6907a7581ce6d527";
const H1_NIX32: &str = "09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm";
const H2: &str = "6f869f9ea2823bda165e06076fd0de4366dead2c0e8d2dbbad277d4f15c373f5";
const CA_TEXT: &str = "text:sha256:1vb2xd67750jrvqgykxrf5ipl3h1q57sxc57q5nzjw56bqp3sxzr";
const CA_FLAT: &str = "fixed:sha1:1amk6n7wxjlw4qkq6dcj6mm7hw3acrw0";
const CA_NAR: &str = "fixed:r:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh";
const CA_NAR_HEX: &str = "10c209fa0890fe02c85a8c663ca8e7a37cc766bc5b1b29a0cc61b266f64121d3";
const NIW: &str = "no idea why";

fn z64() -> String {
    "0".repeat(64)
}

/// `/nix/store/` + `name`.
fn sp(name: &str) -> StorePath {
    StorePath(format!("/nix/store/{name}"))
}

/// `G-<name>` as a store path.
fn gp(name: &str) -> StorePath {
    sp(&format!("{G}-{name}"))
}

/// `G2-<name>` as a store path.
fn g2p(name: &str) -> StorePath {
    sp(&format!("{G2}-{name}"))
}

fn capath() -> StorePath {
    sp("n5wkd9frr45pa74if5gpz9j7mifg27fh-foo")
}

/// `k:` + base64 of 64 zero bytes.
fn sig(key: &str) -> String {
    format!("{key}:{}==", "A".repeat(86))
}

fn ca(s: &str) -> ContentAddress {
    ContentAddress(s.to_owned())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn version(minor: u8) -> Negotiated {
    Negotiated::new(ProtocolVersion::new(1, minor))
}

fn with_path_feature() -> Negotiated {
    Negotiated {
        version: ProtocolVersion::LATEST,
        features: vec![feature::REALISATION_WITH_PATH_NOT_HASH.to_owned()],
    }
}

fn serve_version(minor: u8) -> ProtocolVersion {
    ProtocolVersion::new(2, minor)
}

// ---------------------------------------------------------------------------
// One test per fixture. `golden!` also lists the files, so that a test can
// check that no fixture on disk is left without one.

macro_rules! golden {
    ($($name:ident => $file:literal, $check:ident;)*) => {
        $(
            #[test]
            fn $name() {
                $check($file);
            }
        )*
        const FILES: &[&str] = &[$($file),*];
    };
}

golden! {
    worker_string => "worker-protocol/string.bin", check_strings;
    worker_store_path => "worker-protocol/store-path.bin", check_store_paths;
    worker_content_address => "worker-protocol/content-address.bin", check_content_addresses;
    worker_optional_store_path => "worker-protocol/optional-store-path.bin", check_optional_store_paths;
    worker_optional_content_address => "worker-protocol/optional-content-address.bin", check_optional_content_addresses;
    worker_vector => "worker-protocol/vector.bin", check_vectors;
    worker_set => "worker-protocol/set.bin", check_sets;
    worker_build_mode => "worker-protocol/build-mode.bin", check_build_modes;
    worker_optional_trusted_flag => "worker-protocol/optional-trusted-flag.bin", check_trusted_flags;
    worker_derived_path_1_29 => "worker-protocol/derived-path-1.29.bin", check_derived_paths_1_29;
    worker_derived_path_1_30 => "worker-protocol/derived-path-1.30.bin", check_derived_paths_1_30;
    worker_build_result_1_27 => "worker-protocol/build-result-1.27.bin", check_build_results_1_27;
    worker_build_result_1_28 => "worker-protocol/build-result-1.28.bin", check_build_results_1_28;
    worker_build_result_1_29 => "worker-protocol/build-result-1.29.bin", check_build_results_1_29;
    worker_build_result_1_29_compat => "worker-protocol/build-result-1.29-compat.bin", check_build_results_1_29_compat;
    worker_build_result_1_37 => "worker-protocol/build-result-1.37.bin", check_build_results_1_37;
    worker_build_result_realisation_with_path_not_hash => "worker-protocol/build-result-realisation-with-path-not-hash.bin", check_build_results_binary;
    worker_keyed_build_result_1_29 => "worker-protocol/keyed-build-result-1.29.bin", check_keyed_build_results;
    worker_unkeyed_valid_path_info_1_15 => "worker-protocol/unkeyed-valid-path-info-1.15.bin", check_unkeyed_path_infos_1_15;
    worker_valid_path_info_1_15 => "worker-protocol/valid-path-info-1.15.bin", check_path_infos_1_15;
    worker_valid_path_info_1_16 => "worker-protocol/valid-path-info-1.16.bin", check_path_infos_1_16;
    worker_client_handshake_info_1_30 => "worker-protocol/client-handshake-info_1_30.bin", check_client_handshake_info_1_30;
    worker_client_handshake_info_1_33 => "worker-protocol/client-handshake-info_1_33.bin", check_client_handshake_info_1_33;
    worker_client_handshake_info_1_35 => "worker-protocol/client-handshake-info_1_35.bin", check_client_handshake_info_1_35;
    worker_handshake_to_client => "worker-protocol/handshake-to-client.bin", check_worker_handshake_to_client;
    worker_drv_output_realisation_with_path_not_hash => "worker-protocol/drv-output-realisation-with-path-not-hash.bin", check_drv_outputs_path_form;
    worker_unkeyed_realisation_realisation_with_path_not_hash => "worker-protocol/unkeyed-realisation-realisation-with-path-not-hash.bin", check_unkeyed_realisation;
    worker_realisation_realisation_with_path_not_hash => "worker-protocol/realisation-realisation-with-path-not-hash.bin", check_binary_realisation;
    worker_drv_output => "worker-protocol/drv-output.bin", check_drv_outputs_id_form;
    worker_realisation => "worker-protocol/realisation.bin", check_orphan_realisations;
    worker_realisation_with_deps => "worker-protocol/realisation-with-deps.bin", check_realisation_with_deps;

    common_string => "common-protocol/string.bin", check_strings;
    common_store_path => "common-protocol/store-path.bin", check_store_paths;
    common_content_address => "common-protocol/content-address.bin", check_content_addresses;
    common_optional_store_path => "common-protocol/optional-store-path.bin", check_optional_store_paths;
    common_optional_content_address => "common-protocol/optional-content-address.bin", check_optional_content_addresses;
    common_vector => "common-protocol/vector.bin", check_vectors;
    common_set => "common-protocol/set.bin", check_sets;
    common_drv_output => "common-protocol/drv-output.bin", check_drv_outputs_id_form;
    common_realisation => "common-protocol/realisation.bin", check_orphan_realisations;
    common_realisation_with_deps => "common-protocol/realisation-with-deps.bin", check_realisation_with_deps;

    serve_string => "serve-protocol/string.bin", check_strings;
    serve_store_path => "serve-protocol/store-path.bin", check_store_paths;
    serve_content_address => "serve-protocol/content-address.bin", check_content_addresses;
    serve_optional_store_path => "serve-protocol/optional-store-path.bin", check_optional_store_paths;
    serve_optional_content_address => "serve-protocol/optional-content-address.bin", check_optional_content_addresses;
    serve_vector => "serve-protocol/vector.bin", check_vectors;
    serve_set => "serve-protocol/set.bin", check_sets;
    serve_handshake_to_client => "serve-protocol/handshake-to-client.bin", check_serve_handshake_to_client;
    serve_build_options_2_1 => "serve-protocol/build-options-2.1.bin", check_build_options_2_1;
    serve_build_options_2_2 => "serve-protocol/build-options-2.2.bin", check_build_options_2_2;
    serve_build_options_2_3 => "serve-protocol/build-options-2.3.bin", check_build_options_2_3;
    serve_build_options_2_7 => "serve-protocol/build-options-2.7.bin", check_build_options_2_7;
    serve_build_result_2_2 => "serve-protocol/build-result-2.2.bin", check_serve_build_results_2_2;
    serve_build_result_2_3 => "serve-protocol/build-result-2.3.bin", check_serve_build_results_2_3;
    serve_build_result_2_6 => "serve-protocol/build-result-2.6.bin", check_serve_build_results_2_6;
    serve_build_result_2_7_compat => "serve-protocol/build-result-2.7-compat.bin", check_serve_build_results_2_7_compat;
    serve_build_result_2_8 => "serve-protocol/build-result-2.8.bin", check_serve_build_results_2_8;
    serve_unkeyed_valid_path_info_2_3 => "serve-protocol/unkeyed-valid-path-info-2.3.bin", check_serve_path_infos_2_3;
    serve_unkeyed_valid_path_info_2_4 => "serve-protocol/unkeyed-valid-path-info-2.4.bin", check_serve_path_infos_2_4;
    serve_drv_output_2_8 => "serve-protocol/drv-output-2.8.bin", check_serve_drv_outputs_2_8;
    serve_unkeyed_realisation_2_8 => "serve-protocol/unkeyed-realisation-2.8.bin", check_unkeyed_realisation;
    serve_realisation_2_8 => "serve-protocol/realisation-2.8.bin", check_binary_realisation;
    serve_drv_output => "serve-protocol/drv-output.bin", check_drv_outputs_id_form;
    serve_realisation => "serve-protocol/realisation.bin", check_orphan_realisations;
    serve_realisation_with_deps => "serve-protocol/realisation-with-deps.bin", check_realisation_with_deps;

    nix_2_34_8_worker_realisation => "nix-2.34.8/worker-protocol/realisation.bin", check_realisations_2_34;
    nix_2_34_8_serve_realisation => "nix-2.34.8/serve-protocol/realisation.bin", check_realisations_2_34;
    nix_2_34_8_common_realisation => "nix-2.34.8/common-protocol/realisation.bin", check_realisations_2_34;
    nix_2_32_0_worker_realisation => "nix-2.32.0/worker-protocol/realisation.bin", check_realisations_2_32;
    nix_2_32_0_serve_realisation => "nix-2.32.0/serve-protocol/realisation.bin", check_realisations_2_32;
    nix_2_32_0_common_realisation => "nix-2.32.0/common-protocol/realisation.bin", check_realisations_2_32;
}

#[test]
fn every_fixture_on_disk_has_a_test() {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "bin") {
                let relative = path.strip_prefix(base).unwrap();
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let base = fixture_dir();
    let mut on_disk = Vec::new();
    walk(&base, &base, &mut on_disk);
    on_disk.sort();
    let mut tested: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    tested.sort();
    assert_eq!(on_disk, tested);
    assert_eq!(tested.len(), 72);
}

// ---------------------------------------------------------------------------
// Shared primitives and common-protocol values.

fn check_strings(file: &str) {
    let expected = byte_strings(&["", "hi", "white rabbit", "大白兔", "oh no "]);
    let decoded = check(
        file,
        &expected,
        |r| many(r, 5, ByteString::decode),
        |v, w| v.iter().for_each(|s| s.encode(w)),
    );
    assert_json_strings(&json_twin(file), &decoded);
}

fn check_store_paths(file: &str) {
    let expected = vec![gp("foo"), gp("foo-bar")];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, StorePath::decode),
        |v, w| v.iter().for_each(|p| p.encode(w)),
    );
    assert_eq!(decoded[1].hash_part(), G);
    assert_eq!(decoded[1].name(), "foo-bar");
    assert_json_store_paths(&json_twin(file), &decoded);
}

fn check_content_addresses(file: &str) {
    let expected = vec![ca(CA_TEXT), ca(CA_FLAT), ca(CA_NAR)];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 3, ContentAddress::decode),
        |v, w| v.iter().for_each(|c| c.encode(w)),
    );
    let methods: Vec<_> = decoded.iter().map(|c| c.parse().unwrap().method).collect();
    assert_eq!(
        methods,
        [
            ContentAddressMethod::Text,
            ContentAddressMethod::Flat,
            ContentAddressMethod::Nar
        ]
    );
    assert_eq!(
        decoded[2].parse().unwrap().digest().unwrap(),
        base16_digest(CA_NAR_HEX)
    );
    let json = json_twin(file);
    for (item, ca) in array(&json).iter().zip(&decoded) {
        assert_json_content_address(item, ca);
    }
}

fn check_optional_store_paths(file: &str) {
    let expected = vec![None, Some(gp("foo-bar"))];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, StorePath::decode_optional),
        |v, w| {
            v.iter()
                .for_each(|p| StorePath::encode_optional(p.as_ref(), w))
        },
    );
    let json = json_twin(file);
    for (item, path) in array(&json).iter().zip(&decoded) {
        assert_json_optional_store_path(item, path.as_ref());
    }
}

fn check_optional_content_addresses(file: &str) {
    let expected = vec![None, Some(ca(CA_FLAT))];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, ContentAddress::decode_optional),
        |v, w| {
            v.iter()
                .for_each(|c| ContentAddress::encode_optional(c.as_ref(), w))
        },
    );
    let json = json_twin(file);
    for (item, ca) in array(&json).iter().zip(&decoded) {
        assert_json_optional_content_address(item, ca.as_ref());
    }
}

/// `vector.bin` and `set.bin`: three string lists, then a list of string
/// lists.
fn check_nested_lists(file: &str, third: &[&str]) {
    let expected = (
        vec![strings(&[]), strings(&[""]), strings(third)],
        vec![strings(&[]), strings(&[""]), strings(&["", "1", "2"])],
    );
    let decoded = check(
        file,
        &expected,
        |r| {
            let flat = many(r, 3, |r| r.string_list("string"))?;
            let nested = r.list(|r| r.string_list("string"))?;
            Ok((flat, nested))
        },
        |(flat, nested), w| {
            for list in flat {
                w.string_list(list);
            }
            w.list(nested, |w, list| {
                w.string_list(list);
            });
        },
    );
    let json = json_twin(file);
    let items = array(&json);
    assert_eq!(items.len(), 4);
    for (item, list) in items.iter().zip(&decoded.0) {
        assert_json_strings(item, list);
    }
    for (item, list) in array(&items[3]).iter().zip(&decoded.1) {
        assert_json_strings(item, list);
    }
}

fn check_vectors(file: &str) {
    // Lists keep their order.
    check_nested_lists(file, &["", "foo", "bar"]);
}

fn check_sets(file: &str) {
    // Sets are written sorted, and the decoder keeps the order it read.
    check_nested_lists(file, &["", "bar", "foo"]);
}

// ---------------------------------------------------------------------------
// Worker-protocol enumerations and derived paths.

fn check_build_modes(file: &str) {
    let expected = vec![BuildMode::Normal, BuildMode::Repair, BuildMode::Check];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 3, BuildMode::decode),
        |v, w| v.iter().for_each(|m| m.encode(w)),
    );
    let json = json_twin(file);
    for (item, mode) in array(&json).iter().zip(&decoded) {
        assert_eq!(item.as_u64(), Some(*mode as u64));
    }
}

fn check_trusted_flags(file: &str) {
    let expected = vec![
        None,
        Some(TrustedFlag::Trusted),
        Some(TrustedFlag::NotTrusted),
    ];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 3, TrustedFlag::decode_optional),
        |v, w| v.iter().for_each(|f| TrustedFlag::encode_optional(*f, w)),
    );
    let json = json_twin(file);
    for (item, flag) in array(&json).iter().zip(&decoded) {
        let expected = flag.map(|f| f == TrustedFlag::Trusted);
        assert_eq!(item.as_bool(), expected, "{item}");
    }
}

fn built(drv: StorePath, outputs: OutputsSpec) -> DerivedPath {
    DerivedPath::Built {
        drv_path: drv,
        outputs,
    }
}

fn names(list: &[&str]) -> OutputsSpec {
    OutputsSpec::Names(strings(list))
}

fn check_derived_paths(file: &str, n: &Negotiated, expected: Vec<DerivedPath>, wire: &[&str]) {
    let count = expected.len();
    let decoded = check(
        file,
        &expected,
        |r| many(r, count, |r| DerivedPath::decode(r, n)),
        |v, w| v.iter().for_each(|p| p.encode(w, n)),
    );
    let rendered: Vec<String> = decoded.iter().map(|p| p.to_wire_string(n)).collect();
    let wire: Vec<String> = wire.iter().map(|s| format!("/nix/store/{G}-{s}")).collect();
    assert_eq!(rendered, wire);
    let json = json_twin(file);
    for (item, path) in array(&json).iter().zip(&decoded) {
        assert_json_derived_path(item, path);
    }
}

fn check_derived_paths_1_29(file: &str) {
    check_derived_paths(
        file,
        &version(29),
        vec![
            DerivedPath::Opaque { path: gp("foo") },
            built(gp("bar.drv"), OutputsSpec::All),
            built(gp("bar.drv"), names(&["x", "y"])),
        ],
        // The legacy "all outputs" form is the bare derivation path.
        &["foo", "bar.drv", "bar.drv!x,y"],
    );
}

fn check_derived_paths_1_30(file: &str) {
    check_derived_paths(
        file,
        &version(30),
        vec![
            DerivedPath::Opaque { path: gp("foo") },
            DerivedPath::Opaque {
                path: gp("foo.drv"),
            },
            built(gp("bar.drv"), OutputsSpec::All),
            built(gp("bar.drv"), names(&["x", "y"])),
        ],
        &["foo", "foo.drv", "bar.drv!*", "bar.drv!x,y"],
    );
}

// ---------------------------------------------------------------------------
// Build results.

/// A build result with times and no CPU times or outputs.
fn result(status: BuildStatus, msg: &str, times: (u64, bool, u64, u64)) -> BuildResult {
    let mut result = BuildResult::new(status, msg);
    (
        result.times_built,
        result.is_non_deterministic,
        result.start_time,
        result.stop_time,
    ) = times;
    result
}

/// The JSON `builtOutputs` Nix 2.4–2.34 writes for outputs `bar` and `foo`
/// of a derivation with hash `H2`.
fn json_outputs_h2() -> BuiltOutputs {
    let entry = |name: &str| JsonBuiltOutput {
        id: format!("sha256:{H2}!{name}"),
        realisation: RealisationJson(format!(
            r#"{{"dependentRealisations":{{}},"id":"sha256:{H2}!{name}","outPath":"{G}-{name}","signatures":[]}}"#
        )),
    };
    BuiltOutputs::Json(vec![entry("bar"), entry("foo")])
}

/// The JSON `builtOutputs` Nix 2.35+ writes: dummy ids, minimal JSON.
fn json_outputs_dummy() -> BuiltOutputs {
    let entry = |name: &str| JsonBuiltOutput {
        id: format!("sha256:{}!{name}", z64()),
        realisation: RealisationJson(format!(
            r#"{{"id":"sha256:{}!{name}","outPath":"{G}-{name}"}}"#,
            z64()
        )),
    };
    BuiltOutputs::Json(vec![entry("bar"), entry("foo")])
}

/// The binary `builtOutputs`: `bar` and `foo` with no signatures.
fn binary_outputs() -> BuiltOutputs {
    let entry = |name: &str| BinaryBuiltOutput {
        output_name: name.to_owned(),
        realisation: UnkeyedRealisation {
            out_path: gp(name),
            signatures: Vec::new(),
        },
    };
    BuiltOutputs::Binary(vec![entry("bar"), entry("foo")])
}

/// The three values of the ≥ 1.29 build-result fixtures, with the given
/// outputs on the success and the given CPU times.
fn three_results(outputs: BuiltOutputs, cpu: Option<(u64, u64)>) -> Vec<BuildResult> {
    let mut results = vec![
        result(BuildStatus::OutputRejected, NIW, (0, false, 0, 0)),
        result(BuildStatus::NotDeterministic, NIW, (3, true, 30, 50)),
        result(BuildStatus::Built, "", (1, false, 30, 50)),
    ];
    // The failures carry an empty map in the same form.
    if let BuiltOutputs::Binary(_) = outputs {
        results[0].built_outputs = BuiltOutputs::Binary(Vec::new());
        results[1].built_outputs = BuiltOutputs::Binary(Vec::new());
    }
    results[2].built_outputs = outputs;
    if let Some((user, system)) = cpu {
        results[2].cpu_user = Some(user);
        results[2].cpu_system = Some(system);
    }
    results
}

fn check_build_results_at(file: &str, n: &Negotiated, expected: Vec<BuildResult>) {
    let decoded = check(
        file,
        &expected,
        |r| many(r, 3, |r| BuildResult::decode(r, n)),
        |v, w| v.iter().for_each(|b| b.encode(w, n)),
    );
    let json = json_twin(file);
    for (item, result) in array(&json).iter().zip(&decoded) {
        assert_json_build_result(item, result);
    }
}

fn check_build_results_1_27(file: &str) {
    check_build_results_at(
        file,
        &version(27),
        vec![
            BuildResult::new(BuildStatus::OutputRejected, NIW),
            BuildResult::new(BuildStatus::NotDeterministic, NIW),
            BuildResult::new(BuildStatus::Built, ""),
        ],
    );
}

fn check_build_results_1_28(file: &str) {
    let mut expected = vec![
        BuildResult::new(BuildStatus::OutputRejected, NIW),
        BuildResult::new(BuildStatus::NotDeterministic, NIW),
        BuildResult::new(BuildStatus::Built, ""),
    ];
    expected[2].built_outputs = json_outputs_h2();
    check_build_results_at(file, &version(28), expected);
}

fn check_build_results_1_29(file: &str) {
    check_build_results_at(file, &version(29), three_results(json_outputs_h2(), None));
}

fn check_build_results_1_29_compat(file: &str) {
    let n = version(29);
    check_build_results_at(file, &n, three_results(json_outputs_dummy(), None));
    // Both JSON generations carry the same output names and paths.
    let names_and_paths = |outputs: BuiltOutputs| outputs.outputs();
    assert_eq!(
        names_and_paths(json_outputs_dummy()),
        names_and_paths(json_outputs_h2())
    );
}

fn check_build_results_1_37(file: &str) {
    check_build_results_at(
        file,
        &version(37),
        three_results(json_outputs_h2(), Some((500_000_000, 604_000_000))),
    );
}

fn check_build_results_binary(file: &str) {
    check_build_results_at(
        file,
        &with_path_feature(),
        three_results(binary_outputs(), Some((500_000_000, 604_000_000))),
    );
}

fn check_keyed_build_results(file: &str) {
    let n = version(29);
    let expected = vec![
        KeyedBuildResult {
            path: DerivedPath::Opaque { path: gp("xxx") },
            result: result(BuildStatus::OutputRejected, NIW, (0, false, 0, 0)),
        },
        KeyedBuildResult {
            path: built(gp("bar.drv"), names(&["out"])),
            result: result(BuildStatus::NotDeterministic, NIW, (3, true, 30, 50)),
        },
    ];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, |r| KeyedBuildResult::decode(r, &n)),
        |v, w| v.iter().for_each(|k| k.encode(w, &n)),
    );
    assert_eq!(
        decoded[1].path.to_wire_string(&n),
        format!("/nix/store/{G}-bar.drv!out")
    );
    let json = json_twin(file);
    for (item, keyed) in array(&json).iter().zip(&decoded) {
        assert_json_derived_path(&item["path"], &keyed.path);
        assert_json_build_result(item, &keyed.result);
    }
}

// ---------------------------------------------------------------------------
// Path infos.

fn path_info(deriver: Option<StorePath>, references: Vec<StorePath>) -> UnkeyedValidPathInfo {
    UnkeyedValidPathInfo {
        deriver,
        nar_hash: H1.to_owned(),
        references,
        registration_time: 23423,
        nar_size: 34878,
        ultimate: false,
        sigs: Vec::new(),
        ca: None,
    }
}

fn check_unkeyed_path_infos_1_15(file: &str) {
    let n = version(15);
    let expected = vec![
        path_info(None, vec![]),
        path_info(Some(gp("bar.drv")), vec![g2p("foo.drv")]),
    ];
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, |r| UnkeyedValidPathInfo::decode(r, &n)),
        |v, w| v.iter().for_each(|i| i.encode(w, &n)),
    );
    let json = json_twin(file);
    for (item, info) in array(&json).iter().zip(&decoded) {
        assert_json_path_info(item, info, Some(&base16_digest(&info.nar_hash)), true);
    }
}

fn check_valid_path_infos(file: &str, n: &Negotiated, expected: Vec<ValidPathInfo>) {
    let count = expected.len();
    let decoded = check(
        file,
        &expected,
        |r| many(r, count, |r| ValidPathInfo::decode(r, n)),
        |v, w| v.iter().for_each(|i| i.encode(w, n)),
    );
    let json = json_twin(file);
    for (item, info) in array(&json).iter().zip(&decoded) {
        assert_json_store_path(&item["path"], &info.path);
        assert_json_path_info(
            item,
            &info.info,
            Some(&base16_digest(&info.info.nar_hash)),
            true,
        );
    }
}

fn check_path_infos_1_15(file: &str) {
    check_valid_path_infos(
        file,
        &version(15),
        vec![
            ValidPathInfo {
                path: gp("bar"),
                info: path_info(None, vec![]),
            },
            ValidPathInfo {
                path: gp("bar"),
                info: path_info(Some(gp("bar.drv")), vec![gp("bar"), g2p("foo")]),
            },
        ],
    );
}

fn path_infos_1_16() -> Vec<ValidPathInfo> {
    let mut first = path_info(None, vec![]);
    first.ultimate = true;
    let mut second = path_info(Some(gp("bar.drv")), vec![gp("bar"), g2p("foo")]);
    second.sigs = vec![sig("fake-sig-1"), sig("fake-sig-2")];
    let mut third = path_info(None, vec![gp("bar"), capath()]);
    third.ca = Some(ca(CA_NAR));
    vec![
        ValidPathInfo {
            path: gp("bar"),
            info: first,
        },
        ValidPathInfo {
            path: gp("bar"),
            info: second,
        },
        ValidPathInfo {
            path: capath(),
            info: third,
        },
    ]
}

fn check_path_infos_1_16(file: &str) {
    check_valid_path_infos(file, &version(16), path_infos_1_16());
    // The 1.16 layout helper reads the same bytes whatever the version.
    let bytes = fixture(file);
    let mut r = Reader::new(&bytes);
    let fixed = many(&mut r, 3, ValidPathInfo::decode_1_16).unwrap();
    assert!(r.is_empty());
    assert_eq!(fixed, path_infos_1_16());
}

// ---------------------------------------------------------------------------
// Handshake pieces.

fn check_client_handshake_info_1_30(file: &str) {
    // At 1.30 the daemon sends neither its version string nor a trust
    // flag, so the value has no fields and the file is empty.
    let expected: Vec<()> = Vec::new();
    check(file, &expected, |_| Ok(Vec::new()), |_, _| {});
}

fn check_client_handshake_info_1_33(file: &str) {
    let expected = byte_strings(&["foo", "bar"]);
    check(
        file,
        &expected,
        |r| many(r, 2, ByteString::decode),
        |v, w| v.iter().for_each(|s| s.encode(w)),
    );
}

fn check_client_handshake_info_1_35(file: &str) {
    let expected = vec![
        (ByteString::from("foo"), Some(TrustedFlag::NotTrusted)),
        (ByteString::from("bar"), Some(TrustedFlag::Trusted)),
    ];
    check(
        file,
        &expected,
        |r| {
            many(r, 2, |r| {
                Ok((ByteString::decode(r)?, TrustedFlag::decode_optional(r)?))
            })
        },
        |v, w| {
            for (version, trust) in v {
                version.encode(w);
                TrustedFlag::encode_optional(*trust, w);
            }
        },
    );
}

fn check_hello(file: &str, magic: u64, expected_version: ProtocolVersion) {
    let expected = (magic, expected_version);
    check(
        file,
        &expected,
        |r| Ok((r.u64()?, ProtocolVersion::from_wire(r.u64()?))),
        |(magic, version), w| {
            w.u64(*magic).u64(version.to_wire());
        },
    );
}

fn check_worker_handshake_to_client(file: &str) {
    check_hello(file, WORKER_MAGIC_2, ProtocolVersion::new(1, 10));
}

fn check_serve_handshake_to_client(file: &str) {
    check_hello(file, SERVE_MAGIC_2, serve_version(5));
}

// ---------------------------------------------------------------------------
// DrvOutputs and realisations.

fn path_form_drv_outputs() -> Vec<DrvOutput> {
    ["baz", "quux"]
        .iter()
        .map(|name| DrvOutput::Path {
            drv_path: gp("foo.drv"),
            output_name: name.to_string(),
        })
        .collect()
}

fn check_drv_outputs_path_form(file: &str) {
    let n = with_path_feature();
    let decoded = check(
        file,
        &path_form_drv_outputs(),
        |r| many(r, 2, |r| DrvOutput::decode(r, &n)),
        |v, w| v.iter().for_each(|d| d.encode(w)),
    );
    let json = json_twin(file);
    for (item, id) in array(&json).iter().zip(&decoded) {
        assert_json_drv_output(item, id);
    }
}

fn check_serve_drv_outputs_2_8(file: &str) {
    let decoded = check(
        file,
        &path_form_drv_outputs(),
        |r| many(r, 2, |r| serve::decode_drv_output(r, serve_version(8))),
        |v, w| v.iter().for_each(|d| d.encode(w)),
    );
    let json = json_twin(file);
    for (item, id) in array(&json).iter().zip(&decoded) {
        assert_json_drv_output(item, id);
    }
}

fn check_drv_outputs_id_form(file: &str) {
    let expected = vec![
        DrvOutput::Id(format!("sha256:{H1}!baz")),
        DrvOutput::Id(format!("sha256:{H2}!quux")),
    ];
    let n = version(10);
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, |r| DrvOutput::decode(r, &n)),
        |v, w| v.iter().for_each(|d| d.encode(w)),
    );
    assert_eq!(decoded[1].output_name(), Some("quux"));
    let json = json_twin(file);
    for (item, id) in array(&json).iter().zip(&decoded) {
        assert_json_drv_output(item, id);
    }
}

fn asdf_qwer_realisation() -> UnkeyedRealisation {
    UnkeyedRealisation {
        out_path: gp("foo"),
        signatures: vec![sig("asdf"), sig("qwer")],
    }
}

fn check_unkeyed_realisation(file: &str) {
    let decoded = check(
        file,
        &asdf_qwer_realisation(),
        UnkeyedRealisation::decode,
        |v, w| v.encode(w),
    );
    assert_json_unkeyed_realisation(&json_twin(file), &decoded);
}

fn check_binary_realisation(file: &str) {
    let expected = Realisation::Binary {
        drv_path: gp("foo.drv"),
        output_name: "baz".to_owned(),
        realisation: asdf_qwer_realisation(),
    };
    let decoded = check(file, &expected, Realisation::decode_binary, |v, w| {
        v.encode(w)
    });
    // The same bytes decode as a connection with the feature reads them.
    let bytes = fixture(file);
    let mut r = Reader::new(&bytes);
    assert_eq!(
        Realisation::decode(&mut r, &with_path_feature()).unwrap(),
        decoded
    );
    let json = json_twin(file);
    let Realisation::Binary {
        drv_path,
        output_name,
        realisation,
    } = &decoded
    else {
        unreachable!("checked above")
    };
    assert_json_drv_output(
        &json["key"],
        &DrvOutput::Path {
            drv_path: drv_path.clone(),
            output_name: output_name.clone(),
        },
    );
    assert_json_unkeyed_realisation(&json["value"], realisation);
}

/// A realisation JSON text with keys in Nix's (sorted) order.
fn realisation_text(deps: &str, hash: &str, signatures: &str) -> RealisationJson {
    RealisationJson(format!(
        r#"{{"dependentRealisations":{{{deps}}},"id":"sha256:{hash}!baz","outPath":"{G}-foo","signatures":[{signatures}]}}"#
    ))
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// Decodes JSON realisations (version-independent: one `str` each) and
/// checks the parsed view against the `.json` twin, if there is one.
fn check_json_realisations(file: &str, expected: Vec<RealisationJson>, with_json_twin: bool) {
    let count = expected.len();
    let decoded = check(
        file,
        &expected,
        |r| many(r, count, RealisationJson::decode),
        |v, w| v.iter().for_each(|j| j.encode(w)),
    );
    // Inside RegisterDrvOutput at 1.31–1.38 the same bytes are the Json form.
    let bytes = fixture(file);
    let mut r = Reader::new(&bytes);
    let as_realisation = Realisation::decode(&mut r, &version(31)).unwrap();
    assert_eq!(
        as_realisation,
        Realisation::Json {
            json: decoded[0].clone()
        }
    );
    if !with_json_twin {
        return;
    }
    let json = json_twin(file);
    for (item, text) in array(&json).iter().zip(&decoded) {
        let parsed = text.parse().unwrap();
        assert_eq!(item["id"].as_str(), Some(parsed.id.as_str()));
        assert_eq!(item["outPath"].as_str(), Some(parsed.out_path.as_str()));
        assert_json_signatures(&item["signatures"], &parsed.signatures);
        let deps: Vec<(String, String)> = item["dependentRealisations"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(deps, parsed.dependent_realisations);
    }
}

fn check_orphan_realisations(file: &str) {
    let object_sig = |key: &str| format!(r#"{{"keyName":"{key}","sig":"{}=="}}"#, "A".repeat(86));
    let expected = vec![
        realisation_text("", H1, ""),
        realisation_text(
            "",
            H1,
            &format!("{},{}", object_sig("asdf"), object_sig("qwer")),
        ),
    ];
    check_json_realisations(file, expected, true);
}

fn check_realisation_with_deps(file: &str) {
    let deps = format!(r#""sha256:{H2}!quux":"{G}-foo""#);
    let expected = vec![realisation_text(
        &deps,
        H1,
        &quoted(&[sig("asdf"), sig("qwer")]),
    )];
    check_json_realisations(file, expected, true);
}

fn check_realisations_2_34(file: &str) {
    let expected = vec![
        realisation_text("", H1, ""),
        realisation_text("", H1, &quoted(&[sig("asdf"), sig("qwer")])),
    ];
    check_json_realisations(file, expected, true);
}

fn check_realisations_2_32(file: &str) {
    let signatures = quoted(&strings(&["asdf", "qwer"]));
    let deps = format!(r#""sha256:{H2}!quux":"{G}-foo""#);
    let expected = vec![
        realisation_text("", H1, &signatures),
        realisation_text(&deps, H1, &signatures),
    ];
    check_json_realisations(file, expected, false);
}

// ---------------------------------------------------------------------------
// Serve protocol.

fn check_build_options(file: &str, minor: u8, expected: BuildOptions) {
    let version = serve_version(minor);
    check(
        file,
        &expected,
        |r| BuildOptions::decode(r, version),
        |v, w| v.encode(w, version),
    );
}

fn build_options(
    max_log_size: u64,
    nr_repeats: u64,
    enforce: bool,
    keep_failed: bool,
) -> BuildOptions {
    BuildOptions {
        max_silent_time: 5,
        build_timeout: 6,
        max_log_size,
        nr_repeats,
        enforce_determinism: enforce,
        keep_failed,
    }
}

fn check_build_options_2_1(file: &str) {
    check_build_options(file, 1, build_options(0, 0, false, false));
}

fn check_build_options_2_2(file: &str) {
    check_build_options(file, 2, build_options(7, 0, false, false));
}

fn check_build_options_2_3(file: &str) {
    check_build_options(file, 3, build_options(7, 8, true, false));
}

fn check_build_options_2_7(file: &str) {
    check_build_options(file, 7, build_options(7, 8, false, true));
}

fn check_serve_build_results(file: &str, minor: u8, expected: Vec<BuildResult>) {
    let version = serve_version(minor);
    let decoded = check(
        file,
        &expected,
        |r| many(r, 3, |r| serve::decode_build_result(r, version)),
        |v, w| {
            v.iter()
                .for_each(|b| serve::encode_build_result(b, w, version))
        },
    );
    let json = json_twin(file);
    for (item, result) in array(&json).iter().zip(&decoded) {
        assert_json_build_result(item, result);
    }
}

fn check_serve_build_results_2_2(file: &str) {
    check_serve_build_results(
        file,
        2,
        vec![
            BuildResult::new(BuildStatus::OutputRejected, NIW),
            BuildResult::new(BuildStatus::NotDeterministic, NIW),
            BuildResult::new(BuildStatus::Built, ""),
        ],
    );
}

fn check_serve_build_results_2_3(file: &str) {
    check_serve_build_results(
        file,
        3,
        vec![
            result(BuildStatus::OutputRejected, NIW, (0, false, 0, 0)),
            result(BuildStatus::NotDeterministic, NIW, (3, true, 30, 50)),
            result(BuildStatus::Built, "", (0, false, 30, 50)),
        ],
    );
}

fn check_serve_build_results_2_6(file: &str) {
    check_serve_build_results(file, 6, three_results(json_outputs_h2(), None));
}

fn check_serve_build_results_2_7_compat(file: &str) {
    check_serve_build_results(file, 7, three_results(json_outputs_dummy(), None));
}

fn check_serve_build_results_2_8(file: &str) {
    check_serve_build_results(file, 8, three_results(binary_outputs(), None));
}

fn serve_info(
    deriver: Option<StorePath>,
    references: Vec<StorePath>,
    with_2_4: Option<(Option<ContentAddress>, Vec<String>)>,
) -> ServePathInfo {
    let mut info = ServePathInfo {
        deriver,
        references,
        download_size: 34878,
        nar_size: 34878,
        nar_hash: String::new(),
        ca: None,
        sigs: Vec::new(),
    };
    if let Some((ca, sigs)) = with_2_4 {
        info.nar_hash = format!("sha256:{H1_NIX32}");
        info.ca = ca;
        info.sigs = sigs;
    }
    info
}

fn check_serve_path_infos(file: &str, minor: u8, expected: Vec<ServePathInfo>) {
    let version = serve_version(minor);
    let decoded = check(
        file,
        &expected,
        |r| many(r, 2, |r| ServePathInfo::decode(r, version)),
        |v, w| v.iter().for_each(|i| i.encode(w, version)),
    );
    let json = json_twin(file);
    for (item, info) in array(&json).iter().zip(&decoded) {
        let as_worker = UnkeyedValidPathInfo {
            deriver: info.deriver.clone(),
            nar_hash: info.nar_hash.clone(),
            references: info.references.clone(),
            registration_time: 0,
            nar_size: info.nar_size,
            ultimate: false,
            sigs: info.sigs.clone(),
            ca: info.ca.clone(),
        };
        // Before 2.4 the wire has no NAR hash (the JSON shows a dummy one).
        let digest = (minor >= 4).then(|| prefixed_nix32_digest(&info.nar_hash));
        assert_json_path_info(item, &as_worker, digest.as_deref(), false);
    }
}

fn check_serve_path_infos_2_3(file: &str) {
    check_serve_path_infos(
        file,
        3,
        vec![
            serve_info(None, vec![], None),
            serve_info(Some(gp("bar.drv")), vec![g2p("foo.drv")], None),
        ],
    );
}

fn check_serve_path_infos_2_4(file: &str) {
    check_serve_path_infos(
        file,
        4,
        vec![
            serve_info(
                Some(gp("bar.drv")),
                vec![g2p("foo.drv")],
                Some((None, vec![])),
            ),
            serve_info(
                Some(gp("bar.drv")),
                vec![gp("bar"), capath()],
                Some((Some(ca(CA_NAR)), vec![sig("fake-sig-1"), sig("fake-sig-2")])),
            ),
        ],
    );
    // The nix32 hash on the wire is H1.
    assert_eq!(
        prefixed_nix32_digest(&format!("sha256:{H1_NIX32}")),
        base16_digest(H1)
    );
}
