//! Request keys: the normalised form of a request that `--match keyed` and
//! `--match reuse` compare.
//!
//! A key starts from the shared normalisation of per-run values
//! ([`nixcap_view::normalise::request_key`]: pids and temp-dir nonces in
//! paths, timestamps, and SetOptions' settings, which differ between
//! environments and after `nixcap redact`). On top of that, the directory of
//! a garbage-collector root (`AddIndirectRoot`, `AddPermRoot`) is dropped: a
//! client run in another working directory asks for `<elsewhere>/result`,
//! which should still match the recorded `<workdir>/result`, so only the
//! root's file name is kept.
//!
//! Recorded and live requests are compared in one version-neutral form
//! ([`neutral_key`]): each is first translated to the latest protocol
//! version ([`nixcap_wire::translate::request`]), so that, say, the legacy
//! AddToStore arguments below 1.25 and a QueryValidPaths without the
//! `substitute` flag below 1.27 compare equal to their newer forms.

use nixcap_wire::ops::Request;
use nixcap_wire::serve::ops::ServeRequest;
use nixcap_wire::{Negotiated, ProtocolVersion};
use serde_json::Value;

/// The key of `request`, decoded at `negotiated`, in the form of the
/// latest protocol version; the plain [`request_key`] when the request has
/// no such form.
pub fn neutral_key(request: &Request, negotiated: &Negotiated) -> Value {
    let latest = Negotiated::new(ProtocolVersion::LATEST);
    if negotiated.version == latest.version && negotiated.features.is_empty() {
        return request_key(request);
    }
    match nixcap_wire::translate::request(request, negotiated, &latest) {
        Ok(translated) => request_key(&translated.value),
        Err(_) => request_key(request),
    }
}

/// The normalised key of `request`. Two requests with equal keys are served
/// the same recorded answer.
pub fn request_key(request: &Request) -> Value {
    let mut value = nixcap_view::normalise::request_key(request);
    let root_field = match request {
        Request::AddIndirectRoot { .. } => "path",
        Request::AddPermRoot { .. } => "gcRoot",
        _ => return value,
    };
    if let Some(Value::String(text)) = value.get_mut(root_field) {
        let name = text.rsplit('/').next().unwrap_or_default().to_owned();
        *text = format!("…/{name}");
    }
    value
}

/// The key of a serve-protocol request: the command and its fields, with
/// AddToStoreNar's registration time (the moment the sending store
/// registered the path, different in every run) left out.
pub fn serve_key(request: &ServeRequest) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let (ServeRequest::AddToStoreNar(_), Value::Object(fields)) = (request, &mut value) {
        fields.remove("registrationTime");
    }
    serde_json::json!({ "serve": value })
}

/// The key argument of a serve-protocol request: its first store path.
pub fn serve_key_argument(request: &ServeRequest) -> Option<String> {
    let path = match request {
        ServeRequest::QueryValidPaths { paths, .. }
        | ServeRequest::QueryPathInfos { paths }
        | ServeRequest::ExportPaths { paths, .. }
        | ServeRequest::QueryClosure { paths, .. } => paths.first()?,
        ServeRequest::DumpStorePath { path } => path,
        ServeRequest::BuildDerivation { drv_path, .. } => drv_path,
        ServeRequest::AddToStoreNar(add) => &add.path,
        ServeRequest::BuildPaths { paths, .. } => {
            return paths
                .first()
                .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        }
        ServeRequest::ImportPaths | ServeRequest::Unknown { .. } => return None,
    };
    Some(path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixcap_wire::types::StorePath;
    use nixcap_wire::ByteString;

    #[test]
    fn roots_keep_only_their_file_name() {
        let a = Request::AddIndirectRoot {
            path: ByteString::from(b"/tmp/run-1/result".to_vec()),
        };
        let b = Request::AddIndirectRoot {
            path: ByteString::from(b"/home/u/project/result".to_vec()),
        };
        let c = Request::AddIndirectRoot {
            path: ByteString::from(b"/home/u/project/other".to_vec()),
        };
        assert_eq!(request_key(&a), request_key(&b));
        assert_ne!(request_key(&a), request_key(&c));
    }

    #[test]
    fn store_paths_are_kept() {
        let a = Request::QueryPathInfo {
            path: StorePath::new("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"),
        };
        let b = Request::QueryPathInfo {
            path: StorePath::new("/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a"),
        };
        assert_ne!(request_key(&a), request_key(&b));
        assert_eq!(request_key(&a)["op"], "QueryPathInfo");
    }
}
