//! Verified uploads: a local file goes up, and the call returns only once
//! the store confirms it holds exactly those bytes.
//!
//! The file is read once, hashing it (SHA-256 and MD5) as it goes, and put
//! in one request with its SHA-256 in the object's metadata
//! (`x-amz-meta-sha256` on S3; not in a local directory). Confirmation is a `HEAD`: the size must
//! match, and the entity tag must equal the MD5 when the store uses MD5
//! entity tags (S3 and most S3-compatible servers do for single-part
//! uploads). When the tag is something else (a local directory, a
//! multipart or encrypted upload), the object is read back and its SHA-256
//! compared. Only then may the caller delete its local copy.

use std::io::Read;

use bytes::Bytes;
use md5::Md5;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

/// What an upload put, as confirmed by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The object's URL.
    pub url: String,
    /// Its size.
    pub size: u64,
    /// The SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// How the store confirmed it: `etag` (MD5 entity tag) or `read-back`.
    pub confirmed_by: &'static str,
}

impl Store {
    /// Uploads the local file `path` as `name` under the store's prefix,
    /// then confirms it (see the module documentation).
    pub fn upload_file(&self, path: &std::path::Path, name: &str) -> Result<Uploaded, StoreError> {
        let local = |source| StoreError::Local {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(local)?;
        self.upload_bytes(Bytes::from(bytes), name)
    }

    /// Uploads `bytes` as `name` under the store's prefix and confirms it.
    pub fn upload_bytes(&self, bytes: Bytes, name: &str) -> Result<Uploaded, StoreError> {
        let key = self.key_of(name);
        let url = self.url_of(&key);
        let path = ObjectPath::from(key.as_str());
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let md5 = hex::encode(Md5::digest(&bytes));
        let size = bytes.len() as u64;
        let mut attributes = Attributes::new();
        // A local directory has nowhere to keep metadata.
        if self.base != "file://" {
            attributes.insert(Attribute::Metadata("sha256".into()), sha256.clone().into());
        }
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.runtime
            .block_on(self.inner.put_opts(&path, PutPayload::from(bytes), options))
            .map_err(|e| self.request_error(&url, "uploading", e))?;
        let meta = self
            .runtime
            .block_on(self.inner.head(&path))
            .map_err(|e| self.request_error(&url, "confirming", e))?;
        let expected = format!("{size} bytes, sha256 {sha256}");
        if meta.size != size {
            return Err(StoreError::Mismatch {
                url,
                expected,
                found: format!("{} bytes", meta.size),
            });
        }
        let etag = meta
            .e_tag
            .as_deref()
            .map(|t| t.trim_matches('"').to_ascii_lowercase());
        let md5_tag = etag
            .as_deref()
            .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        let confirmed_by = match md5_tag {
            Some(tag) if tag == md5 => "etag",
            Some(tag) => {
                return Err(StoreError::Mismatch {
                    url,
                    expected: format!("{expected}, md5 {md5}"),
                    found: format!("{} bytes, md5 {tag}", meta.size),
                })
            }
            None => {
                let back = self
                    .runtime
                    .block_on(async { self.inner.get(&path).await?.bytes().await })
                    .map_err(|e| self.request_error(&url, "reading back", e))?;
                let found = hex::encode(Sha256::digest(&back));
                if found != sha256 {
                    return Err(StoreError::Mismatch {
                        url,
                        expected,
                        found: format!("{} bytes, sha256 {found}", back.len()),
                    });
                }
                "read-back"
            }
        };
        Ok(Uploaded {
            url,
            size,
            sha256,
            confirmed_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_directory_upload_is_confirmed_by_reading_back() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"some capture bytes").unwrap();
        let dest = dir.path().join("bucket");
        std::fs::create_dir(&dest).unwrap();
        let store = Store::open(&format!("file://{}/", dest.display())).unwrap();
        let up = store.upload_file(&src, "host/a.nixcap").unwrap();
        assert_eq!(up.size, 18);
        assert_eq!(up.confirmed_by, "read-back");
        assert_eq!(
            std::fs::read(dest.join("host/a.nixcap")).unwrap(),
            b"some capture bytes"
        );
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            listed[0].url.ends_with("/bucket/host/a.nixcap"),
            "{listed:?}"
        );
        let missing = store.reader_of(&store.key_of("nope")).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }
}
