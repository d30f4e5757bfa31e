//! The `Mirage` class (mount table and sessions) and the resource constructors.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use mirage_core::{LocalResource, MemoryResource, MountOptions};

use crate::convert::js_error;
use napi::threadsafe_function::ThreadsafeFunction;

use crate::js_resource::{JsResource, ResourceCall, ResourceReply};
use crate::session::Session;

/// A backend that can be mounted: made by `memory()`, `local(dir)` or `custom(...)`.
#[napi]
pub struct Resource {
    pub(crate) inner: Arc<dyn mirage_core::Resource>,
}

#[napi]
impl Resource {
    /// True when the resource refuses every write.
    #[napi(getter)]
    pub fn read_only(&self) -> bool {
        self.inner.capabilities().read_only
    }
}

/// A filesystem in RAM.
///
/// ```js
/// mirage.mount('/scratch', memory())
/// ```
#[napi]
pub fn memory() -> Resource {
    Resource { inner: Arc::new(MemoryResource::new()) }
}

/// A host directory, confined to it: neither `..` nor a symbolic link inside it reaches
/// outside.
///
/// ```js
/// mirage.mount('/project', local('./my-project'))
/// ```
#[napi]
pub fn local(dir: String, read_only: Option<bool>) -> Result<Resource> {
    let resource = LocalResource::new(&dir).map_err(js_error)?;
    let resource = if read_only.unwrap_or(false) { resource.read_only() } else { resource };
    Ok(Resource { inner: Arc::new(resource) })
}

/// A remote resource named by a URL: an S3 bucket or prefix (`s3://bucket/prefix`), Google
/// Cloud Storage (`gs://`), Azure Blob Storage (`az://`), a WebDAV collection (`webdav://`,
/// `davs://`, `nextcloud://host/user/path`), a GitHub repository, read-only
/// (`github://owner/repo@ref/path`). Options go in the query string
/// (`?endpoint=...&region=...&cache_ttl=30s`); credentials come from the usual environment
/// variables (and the AWS profile files).
///
/// ```js
/// mirage.mount('/data', remote('s3://my-bucket/data?region=eu-west-1'))
/// ```
#[napi]
pub fn remote(url: String) -> Result<Resource> {
    Ok(Resource { inner: mirage_resources::open(&url).map_err(js_error)? })
}

/// Sets (or, with `null`, lifts) the most file content the sessions of this process may hold
/// in memory, in bytes: past it, writes fail with `ENOSPC`, as on a full disk. Set it before
/// sessions take in content (content taken in earlier is not counted).
#[napi]
pub fn set_content_limit(bytes: Option<f64>) -> Result<()> {
    let limit = match bytes {
        None => None,
        // Above 2^53 a number no longer holds every whole value.
        Some(bytes) if bytes >= 1.0 && bytes.fract() == 0.0 && bytes <= 9_007_199_254_740_991.0 => Some(bytes as u64),
        Some(bytes) => {
            return Err(js_error(
                mirage_core::Error::new(mirage_core::ErrorKind::InvalidInput, "setContentLimit")
                    .with_detail(format!("a content limit is a whole number of bytes, not {bytes}")),
            ));
        }
    };
    mirage_core::set_content_limit(limit);
    Ok(())
}

/// How much content the sessions of this process hold against the limit.
#[napi(object)]
pub struct ContentUsage {
    /// Bytes counted now (0 while there is no limit).
    pub held: f64,
    /// The limit in bytes, or `null` when there is none.
    pub limit: Option<f64>,
    /// Writes the limit has refused so far.
    pub refused: f64,
}

/// How much content the sessions of this process hold against the limit.
#[napi]
pub fn content_usage() -> ContentUsage {
    ContentUsage {
        held: mirage_core::content_held() as f64,
        limit: mirage_core::content_limit().map(|limit| limit as f64),
        refused: mirage_core::content_refusals() as f64,
    }
}

/// A resource implemented in JavaScript. `dispatch` is called with one `ResourceCall` per
/// primitive and resolves to a `ResourceReply`; `ops` names the primitives it implements.
/// The `@mirage/vfs` wrapper builds both from an object implementing its `Resource`
/// interface.
#[napi]
pub fn custom(
    dispatch: ThreadsafeFunction<ResourceCall, Promise<ResourceReply>, ResourceCall, Status, false, true>,
    ops: Vec<String>,
    name: String,
) -> Resource {
    Resource { inner: Arc::new(JsResource::new(dispatch, ops, name)) }
}

/// The mount table and every session.
///
/// ```js
/// const mirage = new Mirage()
/// mirage.mount('/data', memory())
/// const main = mirage.createSession('main')
/// ```
#[napi]
pub struct Mirage {
    inner: mirage_core::Mirage,
}

#[napi]
impl Mirage {
    /// An empty tree with in-memory sessions.
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Mirage { inner: mirage_core::Mirage::new() }
    }

    /// Opens (or creates) a persistent session store in `dir`; every session in it is
    /// restored. Mount the resources again after opening.
    #[napi(factory)]
    pub fn open(dir: String) -> Result<Self> {
        Ok(Mirage { inner: mirage_core::Mirage::open(dir).map_err(js_error)? })
    }

    /// Mounts `resource` at `path`.
    #[napi]
    pub fn mount(&self, path: String, resource: &Resource, read_only: Option<bool>) -> Result<()> {
        let options = MountOptions { read_only: read_only.unwrap_or(false) };
        self.inner.mount(&path, resource.inner.clone(), options).map_err(js_error)
    }

    /// Unmounts whatever is mounted at `path`.
    #[napi]
    pub fn unmount(&self, path: String) -> Result<()> {
        self.inner.unmount(&path).map(drop).map_err(js_error)
    }

    /// Mount points, in path order.
    #[napi]
    pub fn mounts(&self) -> Vec<MountInfo> {
        self.inner
            .mounts()
            .iter()
            .map(|m| MountInfo { path: m.point().to_string(), read_only: m.is_read_only() })
            .collect()
    }

    /// Creates a root session: its commits go to the resources.
    #[napi]
    pub fn create_session(&self, name: String) -> Result<Session> {
        self.inner.create_session(&name).map(Session::from).map_err(js_error)
    }

    /// The existing session called `name`.
    #[napi]
    pub fn session(&self, name: String) -> Result<Session> {
        self.inner.session(&name).map(Session::from).map_err(js_error)
    }

    /// Every session: name, parent and number of changed paths.
    #[napi]
    pub fn sessions(&self) -> Vec<SessionSummary> {
        self.inner
            .sessions()
            .into_iter()
            .map(|s| SessionSummary { name: s.name, parent: s.parent, changes: s.changes as u32 })
            .collect()
    }

    /// Makes everything recorded so far durable in the store.
    #[napi]
    pub fn flush(&self) -> Result<()> {
        self.inner.flush().map_err(js_error)
    }
}

/// One mount of the table.
#[napi(object)]
pub struct MountInfo {
    /// The mount point.
    pub path: String,
    /// Whether writes are refused.
    pub read_only: bool,
}

/// One session, as `Mirage.sessions()` lists them.
#[napi(object)]
pub struct SessionSummary {
    /// The session's unique name.
    pub name: String,
    /// Its parent's name, if it is a fork.
    pub parent: Option<String>,
    /// How many paths it changed.
    pub changes: u32,
}
