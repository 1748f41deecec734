//! Credentials: the standard environment and the AWS shared files, and the
//! list of secret values to scrub from every message.
//!
//! `object_store` reads the `AWS_*`, `GOOGLE_*` and `AZURE_*` variables
//! itself. It does not read the AWS shared files, so for S3 this module
//! fills from them what the environment leaves unset: the profile
//! `AWS_PROFILE` (else `default`) of `AWS_SHARED_CREDENTIALS_FILE` (else
//! `~/.aws/credentials`: `aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`) and of `AWS_CONFIG_FILE` (else `~/.aws/config`,
//! sections `[profile NAME]` or `[default]`: `region`, `endpoint_url`, and
//! the same three keys).

use std::collections::BTreeMap;
use std::path::PathBuf;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

/// Variables whose values are secrets (or identify an account) and must
/// never appear in a message.
const SECRET_VARS: [&str; 9] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_SECRET",
];

/// Secret values in use, to be removed from any text shown to a person.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.0.len())
    }
}

impl Secrets {
    /// The secret values of the environment.
    pub fn from_env() -> Secrets {
        let mut secrets = Secrets::default();
        for var in SECRET_VARS {
            if let Ok(value) = std::env::var(var) {
                secrets.add(&value);
            }
        }
        secrets
    }

    /// One secret value.
    pub fn of(value: &str) -> Secrets {
        let mut secrets = Secrets::default();
        secrets.add(value);
        secrets
    }

    fn add(&mut self, value: &str) {
        // Values this short would scrub ordinary words; no real key is.
        if value.len() >= 4 && !self.0.iter().any(|v| v == value) {
            self.0.push(value.to_owned());
        }
    }

    /// Both sets.
    pub fn merged(&self, other: &Secrets) -> Secrets {
        let mut out = self.clone();
        for value in &other.0 {
            out.add(value);
        }
        out
    }

    /// `text` with every secret value replaced by `<redacted>` (longest
    /// first, so a value containing another is removed whole).
    pub fn scrub(&self, text: &str) -> String {
        let mut values: Vec<&String> = self.0.iter().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for value in values {
            out = out.replace(value.as_str(), "<redacted>");
        }
        out
    }
}

/// One profile's keys from an INI-style AWS file.
pub(crate) fn profile_section(text: &str, wanted: &[String]) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = wanted.iter().any(|w| w == name);
            continue;
        }
        if inside {
            if let Some((key, value)) = line.split_once('=') {
                values
                    .entry(key.trim().to_ascii_lowercase())
                    .or_insert_with(|| value.trim().to_owned());
            }
        }
    }
    values
}

fn home_file(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(default)),
    }
}

/// What the AWS shared files say for the current profile.
fn shared_file_settings() -> BTreeMap<String, String> {
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let mut settings = BTreeMap::new();
    if let Some(path) = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials") {
        if let Ok(text) = std::fs::read_to_string(path) {
            settings.extend(profile_section(&text, std::slice::from_ref(&profile)));
        }
    }
    if let Some(path) = home_file("AWS_CONFIG_FILE", ".aws/config") {
        if let Ok(text) = std::fs::read_to_string(path) {
            let names = [format!("profile {profile}"), profile.clone()];
            for (key, value) in profile_section(&text, &names) {
                settings.entry(key).or_insert(value);
            }
        }
    }
    settings
}

/// An S3 builder from the environment, completed from the AWS shared
/// files, and the secrets that came from the files.
pub(crate) fn s3_builder() -> (AmazonS3Builder, Secrets) {
    let mut builder = AmazonS3Builder::from_env();
    let mut secrets = Secrets::default();
    let settings = shared_file_settings();
    let env_set = |var: &str| std::env::var_os(var).is_some();
    let pairs: [(&str, &[&str], AmazonS3ConfigKey, bool); 5] = [
        (
            "aws_access_key_id",
            &["AWS_ACCESS_KEY_ID"],
            AmazonS3ConfigKey::AccessKeyId,
            true,
        ),
        (
            "aws_secret_access_key",
            &["AWS_SECRET_ACCESS_KEY"],
            AmazonS3ConfigKey::SecretAccessKey,
            true,
        ),
        (
            "aws_session_token",
            &["AWS_SESSION_TOKEN"],
            AmazonS3ConfigKey::Token,
            true,
        ),
        (
            "region",
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
            AmazonS3ConfigKey::Region,
            false,
        ),
        (
            "endpoint_url",
            &["AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
            AmazonS3ConfigKey::Endpoint,
            false,
        ),
    ];
    // Keys from a file only fill in for a pair the environment left unset
    // entirely, so a key id and a secret always come from the same place.
    let credentials_from_env = env_set("AWS_ACCESS_KEY_ID") || env_set("AWS_SECRET_ACCESS_KEY");
    for (file_key, vars, config_key, secret) in pairs {
        let Some(value) = settings.get(file_key) else {
            continue;
        };
        let set_in_env = if secret {
            credentials_from_env
        } else {
            vars.iter().any(|v| env_set(v))
        };
        if set_in_env {
            continue;
        }
        if secret {
            secrets.add(value);
        }
        if file_key == "endpoint_url" && value.starts_with("http://") && !env_set("AWS_ALLOW_HTTP")
        {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_config(config_key, value);
    }
    (builder, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_sections_are_read() {
        let text = "\
# comment
[default]
aws_access_key_id = AKIDEFAULT
aws_secret_access_key = secretdefault

[profile farm]
region=eu-west-1
endpoint_url = http://127.0.0.1:9000
[farm]
aws_access_key_id = AKIFARM
";
        let default = profile_section(text, &["default".to_owned()]);
        assert_eq!(default["aws_access_key_id"], "AKIDEFAULT");
        assert_eq!(default["aws_secret_access_key"], "secretdefault");
        assert_eq!(default.len(), 2);
        let farm = profile_section(text, &["profile farm".to_owned(), "farm".to_owned()]);
        assert_eq!(farm["region"], "eu-west-1");
        assert_eq!(farm["endpoint_url"], "http://127.0.0.1:9000");
        assert_eq!(farm["aws_access_key_id"], "AKIFARM");
    }

    #[test]
    fn secrets_are_scrubbed_longest_first() {
        let mut secrets = Secrets::default();
        secrets.add("abcd");
        secrets.add("abcdefgh");
        secrets.add("xy");
        assert_eq!(
            secrets.scrub("key abcdefgh and abcd, xy"),
            "key <redacted> and <redacted>, xy"
        );
        assert_eq!(format!("{secrets:?}"), "Secrets(2 values)");
    }
}
