//! nixcap-objstore: captures in object storage.
//!
//! Built on the `object_store` crate of the Apache Arrow project: S3 (and
//! S3-compatible servers), Google Cloud Storage, Azure Blob Storage and
//! local directories through the same code. The capture format and its
//! readers know nothing of this crate; it hands them a byte source and the
//! recorder a sink:
//!
//! - [`Store::open`] parses `s3://bucket/prefix`, `gs://…`, `az://…` or
//!   `file:///dir` and builds the client, with credentials from the
//!   standard environment (and, for S3, the AWS shared config and
//!   credentials files; see `credentials`).
//! - [`Store::reader`] opens one object as a [`RangedReader`], a blocking
//!   `Read + Seek` that fetches byte ranges on demand, so reading a
//!   capture's footer index costs a few small requests, not a download.
//! - [`Store::list`] lists the objects under a prefix.
//! - [`Store::upload_file`] uploads a finished file and confirms that the
//!   store holds exactly its bytes (size and checksum) before returning.
//! - [`Uploader`] drains a spool directory of finished files into a store on
//!   its own thread, retrying with back-off, deleting each local file only
//!   after its upload is confirmed.
//!
//! Secrets never leave this crate in text: every error message is scrubbed
//! of the credentials in use (see [`Secrets`]).
//!
//! Each [`Store`] owns a single-threaded Tokio runtime and blocks on it, so
//! callers stay synchronous and free of any runtime of their own.

mod credentials;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod reader;
mod spool;
mod upload;

use std::fmt;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

pub use credentials::Secrets;
pub use reader::{Fetched, RangedReader};
pub use spool::{UploadQueue, UploadReport, Uploader, UploaderConfig};
pub use upload::Uploaded;

/// Why an object-store operation failed. Messages never hold credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is not one this crate handles.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store refused or failed a request.
    #[error("{url}: {what}: {message}")]
    Request {
        /// The object or prefix URL.
        url: String,
        /// What was being done (`reading`, `uploading`, …).
        what: &'static str,
        /// The store client's message, with credentials removed.
        message: String,
        /// Whether the store said the object does not exist.
        not_found: bool,
    },
    /// A local file could not be read.
    #[error("{path}: {source}")]
    Local {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store holds other bytes than were uploaded.
    #[error("{url}: the store holds {found}, but {expected} was uploaded")]
    Mismatch {
        /// The object URL.
        url: String,
        /// What was uploaded (size and checksum).
        expected: String,
        /// What the store reports.
        found: String,
    },
}

impl StoreError {
    /// Whether the store said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::Request {
                not_found: true,
                ..
            }
        )
    }
}

/// Tells whether `arg` names an object-store location rather than a local
/// path: it starts with a scheme this crate handles (`s3://`, `s3a://`,
/// `gs://`, `az://`, `abfs://`, `abfss://`, `file://`).
pub fn is_store_url(arg: &str) -> bool {
    SCHEMES.iter().any(|scheme| {
        arg.len() > scheme.len() + 3
            && arg.starts_with(scheme)
            && arg[scheme.len()..].starts_with("://")
    })
}

const SCHEMES: [&str; 7] = ["s3", "s3a", "gs", "az", "abfs", "abfss", "file"];

/// How a request is retried: a few times within 15 seconds (the crate's
/// default is ten times within three minutes), so a reader facing an
/// unreachable store says so promptly; the uploader keeps its own,
/// longer-lived retry schedule around single attempts.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(15),
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its full URL.
    pub url: String,
    /// Its key (path within the bucket or directory).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A bucket (or directory) with a client, and a key prefix within it.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// `scheme://bucket` (or `file://`), without a trailing slash.
    base: String,
    /// The key prefix (no leading or trailing slash; may be empty).
    prefix: String,
    secrets: Secrets,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store of `url` (`s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix`, `file:///absolute/dir`). Nothing is sent
    /// until a request is made.
    ///
    /// S3 takes its settings from the standard `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP`, …), then from the profile `AWS_PROFILE` (else
    /// `default`) of `~/.aws/credentials` and `~/.aws/config` for what the
    /// environment does not set.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &[])
    }

    /// [`Store::open`], with S3 settings that take precedence over the
    /// environment and files: pairs of an `object_store` S3 config key
    /// (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_region`, `aws_allow_http`, …) and its value. Values of the
    /// credential keys are scrubbed from messages like the others.
    pub fn open_with(url: &str, s3_settings: &[(&str, &str)]) -> Result<Store, StoreError> {
        let bad = |reason: String| StoreError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let parsed = Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
        let scheme = parsed.scheme().to_owned();
        let mut secrets = Secrets::from_env();
        if !s3_settings.is_empty() && !matches!(scheme.as_str(), "s3" | "s3a") {
            return Err(bad(
                "S3 settings given for a store that is not S3".to_owned()
            ));
        }
        let (inner, base): (Arc<dyn ObjectStore>, String) = match scheme.as_str() {
            "s3" | "s3a" => {
                let (mut builder, secrets_from_files) = credentials::s3_builder();
                for (key, value) in s3_settings {
                    let config_key = key
                        .parse::<object_store::aws::AmazonS3ConfigKey>()
                        .map_err(|_| bad(format!("unknown S3 setting {key}")))?;
                    if matches!(
                        *key,
                        "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token"
                    ) {
                        secrets = secrets.merged(&Secrets::of(value));
                    }
                    builder = builder.with_config(config_key, *value);
                }
                let store = builder
                    .with_url(url)
                    .with_retry(retry())
                    .build()
                    .map_err(|e| bad(secrets.merged(&secrets_from_files).scrub(&e.to_string())))?;
                let bucket = parsed.host_str().unwrap_or_default();
                return Store::finish(
                    Arc::new(store),
                    format!("{scheme}://{bucket}"),
                    parsed.path(),
                    secrets.merged(&secrets_from_files),
                );
            }
            "gs" => {
                let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry())
                    .build()
                    .map_err(|e| bad(secrets.scrub(&e.to_string())))?;
                let bucket = parsed.host_str().unwrap_or_default();
                (Arc::new(store), format!("gs://{bucket}"))
            }
            "az" | "abfs" | "abfss" => {
                let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry())
                    .build()
                    .map_err(|e| bad(secrets.scrub(&e.to_string())))?;
                let container = parsed.host_str().unwrap_or_default();
                (Arc::new(store), format!("{scheme}://{container}"))
            }
            "file" => {
                if parsed
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(bad("a file:// URL names no host (file:///dir)".to_owned()));
                }
                (
                    Arc::new(object_store::local::LocalFileSystem::new()),
                    "file://".to_owned(),
                )
            }
            other => return Err(bad(format!("unsupported scheme {other}://"))),
        };
        Store::finish(inner, base, parsed.path(), secrets)
    }

    fn finish(
        inner: Arc<dyn ObjectStore>,
        base: String,
        path: &str,
        secrets: Secrets,
    ) -> Result<Store, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| StoreError::Local {
                path: "(runtime)".to_owned(),
                source,
            })?;
        let prefix = ObjectPath::from_url_path(path)
            .map(|p| p.to_string())
            .unwrap_or_else(|_| path.trim_matches('/').to_owned());
        Ok(Store {
            inner,
            base,
            prefix,
            secrets,
            runtime: Arc::new(runtime),
        })
    }

    /// The URL of the key `key`.
    pub fn url_of(&self, key: &str) -> String {
        if self.base == "file://" {
            format!("file:///{key}")
        } else {
            format!("{}/{key}", self.base)
        }
    }

    /// The key prefix this store was opened with (no slashes at the ends).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `name` under the prefix.
    pub fn key_of(&self, name: &str) -> String {
        let name = name.trim_start_matches('/');
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn request_error(&self, url: &str, what: &'static str, err: object_store::Error) -> StoreError {
        let not_found = matches!(err, object_store::Error::NotFound { .. });
        StoreError::Request {
            url: url.to_owned(),
            what,
            message: self.secrets.scrub(&err.to_string()),
            not_found,
        }
    }

    /// The size of the object at `key`.
    pub fn size_of(&self, key: &str) -> Result<u64, StoreError> {
        let path = ObjectPath::from(key);
        self.runtime
            .block_on(self.inner.head(&path))
            .map(|meta| meta.size)
            .map_err(|e| self.request_error(&self.url_of(key), "looking up", e))
    }

    /// Opens the object at the store's own path (the URL it was opened
    /// with names one object) for ranged reading.
    pub fn reader(&self) -> Result<RangedReader, StoreError> {
        self.reader_of(&self.prefix.clone())
    }

    /// Opens the object at `key` for ranged reading.
    pub fn reader_of(&self, key: &str) -> Result<RangedReader, StoreError> {
        let size = self.size_of(key)?;
        Ok(RangedReader::new(self.clone_handle(), key.to_owned(), size))
    }

    /// Every object under the store's prefix (as a directory: `prefix/…`),
    /// sorted by key.
    pub fn list(&self) -> Result<Vec<ObjectInfo>, StoreError> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let url = self.url_of(&self.prefix);
        let listed: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.inner.list(Some(&prefix)).try_collect())
            .map_err(|e| self.request_error(&url, "listing", e))?;
        let mut objects: Vec<ObjectInfo> = listed
            .into_iter()
            .map(|meta| {
                let key = meta.location.to_string();
                ObjectInfo {
                    url: self.url_of(&key),
                    key,
                    size: meta.size,
                }
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// A cheap second handle on the same client and runtime.
    fn clone_handle(&self) -> Store {
        Store {
            inner: Arc::clone(&self.inner),
            base: self.base.clone(),
            prefix: self.prefix.clone(),
            secrets: self.secrets.clone(),
            runtime: Arc::clone(&self.runtime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_told_from_paths() {
        assert!(is_store_url("s3://bucket/key.nixcap"));
        assert!(is_store_url("file:///tmp/x"));
        assert!(is_store_url("gs://b/p"));
        assert!(!is_store_url("s3:/bucket"));
        assert!(!is_store_url("s3://"));
        assert!(!is_store_url("captures/s3://x"));
        assert!(!is_store_url("build.nixcap"));
        assert!(!is_store_url("http://example/x"));
    }

    #[test]
    fn unsupported_and_malformed_urls_are_refused_clearly() {
        let err = Store::open("ftp://host/x").unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme ftp://"),
            "{err}"
        );
        let err = Store::open("file://otherhost/x").unwrap_err();
        assert!(err.to_string().contains("names no host"), "{err}");
    }

    #[test]
    fn keys_and_urls_of_a_local_directory() {
        let store = Store::open("file:///var/captures/").unwrap();
        assert_eq!(store.prefix(), "var/captures");
        assert_eq!(store.key_of("a.nixcap"), "var/captures/a.nixcap");
        assert_eq!(
            store.url_of("var/captures/a.nixcap"),
            "file:///var/captures/a.nixcap"
        );
    }
}
