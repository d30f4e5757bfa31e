//! A bucket (or a prefix of one) in an object store, as a [`Resource`].
//!
//! Object stores have keys, not directories. A directory here is what a delimiter listing
//! reports as a common prefix, or a zero-byte marker object whose key ends in `/` (what the
//! S3 console, rclone and s3fs create). `mkdir` cannot write such a marker (object_store
//! addresses no key ending in `/`), so a directory made here lives in this resource (for as
//! long as it is open) and on the store only through the objects put below it: like git, an
//! object store keeps no empty directories.
//!
//! - Listings are lazy (one delimiter listing per directory, when it is read) and, with the
//!   metadata of single objects, cached for [`ObjectOptions::cache_ttl`]. When a listing
//!   expires, the next lookup in that directory lists it again (a request per 1,000 keys)
//!   rather than asking for each object with a HEAD.
//! - Reads are ranged: only the bytes asked for are fetched.
//! - [`Resource::put`] (what a commit calls) is conditional: `If-None-Match: *` for a new key,
//!   `If-Match` on the ETag the session saw for a changed one, so a key someone else changed
//!   is a `Conflict`, never an overwrite. Content is streamed, and files of
//!   [`ObjectOptions::multipart_threshold`] or more go up in parts; a multipart upload is
//!   checked against the expected version just before it completes (object stores offer no
//!   condition on completing one through object_store), which leaves a short window.
//! - `rename` is a copy and a delete per object: not atomic, and the capabilities say so.
//! - Objects have no permission bits, symlinks or settable times: those are `ENOTSUP`.

mod config;
mod profile;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use mirage_core::resource::refuse;
use mirage_core::{
    ByteStream, Capabilities, DirEntry, Error, ErrorKind, FileType, Metadata, Precondition, Resource, Result, VPath,
    Version,
};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult,
    UpdateVersion, WriteMultipart,
};

pub use config::ObjectOptions;

use crate::cache::{Listing, MetaCache};

/// Parts of a multipart upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// A bucket or a prefix of one, mounted as a directory tree.
pub struct ObjectResource {
    store: Arc<dyn ObjectStore>,
    /// The key prefix this resource's root stands for.
    root: Path,
    /// The URL and endpoint, for messages.
    describe: String,
    options: ObjectOptions,
    cache: MetaCache,
    /// Directories made by `mkdir` that hold no object yet.
    made_dirs: Mutex<std::collections::BTreeSet<VPath>>,
    /// When the resource was opened: the time directories report.
    opened: SystemTime,
}

impl fmt::Debug for ObjectResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectResource").field("store", &self.describe).finish_non_exhaustive()
    }
}

impl ObjectResource {
    /// Opens the bucket or prefix `url` names (`s3://bucket/prefix`, `gs://bucket`,
    /// `az://container/prefix`), with `options` and then the URL's query string applied.
    /// Credentials come from the store's usual environment variables (and, for S3, the AWS
    /// profile files); nothing is fetched until the first operation.
    ///
    /// # Errors
    /// `InvalidInput` for a URL, option or value that does not parse, or a store that cannot
    /// be set up from them.
    pub fn open(url: &str, options: ObjectOptions) -> Result<Self> {
        let (options, url) = options.from_url(url)?;
        let opened = config::open(&url, &options)?;
        Ok(Self::with_store(opened.store, opened.root, opened.describe, options))
    }

    /// A resource over a store built elsewhere, with `root` as its root prefix; `describe`
    /// names it in messages.
    pub fn with_store(store: Arc<dyn ObjectStore>, root: Path, describe: String, options: ObjectOptions) -> Self {
        ObjectResource {
            store,
            root,
            describe,
            cache: MetaCache::new(options.cache_ttl),
            options,
            made_dirs: Mutex::default(),
            opened: SystemTime::now(),
        }
    }

    /// The store behind this resource.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object key of `path`.
    fn key(&self, op: &'static str, path: &VPath) -> Result<Path> {
        let inner = path.as_str().trim_start_matches('/');
        let joined = match (self.root.as_ref(), inner) {
            (root, "") => root.to_owned(),
            ("", inner) => inner.to_owned(),
            (root, inner) => format!("{root}/{inner}"),
        };
        Path::parse(&joined).map_err(|e| {
            Error::new(ErrorKind::InvalidInput, op)
                .with_path(path.clone())
                .with_detail(format!("not an object key: {e}"))
        })
    }

    /// Turns a store error into Mirage's, naming the store so that an unreachable endpoint
    /// or refused credentials say where.
    fn fail(&self, op: &'static str, path: &VPath, e: object_store::Error) -> Error {
        use object_store::Error as E;
        let message = e.to_string();
        // Some refusals reach object_store as plain HTTP errors (a listing answered 403).
        let refused = ["403 Forbidden", "401 Unauthorized"].iter().any(|status| message.contains(status));
        let kind = match &e {
            _ if refused => ErrorKind::PermissionDenied,
            E::NotFound { .. } => ErrorKind::NotFound,
            E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            E::Precondition { .. } => ErrorKind::Conflict,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorKind::PermissionDenied,
            E::NotSupported { .. } | E::NotImplemented { .. } => ErrorKind::Unsupported,
            _ => ErrorKind::Io,
        };
        let hint = match kind {
            ErrorKind::PermissionDenied => {
                " (check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the AWS profile, or the URL's options)"
            }
            _ => "",
        };
        let error =
            Error::new(kind, op).with_path(path.clone()).with_detail(format!("{}: {message}{hint}", self.describe));
        if kind == ErrorKind::Conflict {
            Error::conflict(op, vec![path.clone()], format!("changed on {} since the session saw it", self.describe))
        } else {
            error
        }
    }

    fn dir_meta(&self) -> Metadata {
        Metadata {
            file_type: FileType::Dir,
            size: 0,
            mode: 0o755,
            mtime: self.opened,
            atime: self.opened,
            version: Version("dir".into()),
        }
    }

    fn made_dir(&self, path: &VPath) -> bool {
        self.made_dirs.lock().unwrap_or_else(|e| e.into_inner()).contains(path)
    }

    /// True when some object lives below `key` (a marker for `key` itself counts).
    async fn has_objects_below(&self, op: &'static str, path: &VPath, key: &Path) -> Result<bool> {
        let prefix = (!key.as_ref().is_empty()).then_some(key);
        match self.store.list(prefix).next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.fail(op, path, e)),
            None => Ok(false),
        }
    }

    /// Asks the store what `path` is (no cache): an object, a directory, or nothing.
    async fn fetch_stat(&self, path: &VPath) -> Result<Option<Metadata>> {
        if path.is_root() {
            return Ok(Some(self.dir_meta()));
        }
        let key = self.key("stat", path)?;
        match self.store.head(&key).await {
            Ok(meta) => return Ok(Some(file_meta(&meta))),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail("stat", path, e)),
        }
        if self.made_dir(path) || self.has_objects_below("stat", path, &key).await? {
            return Ok(Some(self.dir_meta()));
        }
        Ok(None)
    }

    /// What `path` is, from the cache when it knows; `None` when nothing is there. A path
    /// below a file fails with `NotADirectory`.
    async fn lookup(&self, path: &VPath) -> Result<Option<Metadata>> {
        let fetch = |path: VPath| async move { self.fetch_stat(&path).await };
        // Through the trait: a boxed future, as listing may look paths up in turn.
        let relist = |dir: VPath| async move { self.list(&dir).await.map(drop) };
        self.cache.lookup(path, fetch, relist).await
    }

    async fn require(&self, op: &'static str, path: &VPath) -> Result<Metadata> {
        self.lookup(path).await?.ok_or_else(|| Error::new(ErrorKind::NotFound, op).with_path(path.clone()))
    }

    /// Fails unless `path`'s parent is a directory (for creating `path`).
    async fn require_parent_dir(&self, op: &'static str, path: &VPath) -> Result<()> {
        let Some(parent) = path.parent() else { return Ok(()) };
        match self.lookup(&parent).await? {
            Some(meta) if meta.is_dir() => Ok(()),
            Some(_) => Err(Error::new(ErrorKind::NotADirectory, op).with_path(path.clone())),
            None => Err(Error::new(ErrorKind::NotFound, op)
                .with_path(path.clone())
                .with_detail("parent directory does not exist")),
        }
    }

    fn check_writable(&self, op: &'static str, path: &VPath) -> Result<()> {
        if self.options.read_only { Err(refuse(self, op, path)) } else { Ok(()) }
    }

    /// Uploads `payload` to `path` under `mode`, and records what is there now.
    async fn store_object(
        &self,
        op: &'static str,
        path: &VPath,
        payload: PutPayload,
        mode: PutMode,
    ) -> Result<Metadata> {
        let key = self.key(op, path)?;
        let size = payload.content_length() as u64;
        let result = self.store.put_opts(&key, payload, PutOptions { mode, ..PutOptions::default() }).await;
        let result = result.map_err(|e| {
            self.cache.forget(path);
            self.fail(op, path, e)
        });
        self.stored(path, size, result?)
    }

    /// Records that `path` now holds `size` bytes as the store reported.
    fn stored(&self, path: &VPath, size: u64, result: PutResult) -> Result<Metadata> {
        let now = SystemTime::now();
        let version = result.e_tag.or(result.version);
        match version {
            Some(version) => {
                let meta = Metadata {
                    file_type: FileType::File,
                    size,
                    mode: 0o644,
                    mtime: now,
                    atime: now,
                    version: Version(version),
                };
                self.cache.stored(path, meta.clone());
                Ok(meta)
            }
            None => {
                self.cache.forget(path);
                Ok(Metadata {
                    file_type: FileType::File,
                    size,
                    mode: 0o644,
                    mtime: now,
                    atime: now,
                    version: Version(String::new()),
                })
            }
        }
    }

    /// The whole object at `path` with the version it had, for read-modify-write.
    async fn get_whole(&self, op: &'static str, path: &VPath) -> Result<(Vec<u8>, Version)> {
        let meta = self.require(op, path).await?;
        if meta.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, op).with_path(path.clone()));
        }
        let key = self.key(op, path)?;
        let got = self.store.get(&key).await.map_err(|e| self.fail(op, path, e))?;
        let version = file_meta(&got.meta).version;
        let bytes = got.bytes().await.map_err(|e| self.fail(op, path, e))?;
        Ok((bytes.to_vec(), version))
    }

    /// Replaces the object at `path` with `content` if it still has `version`.
    async fn replace(&self, op: &'static str, path: &VPath, content: Vec<u8>, version: Version) -> Result<()> {
        let mode = PutMode::Update(UpdateVersion { e_tag: Some(version.0), version: None });
        self.store_object(op, path, PutPayload::from(content), mode).await.map(drop)
    }

    /// Every object below directory `path` (recursively), as keys.
    async fn objects_below(&self, op: &'static str, path: &VPath) -> Result<Vec<ObjectMeta>> {
        let key = self.key(op, path)?;
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed: Vec<_> = self.store.list(prefix).collect().await;
        listed.into_iter().collect::<std::result::Result<_, _>>().map_err(|e| self.fail(op, path, e))
    }

    /// The virtual path of `key`, a key below this resource's root.
    fn path_of(&self, op: &'static str, key: &Path) -> Result<VPath> {
        let root_parts = self.root.parts().count();
        let mut path = VPath::root();
        for part in key.parts().skip(root_parts) {
            path = path.child(part.as_ref()).map_err(|e| e.with_op(op))?;
        }
        Ok(path)
    }

    /// Uploads a stream too large for one request, in parts; checks `expect` just before
    /// completing.
    async fn put_in_parts(
        &self,
        path: &VPath,
        key: &Path,
        first: Vec<Bytes>,
        mut content: ByteStream,
        expect: &Precondition,
    ) -> Result<Metadata> {
        let upload = self.store.put_multipart(key).await.map_err(|e| self.fail("put", path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.options.part_size);
        let mut size = 0u64;
        let uploaded: Result<()> = async {
            for chunk in first {
                size += chunk.len() as u64;
                writer.put(chunk);
            }
            while let Some(chunk) = content.next().await {
                let chunk = chunk?;
                writer.wait_for_capacity(PART_CONCURRENCY).await.map_err(|e| self.fail("put", path, e))?;
                size += chunk.len() as u64;
                writer.put(chunk);
            }
            let current = self.fetch_stat(path).await?;
            mirage_core::resource::check_precondition(path, current.as_ref(), expect)
        }
        .await;
        if let Err(e) = uploaded {
            // Best effort: an upload left behind costs storage until the bucket's lifecycle
            // rules remove it, but never shows as an object.
            let _ = writer.abort().await;
            self.cache.forget(path);
            return Err(e);
        }
        let result = writer.finish().await.map_err(|e| {
            self.cache.forget(path);
            self.fail("put", path, e)
        })?;
        self.stored(path, size, result)
    }
}

/// Metadata of an object as the store describes it.
fn file_meta(meta: &ObjectMeta) -> Metadata {
    let secs = u64::try_from(meta.last_modified.timestamp()).unwrap_or(0);
    let mtime = UNIX_EPOCH + Duration::new(secs, meta.last_modified.timestamp_subsec_nanos());
    let version = meta
        .e_tag
        .clone()
        .or_else(|| meta.version.clone())
        .unwrap_or_else(|| format!("{}-{}", meta.size, meta.last_modified.timestamp_nanos_opt().unwrap_or(0)));
    Metadata { file_type: FileType::File, size: meta.size, mode: 0o644, mtime, atime: mtime, version: Version(version) }
}

#[async_trait]
impl Resource for ObjectResource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: self.options.read_only,
            ranged_reads: true,
            atomic_rename: false,
            symlinks: false,
            modes: false,
            immediate: false,
        }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        self.require("stat", path).await
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        let meta = self.require("read", path).await?;
        if meta.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, "read").with_path(path.clone()));
        }
        let end = offset.saturating_add(len).min(meta.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let key = self.key("read", path)?;
        let options = GetOptions { range: Some(GetRange::Bounded(offset..end)), ..GetOptions::default() };
        let got = self.store.get_opts(&key, options).await.map_err(|e| {
            self.cache.forget(path);
            self.fail("read", path, e)
        })?;
        got.bytes().await.map_err(|e| self.fail("read", path, e))
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let listing = match self.cache.listing(path) {
            Some(listing) => listing,
            None => {
                let key = self.key("readdir", path)?;
                let prefix = (!key.as_ref().is_empty()).then_some(&key);
                let listed = self.store.list_with_delimiter(prefix).await.map_err(|e| self.fail("readdir", path, e))?;
                let mut listing = Listing::new();
                for dir in &listed.common_prefixes {
                    if let Some(name) = dir.filename() {
                        listing.insert(name.to_owned(), self.dir_meta());
                    }
                }
                let mut marker = false;
                for object in &listed.objects {
                    match object.location.filename() {
                        // A marker for this directory itself (a key ending in `/`).
                        _ if object.location == key => marker = true,
                        Some(name) => {
                            listing.insert(name.to_owned(), file_meta(object));
                        }
                        None => {}
                    }
                }
                let made: Vec<String> = {
                    let made = self.made_dirs.lock().unwrap_or_else(|e| e.into_inner());
                    made.iter()
                        .filter(|dir| dir.parent().as_ref() == Some(path))
                        .filter_map(|dir| dir.file_name().map(str::to_owned))
                        .collect()
                };
                for name in made {
                    listing.entry(name).or_insert_with(|| self.dir_meta());
                }
                if listing.is_empty() && !marker && !path.is_root() && !self.made_dir(path) {
                    // Nothing below: not a directory. Say whether it is a file or nothing.
                    let meta = self.require("readdir", path).await?;
                    if !meta.is_dir() {
                        return Err(Error::new(ErrorKind::NotADirectory, "readdir").with_path(path.clone()));
                    }
                }
                let listing = Arc::new(listing);
                self.cache.set_listing(path, listing.clone());
                listing
            }
        };
        Ok(listing.iter().map(|(name, meta)| DirEntry { name: name.clone(), file_type: meta.file_type }).collect())
    }

    async fn write(&self, path: &VPath, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable("write", path)?;
        let (mut content, version) = self.get_whole("write", path).await?;
        let offset = usize::try_from(offset).map_err(|_| Error::new(ErrorKind::InvalidInput, "write"))?;
        if content.len() < offset + data.len() {
            content.resize(offset + data.len(), 0);
        }
        content[offset..offset + data.len()].copy_from_slice(data);
        self.replace("write", path, content, version).await
    }

    async fn create(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        self.check_writable("create", path)?;
        if self.lookup(path).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, "create").with_path(path.clone()));
        }
        self.require_parent_dir("create", path).await?;
        self.store_object("create", path, PutPayload::new(), PutMode::Create).await.map(drop)
    }

    async fn mkdir(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        self.check_writable("mkdir", path)?;
        if self.lookup(path).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, "mkdir").with_path(path.clone()));
        }
        self.require_parent_dir("mkdir", path).await?;
        self.made_dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(path.clone());
        self.cache.forget(path);
        Ok(())
    }

    async fn remove(&self, path: &VPath) -> Result<()> {
        self.check_writable("remove", path)?;
        if self.require("remove", path).await?.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, "remove").with_path(path.clone()));
        }
        let key = self.key("remove", path)?;
        let deleted = self.store.delete(&key).await;
        self.cache.forget(path);
        deleted.map_err(|e| self.fail("remove", path, e))
    }

    async fn rmdir(&self, path: &VPath) -> Result<()> {
        self.check_writable("rmdir", path)?;
        if !self.require("rmdir", path).await?.is_dir() {
            return Err(Error::new(ErrorKind::NotADirectory, "rmdir").with_path(path.clone()));
        }
        let key = self.key("rmdir", path)?;
        let inside = self.objects_below("rmdir", path).await?;
        let made_inside =
            self.made_dirs.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|d| d.parent().as_ref() == Some(path));
        if made_inside || inside.iter().any(|o| o.location != key) {
            return Err(Error::new(ErrorKind::DirectoryNotEmpty, "rmdir").with_path(path.clone()));
        }
        self.made_dirs.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
        self.cache.forget(path);
        Ok(())
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        self.check_writable("rename", from)?;
        let source = self.require("rename", from).await?;
        let target = self.lookup(to).await?;
        self.require_parent_dir("rename", to).await?;
        let moves: Vec<(Path, Path)> = if source.is_dir() {
            if let Some(t) = &target {
                if !t.is_dir() {
                    return Err(Error::new(ErrorKind::NotADirectory, "rename").with_path(to.clone()));
                }
                if self.objects_below("rename", to).await?.iter().any(|_| true) {
                    return Err(Error::new(ErrorKind::DirectoryNotEmpty, "rename").with_path(to.clone()));
                }
            }
            let mut moves = Vec::new();
            for object in self.objects_below("rename", from).await? {
                let inner = self.path_of("rename", &object.location)?;
                let rest = inner.strip_prefix(from).unwrap_or_else(VPath::root);
                let dest = to.join(rest.as_str().trim_start_matches('/'))?;
                moves.push((object.location, self.key("rename", &dest)?));
            }
            moves
        } else {
            if target.as_ref().is_some_and(Metadata::is_dir) {
                return Err(Error::new(ErrorKind::IsADirectory, "rename").with_path(to.clone()));
            }
            vec![(self.key("rename", from)?, self.key("rename", to)?)]
        };
        let result: Result<()> = async {
            for (src, dest) in &moves {
                self.store.copy(src, dest).await.map_err(|e| self.fail("rename", from, e))?;
                self.store.delete(src).await.map_err(|e| self.fail("rename", from, e))?;
            }
            Ok(())
        }
        .await;
        {
            let mut made = self.made_dirs.lock().unwrap_or_else(|e| e.into_inner());
            let moved: Vec<VPath> = made.iter().filter(|d| d.starts_with(from)).cloned().collect();
            for dir in moved {
                made.remove(&dir);
                if let Some(rest) = dir.strip_prefix(from) {
                    made.insert(to.join(rest.as_str().trim_start_matches('/'))?);
                }
            }
        }
        self.cache.forget(from);
        self.cache.forget(to);
        result
    }

    async fn truncate(&self, path: &VPath, len: u64) -> Result<()> {
        self.check_writable("truncate", path)?;
        let (mut content, version) = self.get_whole("truncate", path).await?;
        content.resize(usize::try_from(len).map_err(|_| Error::new(ErrorKind::InvalidInput, "truncate"))?, 0);
        self.replace("truncate", path, content, version).await
    }

    async fn put(&self, path: &VPath, mut content: ByteStream, expect: Precondition) -> Result<Metadata> {
        self.check_writable("put", path)?;
        let key = self.key("put", path)?;
        let mut first = Vec::new();
        let mut buffered = 0;
        while buffered < self.options.multipart_threshold {
            match content.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    buffered += chunk.len();
                    first.push(chunk);
                }
                None => {
                    let mode = match expect {
                        Precondition::None => PutMode::Overwrite,
                        Precondition::Absent => PutMode::Create,
                        Precondition::Version(v) => PutMode::Update(UpdateVersion { e_tag: Some(v.0), version: None }),
                    };
                    let payload: PutPayload = first.into_iter().collect();
                    return match self.store_object("put", path, payload, mode).await {
                        // A new key that exists already lost the race just as a changed one.
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::conflict(
                            "put",
                            vec![path.clone()],
                            format!("created on {} since the session looked", self.describe),
                        )),
                        other => other,
                    };
                }
            }
        }
        self.put_in_parts(path, &key, first, content, &expect).await
    }
}
