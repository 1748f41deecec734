//! Request keys: the normalised form of a request that `--match keyed` and
//! `--match reuse` compare.
//!
//! A key is the request's JSON form with the values that change from run to
//! run of the same client command replaced. Today that is the directory of a
//! garbage-collector root (`AddIndirectRoot`, `AddPermRoot`): a client run in
//! another working directory asks for `<elsewhere>/result`, which should still
//! match the recorded `<workdir>/result`, so only the root's file name is kept.

use nixcap_wire::ops::Request;
use serde_json::Value;

/// The normalised key of `request`. Two requests with equal keys are served
/// the same recorded answer.
pub fn request_key(request: &Request) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in ["path", "gcRoot"] {
            let is_root_field = match request {
                Request::AddIndirectRoot { .. } => field == "path",
                Request::AddPermRoot { .. } => field == "gcRoot",
                _ => false,
            };
            if !is_root_field {
                continue;
            }
            if let Some(Value::String(text)) = map.get_mut(field) {
                let name = text.rsplit('/').next().unwrap_or_default().to_owned();
                *text = format!("…/{name}");
            }
        }
    }
    value
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
            path: ByteString::from(b"/home/u/work/result".to_vec()),
        };
        let c = Request::AddIndirectRoot {
            path: ByteString::from(b"/home/u/work/other".to_vec()),
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
