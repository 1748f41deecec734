//! Helpers for the golden-vector tests: loading fixtures, the
//! decode/compare/re-encode harness, and comparisons against the `.json`
//! twins written by Nix.

use std::fmt::Debug;
use std::path::PathBuf;

use nixcap_wire::primitives::{ReadResult, Reader, Writer};
use nixcap_wire::types::{
    base16_decode, nix32_decode, BuildResult, ContentAddress, ContentAddressMethod, DerivedPath,
    DrvOutput, OutputsSpec, StorePath, UnkeyedRealisation, UnkeyedValidPathInfo,
};
use nixcap_wire::ByteString;
use serde_json::Value;

/// The fixture folder, relative to this crate.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/nix-upstream")
}

/// The bytes of a fixture.
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = fixture_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `.json` twin of a `.bin` fixture.
pub fn json_twin(relative_bin: &str) -> Value {
    let relative = relative_bin.replace(".bin", ".json");
    let text = String::from_utf8(fixture(&relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The elements of a JSON array.
pub fn array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {value}"))
}

/// Decodes `relative` with `decode`, which must consume every byte and
/// produce exactly `expected`; then re-encodes the decoded value with
/// `encode`, which must reproduce the file byte for byte.
pub fn check<T: Debug + PartialEq>(
    relative: &str,
    expected: &T,
    decode: impl FnOnce(&mut Reader<'_>) -> ReadResult<T>,
    encode: impl FnOnce(&T, &mut Writer),
) -> T {
    let bytes = fixture(relative);
    let mut r = Reader::new(&bytes);
    let decoded = decode(&mut r).unwrap_or_else(|e| panic!("{relative}: decoding failed: {e}"));
    assert_eq!(
        r.position(),
        bytes.len(),
        "{relative}: {} bytes left over",
        bytes.len() - r.position()
    );
    assert_eq!(&decoded, expected, "{relative}: decoded value");
    let mut w = Writer::new();
    encode(&decoded, &mut w);
    assert_eq!(
        hex::encode(w.as_bytes()),
        hex::encode(&bytes),
        "{relative}: re-encoding differs"
    );
    decoded
}

/// Reads `count` values one after another.
pub fn many<T>(
    r: &mut Reader<'_>,
    count: usize,
    mut item: impl FnMut(&mut Reader<'_>) -> ReadResult<T>,
) -> ReadResult<Vec<T>> {
    (0..count).map(|_| item(r)).collect()
}

/// Standard base64 with padding, as in Nix's SRI hashes and signatures.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The JSON form of a store path: its base name.
pub fn assert_json_store_path(json: &Value, path: &StorePath) {
    assert_eq!(json.as_str(), Some(path.base_name()), "store path {path}");
}

/// The JSON form of an optional store path: null or the base name.
pub fn assert_json_optional_store_path(json: &Value, path: Option<&StorePath>) {
    match path {
        None => assert!(json.is_null(), "expected null, got {json}"),
        Some(path) => assert_json_store_path(json, path),
    }
}

/// The JSON form of a list or set of store paths.
pub fn assert_json_store_paths(json: &Value, paths: &[StorePath]) {
    let items = array(json);
    assert_eq!(items.len(), paths.len(), "{json}");
    for (item, path) in items.iter().zip(paths) {
        assert_json_store_path(item, path);
    }
}

/// A JSON string or list of strings, compared with byte strings or
/// strings.
pub fn assert_json_strings<S: AsRef<[u8]>>(json: &Value, strings: &[S]) {
    let items = array(json);
    assert_eq!(items.len(), strings.len(), "{json}");
    for (item, s) in items.iter().zip(strings) {
        assert_eq!(item.as_str().map(str::as_bytes), Some(s.as_ref()), "{json}");
    }
}

/// A signature as Nix's JSON writes it: either the string, or
/// `{"keyName", "sig"}`, which is the string split at the first `:`.
pub fn json_signature(json: &Value) -> String {
    match json {
        Value::String(s) => s.clone(),
        Value::Object(o) => format!(
            "{}:{}",
            o["keyName"].as_str().unwrap(),
            o["sig"].as_str().unwrap()
        ),
        other => panic!("unexpected signature {other}"),
    }
}

/// A list of signatures.
pub fn assert_json_signatures(json: &Value, sigs: &[String]) {
    let found: Vec<String> = array(json).iter().map(json_signature).collect();
    assert_eq!(found, sigs);
}

/// The SRI form (`sha256-<base64>`) of a digest.
pub fn sri(algo: &str, digest: &[u8]) -> String {
    format!("{algo}-{}", base64(digest))
}

/// A content address as Nix's JSON writes it: `{"method", "hash"}` with an
/// SRI hash.
pub fn assert_json_content_address(json: &Value, ca: &ContentAddress) {
    let parsed = ca
        .parse()
        .unwrap_or_else(|| panic!("{ca:?} does not parse"));
    let method = match parsed.method {
        ContentAddressMethod::Text => "text",
        ContentAddressMethod::Flat => "flat",
        ContentAddressMethod::Nar => "nar",
        ContentAddressMethod::Git => "git",
    };
    assert_eq!(json["method"].as_str(), Some(method), "{json}");
    let digest = parsed
        .digest()
        .unwrap_or_else(|| panic!("{ca:?}: bad digest"));
    assert_eq!(
        json["hash"].as_str(),
        Some(sri(&parsed.algo, &digest).as_str()),
        "{json}"
    );
}

/// An optional content address: null or the object.
pub fn assert_json_optional_content_address(json: &Value, ca: Option<&ContentAddress>) {
    match ca {
        None => assert!(json.is_null(), "expected null, got {json}"),
        Some(ca) => assert_json_content_address(json, ca),
    }
}

/// A derived path as Nix's JSON writes it: the base name for an opaque
/// path, `{"drvPath", "outputs"}` for a built one (`["*"]` for all).
pub fn assert_json_derived_path(json: &Value, path: &DerivedPath) {
    match path {
        DerivedPath::Opaque { path } => assert_json_store_path(json, path),
        DerivedPath::Built { drv_path, outputs } => {
            assert_json_store_path(&json["drvPath"], drv_path);
            let names: Vec<&str> = match outputs {
                OutputsSpec::All => vec!["*"],
                OutputsSpec::Names(names) => names.iter().map(String::as_str).collect(),
            };
            assert_json_strings(&json["outputs"], &names);
        }
    }
}

/// A DrvOutput: the id string, or `{"drvPath", "outputName"}`.
pub fn assert_json_drv_output(json: &Value, id: &DrvOutput) {
    match id {
        DrvOutput::Id(id) => assert_eq!(json.as_str(), Some(id.as_str())),
        DrvOutput::Path {
            drv_path,
            output_name,
        } => {
            assert_json_store_path(&json["drvPath"], drv_path);
            assert_eq!(json["outputName"].as_str(), Some(output_name.as_str()));
        }
    }
}

/// An UnkeyedRealisation: `{"outPath", "signatures"}`.
pub fn assert_json_unkeyed_realisation(json: &Value, realisation: &UnkeyedRealisation) {
    assert_json_store_path(&json["outPath"], &realisation.out_path);
    assert_json_signatures(&json["signatures"], &realisation.signatures);
}

/// A BuildResult as Nix's JSON writes it. Fields the JSON leaves out
/// (errorMsg and isNonDeterministic on success, the CPU times when unset)
/// must hold their empty values.
pub fn assert_json_build_result(json: &Value, result: &BuildResult) {
    assert_eq!(
        json["status"].as_str(),
        Some(result.status.name()),
        "{json}"
    );
    assert_eq!(
        json["success"].as_bool(),
        Some(result.status.is_success()),
        "{json}"
    );
    match json.get("errorMsg") {
        Some(msg) => assert_eq!(
            msg.as_str().map(str::as_bytes),
            Some(result.error_msg.as_bytes())
        ),
        None => assert!(result.error_msg.is_empty()),
    }
    assert_eq!(
        json["timesBuilt"].as_u64(),
        Some(result.times_built),
        "{json}"
    );
    assert_eq!(
        json["startTime"].as_u64(),
        Some(result.start_time),
        "{json}"
    );
    assert_eq!(json["stopTime"].as_u64(), Some(result.stop_time), "{json}");
    match json.get("isNonDeterministic") {
        Some(flag) => assert_eq!(flag.as_bool(), Some(result.is_non_deterministic)),
        None => assert!(!result.is_non_deterministic),
    }
    assert_eq!(
        json.get("cpuUser").and_then(Value::as_u64),
        result.cpu_user,
        "{json}"
    );
    assert_eq!(
        json.get("cpuSystem").and_then(Value::as_u64),
        result.cpu_system,
        "{json}"
    );
    let outputs = result.built_outputs.outputs();
    match json.get("builtOutputs") {
        Some(map) => {
            let map = map.as_object().unwrap();
            assert_eq!(map.len(), outputs.len(), "{json}");
            for (name, out_path) in &outputs {
                let entry = &map[name.as_str()];
                let out_path = out_path.as_deref().unwrap();
                let base = out_path.rsplit('/').next().unwrap();
                assert_eq!(entry["outPath"].as_str(), Some(base), "{json}");
            }
        }
        None => assert!(outputs.is_empty()),
    }
}

/// A path info as Nix's JSON writes it. `nar_hash` is the digest the wire
/// carries (`None` when the wire has none, as in serve 2.3).
pub fn assert_json_path_info(
    json: &Value,
    info: &UnkeyedValidPathInfo,
    nar_hash: Option<&[u8]>,
    with_registration_time: bool,
) {
    assert_json_optional_store_path(&json["deriver"], info.deriver.as_ref());
    if let Some(digest) = nar_hash {
        assert_eq!(
            json["narHash"].as_str(),
            Some(sri("sha256", digest).as_str())
        );
    }
    assert_json_store_paths(&json["references"], &info.references);
    if with_registration_time {
        assert_eq!(
            json["registrationTime"].as_u64(),
            Some(info.registration_time)
        );
    }
    assert_eq!(json["narSize"].as_u64(), Some(info.nar_size));
    assert_eq!(json["ultimate"].as_bool(), Some(info.ultimate));
    assert_json_signatures(&json["signatures"], &info.sigs);
    assert_json_optional_content_address(&json["ca"], info.ca.as_ref());
}

/// The digest of a base16 NAR hash.
pub fn base16_digest(hash: &str) -> Vec<u8> {
    base16_decode(hash).unwrap()
}

/// The digest of a `sha256:<nix32>` NAR hash.
pub fn prefixed_nix32_digest(hash: &str) -> Vec<u8> {
    nix32_decode(hash.strip_prefix("sha256:").unwrap(), 32).unwrap()
}

/// Byte strings from text.
pub fn byte_strings(items: &[&str]) -> Vec<ByteString> {
    items.iter().map(|s| ByteString::from(*s)).collect()
}
