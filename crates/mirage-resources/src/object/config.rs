//! Opening an object store from a URL: the scheme picks the store, the query string and the
//! environment configure it, and (for S3) the AWS profile files supply credentials when the
//! environment does not.

use std::sync::Arc;
use std::time::Duration;

use mirage_core::{Error, ErrorKind, Result};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use super::profile;
use crate::options::{self, invalid};

/// How an [`super::ObjectResource`] talks to its store. Every field can also be set in the
/// URL's query string (`s3://bucket/prefix?cache_ttl=30s&endpoint=http://127.0.0.1:9000`);
/// keys Mirage does not know are handed to the store's builder as `object_store` config keys
/// (`endpoint`, `region`, `access_key_id`, `secret_access_key`, `token`, ...).
#[derive(Clone, Debug)]
pub struct ObjectOptions {
    /// How long listings and object metadata are trusted before the store is asked again
    /// (`cache_ttl`). Changes made through this resource refresh them at once; changes by
    /// others show after at most this long. Zero turns the cache off.
    pub cache_ttl: Duration,
    /// The longest one request may take (`timeout`).
    pub timeout: Duration,
    /// The longest connecting may take (`connect_timeout`).
    pub connect_timeout: Duration,
    /// How often a failed request is retried (`retries`).
    pub retries: usize,
    /// The longest a request and its retries may take together (`retry_timeout`).
    pub retry_timeout: Duration,
    /// Files at least this large are uploaded in parts (`multipart_threshold`).
    pub multipart_threshold: usize,
    /// The size of each part of a multipart upload, 5 MiB at least (`part_size`).
    pub part_size: usize,
    /// Refuse every change (`read_only`).
    pub read_only: bool,
    /// Options for the store's builder, as `object_store` config keys and values.
    pub store: Vec<(String, String)>,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions {
            cache_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            retry_timeout: Duration::from_secs(20),
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            read_only: false,
            store: Vec::new(),
        }
    }
}

const MIN_PART: usize = 5 << 20;

impl ObjectOptions {
    /// Applies the options in `url`'s query string on top of these, and returns the URL
    /// without its query.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that does not parse or a value that does not.
    pub fn from_url(self, url: &str) -> Result<(Self, Url)> {
        options::apply_query(self, url, Self::set)
    }

    /// Sets one option by its query-string name.
    ///
    /// # Errors
    /// `InvalidInput` when the value does not parse.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "cache_ttl" => self.cache_ttl = options::duration(key, value)?,
            "timeout" => self.timeout = options::duration(key, value)?,
            "connect_timeout" => self.connect_timeout = options::duration(key, value)?,
            "retry_timeout" => self.retry_timeout = options::duration(key, value)?,
            "retries" => self.retries = options::number(key, value)?,
            "multipart_threshold" => self.multipart_threshold = options::size(key, value)?,
            "part_size" => {
                let size = options::size(key, value)?;
                if size < MIN_PART {
                    return Err(options::bad_value(key, value, "a size of 5MiB or more"));
                }
                self.part_size = size;
            }
            "read_only" => self.read_only = options::flag(key, value)?,
            // Path-style addressing (`http://host/bucket/key`) is object_store's default;
            // `path_style=false` asks for virtual-hosted style (`http://bucket.host/key`).
            "path_style" => {
                let path_style = options::flag(key, value)?;
                self.store.push(("virtual_hosted_style_request".into(), (!path_style).to_string()));
            }
            _ => self.store.push((key.to_owned(), value.to_owned())),
        }
        Ok(())
    }

    /// The store option `key` (any of its spellings), if set.
    fn store_option(&self, keys: &[&str]) -> Option<&str> {
        self.store.iter().rev().find(|(k, _)| keys.contains(&k.to_ascii_lowercase().as_str())).map(|(_, v)| v.as_str())
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig { max_retries: self.retries, retry_timeout: self.retry_timeout, ..RetryConfig::default() }
    }

    fn client(&self, endpoint: Option<&str>) -> ClientOptions {
        ClientOptions::new()
            .with_timeout(self.timeout)
            .with_connect_timeout(self.connect_timeout)
            .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
    }
}

/// A store opened from a URL, with what messages should call it.
pub(super) struct Opened {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) root: Path,
    pub(super) describe: String,
}

/// Opens the store `url` names (its query already applied to `options`).
pub(super) fn open(url: &Url, options: &ObjectOptions) -> Result<Opened> {
    let (scheme, path) = ObjectStoreScheme::parse(url).map_err(|e| invalid(format!("'{url}': {e}")))?;
    let root = Path::parse(path).map_err(|e| invalid(format!("'{url}': {e}")))?;
    let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    let unknown = |e: object_store::Error| invalid(format!("'{url}': {e}"));
    let built = |e: object_store::Error| {
        Error::new(ErrorKind::InvalidInput, "mount").with_detail(format!("cannot open '{url}': {e}"))
    };
    let (store, endpoint): (Arc<dyn ObjectStore>, String) = match scheme {
        #[cfg(feature = "s3")]
        ObjectStoreScheme::AmazonS3 => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut builder = AmazonS3Builder::from_env().with_url(base);
            let has_key = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
                || options.store_option(&["access_key_id", "aws_access_key_id"]).is_some();
            if !has_key && let Some(profile) = profile::load() {
                builder = profile.apply(builder);
            }
            for (key, value) in &options.store {
                let key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().map_err(unknown)?;
                builder = builder.with_config(key, value);
            }
            let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_else(|| {
                let region = builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or("us-east-1".into());
                format!("https://s3.{region}.amazonaws.com")
            });
            let builder = builder.with_retry(options.retry()).with_client_options(options.client(Some(&endpoint)));
            (Arc::new(builder.build().map_err(built)?), endpoint)
        }
        #[cfg(feature = "gcs")]
        ObjectStoreScheme::GoogleCloudStorage => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            let mut builder = GoogleCloudStorageBuilder::from_env().with_url(base);
            for (key, value) in &options.store {
                let key: GoogleConfigKey = key.to_ascii_lowercase().parse().map_err(unknown)?;
                builder = builder.with_config(key, value);
            }
            let builder = builder.with_retry(options.retry()).with_client_options(options.client(None));
            (Arc::new(builder.build().map_err(built)?), "https://storage.googleapis.com".into())
        }
        #[cfg(feature = "azure")]
        ObjectStoreScheme::MicrosoftAzure => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (key, value) in &options.store {
                let key: AzureConfigKey = key.to_ascii_lowercase().parse().map_err(unknown)?;
                builder = builder.with_config(key, value);
            }
            let endpoint = builder.get_config_value(&AzureConfigKey::Endpoint).unwrap_or_else(|| base.clone());
            let builder = builder.with_retry(options.retry()).with_client_options(options.client(Some(&endpoint)));
            (Arc::new(builder.build().map_err(built)?), endpoint)
        }
        other => {
            return Err(invalid(format!(
                "'{url}': {other:?} URLs are not supported here (s3://, gs:// and az:// are)"
            )));
        }
    };
    let mut describe = url.to_string();
    describe.push_str(&format!(" (endpoint {endpoint})"));
    Ok(Opened { store, root, describe })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_sets_options_and_is_removed() {
        let (options, url) = ObjectOptions::default()
            .from_url(
                "s3://bucket/some/prefix?cache_ttl=1s&endpoint=http://127.0.0.1:9000&read_only=true&path_style=true",
            )
            .unwrap();
        assert_eq!(url.as_str(), "s3://bucket/some/prefix");
        assert_eq!(options.cache_ttl, Duration::from_secs(1));
        assert!(options.read_only);
        assert_eq!(options.store_option(&["endpoint"]), Some("http://127.0.0.1:9000"));
        assert_eq!(options.store_option(&["virtual_hosted_style_request"]), Some("false"));
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        let e = ObjectOptions::default().from_url("s3://b/p?part_size=1MiB").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("part_size=1MiB"), "{e}");
        let e = ObjectOptions::default().from_url("not a url").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[cfg(feature = "s3")]
    #[test]
    fn an_unknown_store_option_is_refused() {
        let (options, url) = ObjectOptions::default().from_url("s3://bucket/p?no_such_option=1").unwrap();
        let e = open(&url, &options).err().expect("unknown key refused");
        assert!(e.to_string().contains("no_such_option"), "{e}");
    }
}
