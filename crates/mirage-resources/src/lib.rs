//! Mirage's remote resources: backends that live on a server rather than on this machine.
//!
//! Each is a [`Resource`] like the built-in memory and local ones, so it mounts anywhere in
//! a session's tree, passes the same conformance suite, and is reached the same three ways
//! (the API, a FUSE mount, a sandboxed run).
//!
//! - [`ObjectResource`]: a bucket or a prefix of one in an object store: Amazon S3 and
//!   S3-compatible servers (`s3://`), Google Cloud Storage (`gs://`), Azure Blob Storage
//!   (`az://`), through the `object_store` crate.
//! - `WebDavResource` (the `webdav` feature): a collection on a WebDAV server such as
//!   Nextcloud or Apache's mod_dav (`webdav://`, `davs://`, `nextcloud://`).
//! - `GitHubResource` (the `github` feature): a repository at a branch, tag or commit, read
//!   lazily through the REST API (`github://owner/repo@ref/path`); read-only for now.
//!
//! [`open`] turns a URL into the right resource:
//!
//! ```no_run
//! use mirage_core::{Mirage, MountOptions};
//!
//! # async fn example() -> mirage_core::Result<()> {
//! let mirage = Mirage::new();
//! let bucket = mirage_resources::open("s3://my-bucket/data?region=eu-west-1")?;
//! mirage.mount("/data", bucket, MountOptions::default())?;
//! let session = mirage.create_session("agent")?;
//! let listing = session.read_dir("/data").await?;
//! # Ok(())
//! # }
//! ```

mod cache;
#[cfg(feature = "github")]
mod github;
mod object;
mod options;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "webdav")]
mod webdav;

use std::sync::Arc;

use mirage_core::{Error, ErrorKind, Resource, Result};

#[cfg(feature = "github")]
pub use github::{GitHubOptions, GitHubResource};
pub use object::{ObjectOptions, ObjectResource};
#[cfg(feature = "webdav")]
pub use webdav::{WebDavOptions, WebDavResource};

/// The URL schemes [`open`] understands (with their `://`), for messages and help texts.
pub fn schemes() -> Vec<&'static str> {
    let mut schemes = vec!["s3://", "gs://", "az://"];
    if cfg!(feature = "webdav") {
        schemes.extend(["webdav://", "davs://", "webdavs://", "nextcloud://"]);
    }
    if cfg!(feature = "github") {
        schemes.push("github://");
    }
    schemes
}

/// Opens the resource a URL names, with the options its query string gives (see
/// [`ObjectOptions::from_url`] for object stores, `WebDavOptions::from_url` for WebDAV
/// servers, and `GitHubResource::open` for repositories).
///
/// # Errors
/// `InvalidInput` for a URL that does not parse, an unknown scheme or option, or a bad option
/// value; whatever the backend reports when it cannot be set up (no credentials, say).
pub fn open(url: &str) -> Result<Arc<dyn Resource>> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "s3" | "s3a" | "gs" | "az" | "adl" | "azure" | "abfs" | "abfss" => {
            Ok(Arc::new(ObjectResource::open(url, ObjectOptions::default())?))
        }
        #[cfg(feature = "webdav")]
        "webdav" | "davs" | "webdavs" | "nextcloud" => {
            Ok(Arc::new(WebDavResource::open(url, WebDavOptions::default())?))
        }
        #[cfg(feature = "github")]
        "github" => Ok(Arc::new(GitHubResource::open(url, GitHubOptions::default())?)),
        _ => Err(Error::new(ErrorKind::InvalidInput, "mount")
            .with_detail(format!("unknown resource URL '{url}' (expected one of {})", schemes().join(", ")))),
    }
}
