//! A collection on a WebDAV server (Apache mod_dav, Nextcloud, ownCloud, sabre/dav, ...), as
//! a [`Resource`].
//!
//! # URLs
//!
//! - `webdav://host[:port]/path`: the collection at `http://host[:port]/path/`.
//! - `davs://host[:port]/path` (or `webdavs://`): the same over HTTPS.
//! - `nextcloud://host[:port]/USER/path`: the folder `path` (or all) of Nextcloud user
//!   USER's files, that is `https://host[:port]/remote.php/dav/files/USER/path/`; add
//!   `http=true` for a server that speaks plain HTTP. A Nextcloud installed below a sub-path
//!   (`https://host/nextcloud/`) is mounted with its full WebDAV URL instead:
//!   `davs://host/nextcloud/remote.php/dav/files/USER/`.
//!
//! The collection must exist: it is the resource's root.
//!
//! # Options and credentials
//!
//! The query string sets [`WebDavOptions`]: `cache_ttl`, `timeout`, `connect_timeout`,
//! `retries`, `read_only`, `user`, `password` and `http` (durations read as `10s`, `500ms`,
//! `2m`). The server is logged into with HTTP basic authentication, as `user` and `password`
//! say, or else the URL's own user and password (`davs://alice:secret@host/`), or else the
//! `WEBDAV_USER` and `WEBDAV_PASSWORD` environment variables; for `nextcloud://` the user
//! defaults to USER. Nextcloud accounts with two-factor authentication need an app password.
//! Use HTTPS for anything but a test server: basic authentication sends the password with
//! every request.
//!
//! # Semantics
//!
//! - `stat` is a PROPFIND of depth 0 and `list` one of depth 1 (servers refuse, or answer
//!   slowly, the infinite depth a whole tree would need, so directories are read as they are
//!   visited). Listings and the metadata of single entries are cached for
//!   [`WebDavOptions::cache_ttl`]: a lookup after a listing costs no request. Changes made
//!   through this resource refresh the cache; changes made by others show within that time.
//! - Reads are ranged GETs: only the bytes asked for travel (a server that ignores `Range`
//!   answers with the whole file, which is read up to the end of the range only).
//! - The version of a file is its ETag. A weak ETag (`W/"..."`, which Apache gives a file for
//!   the first second after each change) counts as the same version as the strong one it
//!   turns into. Directories all have the version `dir`.
//! - [`Resource::put`] (what a commit calls) is a conditional PUT: `If-None-Match: *` for a
//!   new file and `If-Match` on the ETag the session saw for a changed one, so a file someone
//!   else created or changed is a `Conflict`, never an overwrite. Before an `If-Match` write,
//!   the current ETag is read: a mismatch fails at once, without uploading, and a weak tag is
//!   waited out (the server cannot compare a weak tag), up to two seconds; a server whose tags
//!   stay weak gets a checked but unconditional write. Content up to 1 MiB goes up in one
//!   piece; larger content is streamed (chunked transfer encoding), never held whole.
//! - `write` at an offset and `truncate` read the whole file and put it back, conditional on
//!   the ETag they read.
//! - `mkdir` is MKCOL, `remove` a DELETE of a file (a directory is refused with
//!   `IsADirectory` after a fresh PROPFIND, since a DELETE of a collection takes all of it)
//!   and `rmdir` a DELETE of a collection that a fresh PROPFIND found empty; a file someone
//!   adds in between goes with it.
//! - `rename` is a MOVE with `Overwrite: T`: atomic on the server for what moves. The
//!   resource refuses to replace a directory with a file, a file with a directory, or a
//!   non-empty directory. Replacing an existing entry is a delete and a move on some servers
//!   (Apache's mod_dav_fs), so others may briefly see no entry at the destination.
//! - WebDAV stores no permission bits, symbolic links or settable times: `set_mode`,
//!   `symlink` and `set_times` are `ENOTSUP`.
//! - Requests that only read (PROPFIND, GET) are retried after a connection failure or a
//!   `429`, `502`, `503` or `504` answer; those that change something are not. Failures name
//!   the server; refused credentials say which options set them.

mod client;
mod config;
mod multistatus;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use mirage_core::resource::{once_stream, refuse};
use mirage_core::{
    ByteStream, Capabilities, DirEntry, Error, ErrorKind, FileType, Metadata, Precondition, Resource, Result, VPath,
    Version,
};
use reqwest::header::{ETAG, HeaderMap, HeaderName, IF_MATCH, IF_NONE_MATCH, LAST_MODIFIED, RANGE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::cache::{Listing, MetaCache};
use client::{Server, method};
pub use config::WebDavOptions;
use multistatus::Props;

/// Content up to this size is sent in one piece, with its length; larger content is streamed.
const INLINE_LIMIT: usize = 1 << 20;

/// How long a conditional write waits for a weak ETag to turn strong, and how often it looks.
const WEAK_WAIT: Duration = Duration::from_secs(2);
const WEAK_POLL: Duration = Duration::from_millis(200);

/// A collection on a WebDAV server, mounted as a directory tree.
pub struct WebDavResource {
    server: Server,
    options: WebDavOptions,
    cache: MetaCache,
}

impl fmt::Debug for WebDavResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavResource").field("base", &self.server.base().as_str()).finish_non_exhaustive()
    }
}

/// How far an entry's ETag can be used in `If-Match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// A strong ETag: the server compares it.
    Strong,
    /// A weak one, which `If-Match` never matches.
    Weak,
    /// No ETag: the version is made up from the size and time.
    Missing,
}

/// The version an ETag stands for (without the `W/` of a weak one), and how it can be used.
fn version_of(etag: &str) -> (Version, Tag) {
    match etag.strip_prefix("W/") {
        Some(strong) => (Version(strong.to_owned()), Tag::Weak),
        None => (Version(etag.to_owned()), Tag::Strong),
    }
}

/// The `If-Match` value for a version.
fn if_match(version: &Version) -> String {
    if version.0.starts_with('"') { version.0.clone() } else { format!("\"{}\"", version.0) }
}

fn dir_meta(mtime: SystemTime) -> Metadata {
    Metadata { file_type: FileType::Dir, size: 0, mode: 0o755, mtime, atime: mtime, version: Version("dir".into()) }
}

/// An entry's metadata from the properties a PROPFIND reported.
fn metadata(props: Props) -> (Metadata, Tag) {
    let mtime = props.modified.unwrap_or(UNIX_EPOCH);
    if props.collection {
        return (dir_meta(mtime), Tag::Strong);
    }
    let size = props.length.unwrap_or(0);
    let (version, tag) = match props.etag {
        Some(etag) => version_of(&etag),
        None => {
            let secs = mtime.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            (Version(format!("{size}-{secs}")), Tag::Missing)
        }
    };
    (Metadata { file_type: FileType::File, size, mode: 0o644, mtime, atime: mtime, version }, tag)
}

fn header(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl WebDavResource {
    /// Opens the collection `url` names (`webdav://host/path`, `davs://host/path`,
    /// `nextcloud://host/USER/path`; see the module docs), with `options` and then the URL's
    /// query string applied. Nothing is sent until the first operation.
    ///
    /// # Errors
    /// `InvalidInput` for a URL, option or value that does not parse.
    pub fn open(url: &str, options: WebDavOptions) -> Result<Self> {
        let (options, url) = options.from_url(url)?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let target = config::target(&url, &options, env)?;
        let server = Server::new(target, &options)?;
        Ok(WebDavResource { server, cache: MetaCache::new(options.cache_ttl), options })
    }

    /// The URL of the collection this resource's root stands for.
    pub fn base_url(&self) -> &Url {
        self.server.base()
    }

    fn check_writable(&self, op: &'static str, path: &VPath) -> Result<()> {
        if self.options.read_only { Err(refuse(self, op, path)) } else { Ok(()) }
    }

    /// Asks the server what `path` is now (no cache); `None` when nothing is there.
    async fn current(&self, op: &'static str, path: &VPath) -> Result<Option<(Metadata, Tag)>> {
        let entries = self.server.propfind(op, path, 0, path.is_root()).await?;
        Ok(entries.and_then(|entries| entries.into_iter().next()).map(|entry| metadata(entry.props)))
    }

    /// What `path` is, from the cache when it knows; `None` when nothing is there. A path
    /// below a file fails with `NotADirectory`.
    async fn lookup(&self, path: &VPath) -> Result<Option<Metadata>> {
        let fetch = |path: VPath| async move { Ok(self.current("stat", &path).await?.map(|(meta, _)| meta)) };
        // Through the trait: a boxed future, as listing may look paths up in turn.
        let relist = |dir: VPath| async move { self.list(&dir).await.map(drop) };
        self.cache.lookup(path, fetch, relist).await
    }

    async fn require(&self, op: &'static str, path: &VPath) -> Result<Metadata> {
        self.lookup(path).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, op).with_path(path.clone()))
    }

    /// Lists directory `path` on the server and caches the result.
    async fn fetch_listing(&self, op: &'static str, path: &VPath) -> Result<Arc<Listing>> {
        let Some(entries) = self.server.propfind(op, path, 1, true).await? else {
            // Nothing there (a file's URL ending in `/` is nothing too), or a path below a
            // file: say which.
            let kind = match self.current(op, path).await? {
                Some((meta, _)) if !meta.is_dir() => ErrorKind::NotADirectory,
                Some(_) => ErrorKind::NotFound,
                None => {
                    self.cache.set_entry(path, None);
                    match self.lookup(path).await {
                        Err(e) if e.kind() == ErrorKind::NotADirectory => ErrorKind::NotADirectory,
                        _ => ErrorKind::NotFound,
                    }
                }
            };
            return Err(Error::new(kind, op).with_path(path.clone()));
        };
        let depth = path.components().count();
        let mut listing = Listing::new();
        let mut own = None;
        for entry in entries {
            let Some(components) = self.server.inner_components(&entry.href) else {
                return Err(Error::new(ErrorKind::Io, op).with_path(path.clone()).with_detail(format!(
                    "{} answered with '{}', which is outside it",
                    self.server.base(),
                    entry.href
                )));
            };
            if !components.iter().map(String::as_str).take(depth).eq(path.components()) {
                continue;
            }
            let (meta, _) = metadata(entry.props);
            match components.len() - depth {
                0 => own = Some(meta),
                1 => {
                    let name = &components[depth];
                    // A name no path can hold cannot be reached: leave it out.
                    if path.child(name).is_ok() {
                        listing.insert(name.clone(), meta);
                    }
                }
                _ => {}
            }
        }
        if let Some(meta) = own {
            if !meta.is_dir() {
                return Err(Error::new(ErrorKind::NotADirectory, op).with_path(path.clone()));
            }
            self.cache.set_entry(path, Some(meta));
        }
        let listing = Arc::new(listing);
        self.cache.set_listing(path, listing.clone());
        Ok(listing)
    }

    /// Explains a refused change at `path`: a missing parent (`NotFound`), a parent that is a
    /// file (`NotADirectory`), a directory where a file was meant (`IsADirectory`), or else
    /// `fallback`.
    async fn explain(&self, op: &'static str, path: &VPath, fallback: Error) -> Error {
        self.cache.forget(path);
        if let Some(parent) = path.parent() {
            match self.lookup(&parent).await {
                Ok(None) => {
                    return Error::new(ErrorKind::NotFound, op)
                        .with_path(path.clone())
                        .with_detail("parent directory does not exist");
                }
                Ok(Some(meta)) if !meta.is_dir() => {
                    return Error::new(ErrorKind::NotADirectory, op).with_path(path.clone());
                }
                Err(e) if e.kind() == ErrorKind::NotADirectory => {
                    return Error::new(ErrorKind::NotADirectory, op).with_path(path.clone());
                }
                _ => {}
            }
        }
        match self.lookup(path).await {
            Ok(Some(meta)) if meta.is_dir() => Error::new(ErrorKind::IsADirectory, op).with_path(path.clone()),
            _ => fallback,
        }
    }

    /// The condition for a write over `version`: checks that the server still has it (a
    /// `Conflict` at once if not) and waits while its tag is weak. `None` when the server
    /// offers nothing to compare (no ETag, or one that stays weak): the write is then checked
    /// but not conditional.
    async fn if_match(&self, op: &'static str, path: &VPath, version: &Version) -> Result<Option<String>> {
        let deadline = Instant::now() + WEAK_WAIT;
        loop {
            let Some((meta, tag)) = self.current(op, path).await? else {
                return Err(self.server.conflict(op, path, "removed"));
            };
            if meta.is_dir() {
                return Err(Error::new(ErrorKind::IsADirectory, op).with_path(path.clone()));
            }
            if meta.version != *version {
                return Err(self.server.conflict(op, path, "changed"));
            }
            match tag {
                Tag::Strong => return Ok(Some(if_match(version))),
                Tag::Weak if Instant::now() < deadline => tokio::time::sleep(WEAK_POLL).await,
                Tag::Weak | Tag::Missing => return Ok(None),
            }
        }
    }

    /// PUTs `content` to `path` under `condition` (a header and its value), and returns the
    /// size sent and the answer's headers. A failed condition is a `Conflict`.
    async fn upload(
        &self,
        op: &'static str,
        path: &VPath,
        mut content: ByteStream,
        condition: Option<(HeaderName, String)>,
    ) -> Result<(u64, HeaderMap)> {
        let mut head = Vec::new();
        let mut buffered = 0;
        let mut ended = false;
        while buffered <= INLINE_LIMIT {
            match content.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    buffered += chunk.len();
                    head.push(chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let mut request = self.server.request(Method::PUT, self.server.url(path, false));
        if let Some((name, value)) = condition {
            request = request.header(name, value);
        }
        let sent = if ended {
            let mut body = BytesMut::with_capacity(buffered);
            head.iter().for_each(|chunk| body.extend_from_slice(chunk));
            self.server.send(op, path, request.body(body.freeze())).await.map(|response| (response, buffered as u64))
        } else {
            let content = futures::stream::iter(head.into_iter().map(Ok)).chain(content).boxed();
            self.server.send_streamed(op, path, request, content).await
        };
        let (response, size) = sent.inspect_err(|_| self.cache.forget(path))?;
        if response.status().is_success() {
            return Ok((size, response.headers().clone()));
        }
        self.cache.forget(path);
        Err(self.refused_change(op, path, &response).await)
    }

    /// The error for a refused PUT, MKCOL or MOVE to `path`.
    async fn refused_change(&self, op: &'static str, path: &VPath, response: &Response) -> Error {
        let refusal = self.server.refusal(op, path, response);
        match response.status().as_u16() {
            // A missing parent, a parent that is a file, a directory in the way.
            400 | 405 | 409 => self.explain(op, path, refusal).await,
            _ => refusal,
        }
    }

    /// Records what was just put at `path` and returns it: from the answer's ETag when it has
    /// one, or else from a PROPFIND (Apache sends no ETag with a PUT).
    async fn uploaded(&self, op: &'static str, path: &VPath, size: u64, headers: &HeaderMap) -> Result<Metadata> {
        let now = SystemTime::now();
        let meta = match header(headers, ETAG) {
            Some(etag) => {
                let mtime = header(headers, LAST_MODIFIED).and_then(multistatus::http_date).unwrap_or(now);
                let version = version_of(etag).0;
                Metadata { file_type: FileType::File, size, mode: 0o644, mtime, atime: mtime, version }
            }
            None => match self.current(op, path).await? {
                Some((meta, _)) => meta,
                // Gone already: a version nothing matches, so a later change conflicts.
                None => {
                    self.cache.forget(path);
                    let version = Version(String::new());
                    return Ok(Metadata {
                        file_type: FileType::File,
                        size,
                        mode: 0o644,
                        mtime: now,
                        atime: now,
                        version,
                    });
                }
            },
        };
        self.cache.stored(path, meta.clone());
        Ok(meta)
    }

    /// The whole file at `path`, and the condition for putting it back.
    async fn get_whole(&self, op: &'static str, path: &VPath) -> Result<(Vec<u8>, Option<(HeaderName, String)>)> {
        if self.require(op, path).await?.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, op).with_path(path.clone()));
        }
        let url = self.server.url(path, false);
        let response = self.server.send_retrying(op, path, || self.server.request(Method::GET, url.clone())).await?;
        if response.status() != StatusCode::OK {
            self.cache.forget(path);
            return Err(self.server.refusal(op, path, &response));
        }
        let etag = header(response.headers(), ETAG).map(version_of);
        let content = response.bytes().await.map_err(|e| self.server.unreachable(op, path, &e))?;
        let condition = match etag {
            Some((version, Tag::Strong)) => Some(if_match(&version)),
            Some((version, _)) => self.if_match(op, path, &version).await?,
            None => None,
        };
        Ok((content.to_vec(), condition.map(|tag| (IF_MATCH, tag))))
    }

    /// Puts `content` back at `path` under `condition`, as `write` and `truncate` do.
    async fn put_back(
        &self,
        op: &'static str,
        path: &VPath,
        content: Vec<u8>,
        condition: Option<(HeaderName, String)>,
    ) -> Result<()> {
        let result = self.upload(op, path, once_stream(Bytes::from(content)), condition).await;
        self.cache.forget(path);
        result.map(drop)
    }

    /// Reads `len` bytes at `offset` out of a whole-file answer, without keeping the rest.
    async fn slice_of(
        &self,
        op: &'static str,
        path: &VPath,
        mut response: Response,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        let mut skip = offset;
        let mut out = BytesMut::new();
        while (out.len() as u64) < len {
            let Some(chunk) = response.chunk().await.map_err(|e| self.server.unreachable(op, path, &e))? else {
                break;
            };
            let chunk_len = chunk.len() as u64;
            if skip >= chunk_len {
                skip -= chunk_len;
                continue;
            }
            let start = skip as usize;
            skip = 0;
            let take = (len - out.len() as u64).min(chunk_len - start as u64) as usize;
            out.extend_from_slice(&chunk[start..start + take]);
        }
        Ok(out.freeze())
    }
}

#[async_trait]
impl Resource for WebDavResource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: self.options.read_only,
            ranged_reads: true,
            atomic_rename: true,
            symlinks: false,
            modes: false,
            immediate: false,
        }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        self.require("stat", path).await
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        if self.require("read", path).await?.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, "read").with_path(path.clone()));
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let url = self.server.url(path, false);
        let range = format!("bytes={offset}-{}", offset.saturating_add(len - 1));
        let response = self
            .server
            .send_retrying("read", path, || self.server.request(Method::GET, url.clone()).header(RANGE, &range))
            .await?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let mut body = response.bytes().await.map_err(|e| self.server.unreachable("read", path, &e))?;
                body.truncate(usize::try_from(len).unwrap_or(usize::MAX));
                Ok(body)
            }
            // The server ignored the range.
            StatusCode::OK => self.slice_of("read", path, response, offset, len).await,
            // The range starts at or after the end.
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Bytes::new()),
            _ => {
                self.cache.forget(path);
                Err(self.server.refusal("read", path, &response))
            }
        }
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let listing = match self.cache.listing(path) {
            Some(listing) => listing,
            None => self.fetch_listing("readdir", path).await?,
        };
        Ok(listing.iter().map(|(name, meta)| DirEntry { name: name.clone(), file_type: meta.file_type }).collect())
    }

    async fn write(&self, path: &VPath, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable("write", path)?;
        let (mut content, condition) = self.get_whole("write", path).await?;
        let too_big = || Error::new(ErrorKind::InvalidInput, "write").with_path(path.clone());
        let start = usize::try_from(offset).map_err(|_| too_big())?;
        let end = start.checked_add(data.len()).ok_or_else(too_big)?;
        if content.len() < end {
            content.resize(end, 0);
        }
        content[start..end].copy_from_slice(data);
        self.put_back("write", path, content, condition).await
    }

    async fn create(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        self.check_writable("create", path)?;
        let empty = once_stream(Bytes::new());
        let result = self.upload("create", path, empty, Some((IF_NONE_MATCH, "*".to_owned()))).await;
        self.cache.forget(path);
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                Err(Error::new(ErrorKind::AlreadyExists, "create").with_path(path.clone()))
            }
            Err(e) => Err(e),
        }
    }

    async fn mkdir(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        self.check_writable("mkdir", path)?;
        let request = self.server.request(method("MKCOL"), self.server.url(path, true));
        let response = self.server.send("mkdir", path, request).await;
        self.cache.forget(path);
        let response = response?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            // MKCOL answers 405 Method Not Allowed where something exists already.
            405 => Err(Error::new(ErrorKind::AlreadyExists, "mkdir").with_path(path.clone())),
            _ => Err(self.refused_change("mkdir", path, &response).await),
        }
    }

    async fn remove(&self, path: &VPath) -> Result<()> {
        self.check_writable("remove", path)?;
        // Asked afresh: a DELETE of what turned into a directory would take all of it.
        match self.current("remove", path).await? {
            None => {
                self.cache.forget(path);
                return Err(Error::new(ErrorKind::NotFound, "remove").with_path(path.clone()));
            }
            Some((meta, _)) if meta.is_dir() => {
                return Err(Error::new(ErrorKind::IsADirectory, "remove").with_path(path.clone()));
            }
            Some(_) => {}
        }
        let request = self.server.request(Method::DELETE, self.server.url(path, false));
        let response = self.server.send("remove", path, request).await;
        self.cache.forget(path);
        let response = response?;
        if response.status().is_success() { Ok(()) } else { Err(self.server.refusal("remove", path, &response)) }
    }

    async fn rmdir(&self, path: &VPath) -> Result<()> {
        self.check_writable("rmdir", path)?;
        if path.is_root() {
            return Err(Error::new(ErrorKind::InvalidInput, "rmdir")
                .with_path(path.clone())
                .with_detail("the root of the resource cannot be removed"));
        }
        if !self.fetch_listing("rmdir", path).await?.is_empty() {
            return Err(Error::new(ErrorKind::DirectoryNotEmpty, "rmdir").with_path(path.clone()));
        }
        let request = self.server.request(Method::DELETE, self.server.url(path, true)).header("Depth", "infinity");
        let response = self.server.send("rmdir", path, request).await;
        self.cache.forget(path);
        let response = response?;
        if response.status().is_success() { Ok(()) } else { Err(self.server.refusal("rmdir", path, &response)) }
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        self.check_writable("rename", from)?;
        if from.is_root() || (to.starts_with(from) && to != from) {
            return Err(Error::new(ErrorKind::InvalidInput, "rename")
                .with_path(from.clone())
                .with_detail(format!("cannot move it into itself ('{to}')")));
        }
        let source = self.require("rename", from).await?;
        if from == to {
            return Ok(());
        }
        // Asked afresh: MOVE with Overwrite replaces whatever is there, directories included.
        if let Some((target, _)) = self.current("rename", to).await? {
            match (source.is_dir(), target.is_dir()) {
                (false, true) => return Err(Error::new(ErrorKind::IsADirectory, "rename").with_path(to.clone())),
                (true, false) => return Err(Error::new(ErrorKind::NotADirectory, "rename").with_path(to.clone())),
                (true, true) if !self.fetch_listing("rename", to).await?.is_empty() => {
                    return Err(Error::new(ErrorKind::DirectoryNotEmpty, "rename").with_path(to.clone()));
                }
                _ => {}
            }
        }
        let destination = self.server.url(to, source.is_dir());
        let request = self
            .server
            .request(method("MOVE"), self.server.url(from, source.is_dir()))
            .header("Destination", destination.as_str())
            .header("Overwrite", "T");
        let response = self.server.send("rename", from, request).await;
        self.cache.forget(from);
        self.cache.forget(to);
        let response = response?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            404 => Err(Error::new(ErrorKind::NotFound, "rename").with_path(from.clone())),
            _ => Err(self.refused_change("rename", to, &response).await),
        }
    }

    async fn truncate(&self, path: &VPath, len: u64) -> Result<()> {
        self.check_writable("truncate", path)?;
        let (mut content, condition) = self.get_whole("truncate", path).await?;
        let len = usize::try_from(len).map_err(|_| Error::new(ErrorKind::InvalidInput, "truncate"))?;
        content.resize(len, 0);
        self.put_back("truncate", path, content, condition).await
    }

    async fn put(&self, path: &VPath, content: ByteStream, expect: Precondition) -> Result<Metadata> {
        self.check_writable("put", path)?;
        let condition = match &expect {
            Precondition::None => None,
            Precondition::Absent => Some((IF_NONE_MATCH, "*".to_owned())),
            Precondition::Version(version) => self.if_match("put", path, version).await?.map(|tag| (IF_MATCH, tag)),
        };
        match self.upload("put", path, content, condition).await {
            Ok((size, headers)) => self.uploaded("put", path, size, &headers).await,
            // A new file that exists already lost the race just as a changed one.
            Err(e) if e.kind() == ErrorKind::Conflict && expect == Precondition::Absent => {
                Err(self.server.conflict("put", path, "created"))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn a_weak_etag_is_the_same_version_as_its_strong_form() {
        assert_eq!(version_of(r#"W/"5-abc""#), (Version(r#""5-abc""#.into()), Tag::Weak));
        assert_eq!(version_of(r#""5-abc""#), (Version(r#""5-abc""#.into()), Tag::Strong));
        assert_eq!(if_match(&Version(r#""5-abc""#.into())), r#""5-abc""#);
        assert_eq!(if_match(&Version("unquoted".into())), r#""unquoted""#);
    }

    #[test]
    fn properties_become_metadata() {
        let (dir, _) = metadata(Props { collection: true, etag: Some("\"d\"".into()), ..Props::default() });
        assert_eq!((dir.file_type, dir.version), (FileType::Dir, Version("dir".into())));
        let modified = Some(UNIX_EPOCH + Duration::from_secs(100));
        let (file, tag) = metadata(Props { length: Some(7), modified, ..Props::default() });
        assert_eq!((file.size, file.version, tag), (7, Version("7-100".into()), Tag::Missing));
    }

    #[test]
    fn urls_are_percent_encoded_and_hrefs_decoded() {
        let resource = WebDavResource::open("webdav://127.0.0.1:1/dav%20root/", WebDavOptions::default()).unwrap();
        let server = &resource.server;
        assert_eq!(server.url(&p("/a b/c#d"), false).as_str(), "http://127.0.0.1:1/dav%20root/a%20b/c%23d");
        assert_eq!(server.url(&p("/sub"), true).as_str(), "http://127.0.0.1:1/dav%20root/sub/");
        assert_eq!(server.url(&p("/"), false).as_str(), "http://127.0.0.1:1/dav%20root/");
        let inner = |href: &str| server.inner_components(href);
        assert_eq!(inner("/dav%20root/a%20b/c%23d"), Some(vec!["a b".into(), "c#d".into()]));
        assert_eq!(inner("http://elsewhere.example/dav%20root/x/"), Some(vec!["x".into()]), "the host is the server's");
        assert_eq!(inner("/dav root/"), Some(vec![]));
        assert_eq!(inner("/other/x"), None);
    }
}
