//! Credentials and region from the AWS profile files (`~/.aws/credentials`, `~/.aws/config`),
//! the way the AWS command-line tools read them, for when the environment has no keys.
//!
//! The profile is `$AWS_PROFILE` (or `default`); the files are `$AWS_SHARED_CREDENTIALS_FILE`
//! and `$AWS_CONFIG_FILE` when set. Only static keys are read (`aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token`, `region`, `endpoint_url`); single sign-on and
//! credential processes are left to the environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What one profile says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Profile {
    values: HashMap<String, String>,
}

/// Reads the profile the environment selects; `None` when the files say nothing about it.
pub(super) fn load() -> Option<Profile> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let credentials = var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| home.join(".aws/credentials"));
    let config = var("AWS_CONFIG_FILE").unwrap_or_else(|| home.join(".aws/config"));
    let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    read(&credentials, &config, &name)
}

fn read(credentials: &Path, config: &Path, name: &str) -> Option<Profile> {
    let mut values = HashMap::new();
    // The config file names sections `[profile NAME]` (but `[default]`); the credentials
    // file names them `[NAME]`, and wins where both set a key.
    let config_section = if name == "default" { "default".to_owned() } else { format!("profile {name}") };
    for (file, section) in [(config, config_section.as_str()), (credentials, name)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            values.extend(section_values(&text, section));
        }
    }
    (!values.is_empty()).then_some(Profile { values })
}

/// The `key = value` pairs of `[section]` in an INI text.
fn section_values(text: &str, section: &str) -> HashMap<String, String> {
    let mut current = None;
    let mut values = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
        } else if current.as_deref() == Some(section)
            && let Some((key, value)) = line.split_once('=')
        {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    values
}

impl Profile {
    /// Hands the profile's keys, region and endpoint to an S3 builder.
    #[cfg(feature = "s3")]
    pub(super) fn apply(&self, mut builder: object_store::aws::AmazonS3Builder) -> object_store::aws::AmazonS3Builder {
        if let Some(v) = self.values.get("aws_access_key_id") {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = self.values.get("aws_secret_access_key") {
            builder = builder.with_secret_access_key(v);
        }
        if let Some(v) = self.values.get("aws_session_token") {
            builder = builder.with_token(v);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            && let Some(v) = self.values.get("region")
        {
            builder = builder.with_region(v);
        }
        if std::env::var_os("AWS_ENDPOINT").is_none()
            && std::env::var_os("AWS_ENDPOINT_URL").is_none()
            && let Some(v) = self.values.get("endpoint_url")
        {
            builder = builder.with_endpoint(v);
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_profile_merges_both_files_and_credentials_win() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = DEFAULTKEY\n\n[work]\n# a comment\naws_access_key_id = WORKKEY\naws_secret_access_key=WORKSECRET\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n[profile work]\nregion = eu-west-3\naws_access_key_id = IGNORED\n",
        )
        .unwrap();
        let work = read(&credentials, &config, "work").unwrap();
        assert_eq!(work.values["aws_access_key_id"], "WORKKEY");
        assert_eq!(work.values["aws_secret_access_key"], "WORKSECRET");
        assert_eq!(work.values["region"], "eu-west-3");
        let default = read(&credentials, &config, "default").unwrap();
        assert_eq!(default.values["aws_access_key_id"], "DEFAULTKEY");
        assert_eq!(default.values["region"], "us-east-1");
        assert_eq!(read(&credentials, &config, "missing"), None);
    }
}
