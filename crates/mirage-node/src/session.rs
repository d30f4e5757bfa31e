//! The `Session` class: one copy-on-write view of the tree.
//!
//! Every asynchronous method returns its value directly when it could finish without waiting
//! (the wrapper turns that into a settled promise) and a promise otherwise.

use std::collections::HashMap;

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use mirage_core::{ChangeKind, CommitOptions};

use crate::convert::{
    Data, Dirent, InPlace, STAT_SLOTS, StatInfo, fill_stat, from_millis, js_error, names_itself, now, settle,
    settle_map, type_name,
};

/// One copy-on-write view of the whole tree.
#[napi]
pub struct Session {
    inner: mirage_core::Session,
}

impl From<mirage_core::Session> for Session {
    fn from(inner: mirage_core::Session) -> Self {
        Session { inner }
    }
}

/// Copies `bytes` into `pool` at `offset` when they fit (returning their length), or into a
/// new JavaScript buffer.
fn pooled<'env>(
    env: &'env Env,
    pool: &mut InPlace<u8>,
    offset: u32,
    bytes: &[u8],
) -> Result<Either<u32, BufferSlice<'env>>> {
    let start = offset as usize;
    match pool.slice().get_mut(start..start + bytes.len()) {
        Some(target) => {
            target.copy_from_slice(bytes);
            Ok(Either::A(bytes.len() as u32))
        }
        None => BufferSlice::copy_from(env, bytes).map(Either::B),
    }
}

fn buffer(bytes: Bytes) -> Buffer {
    Buffer::from(Vec::from(bytes))
}

/// What `statMany` returns: the versions (the numbers are in the scratch), or a promise of
/// the whole descriptions.
type StatBatch<'env> = Either<Vec<Option<String>>, PromiseRaw<'env, Vec<StatInfo>>>;

/// The paths of a batch call, joined by NUL: one string crosses into Rust instead of one per
/// path, which costs more than a small read.
struct Joined {
    paths: String,
    count: usize,
}

impl Joined {
    /// Checks that `paths` holds `count` paths (a NUL inside a path would make more).
    fn new(paths: String, count: u32) -> Result<Self> {
        let count = count as usize;
        let pieces = if count == 0 && paths.is_empty() { 0 } else { paths.split('\0').count() };
        if pieces != count {
            return Err(js_error(
                mirage_core::Error::new(mirage_core::ErrorKind::InvalidInput, "batch")
                    .with_detail("a path contains a NUL byte"),
            ));
        }
        Ok(Joined { paths, count })
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        // `take`: an empty string splits into one empty piece, and no paths make one.
        self.paths.split('\0').take(self.count)
    }

    /// Runs `op` on each path in turn: every result, or the first error.
    async fn each<'a, T, F>(&'a self, mut op: impl FnMut(&'a str) -> F) -> mirage_core::Result<Vec<T>>
    where
        F: Future<Output = mirage_core::Result<T>>,
    {
        let mut out = Vec::with_capacity(self.count);
        for path in self.iter() {
            out.push(op(path).await?);
        }
        Ok(out)
    }
}

/// One entry of `diff()`.
#[napi(object)]
pub struct ChangeInfo {
    /// The virtual path.
    pub path: String,
    /// `"added"`, `"modified"` or `"deleted"`.
    pub change: String,
    /// `"file"`, `"directory"` or `"symlink"`.
    pub kind: String,
    /// Size where the session started, if the entry existed.
    pub old_size: Option<f64>,
    /// Size now, if the entry exists.
    pub new_size: Option<f64>,
}

/// What `commit()` did.
#[napi(object)]
pub struct CommitInfo {
    /// Paths whose change now lives in the parent (or the resources, for a root session).
    pub applied: Vec<String>,
    /// Sibling sessions aborted by a winner-takes-all commit.
    pub aborted: Vec<String>,
}

#[napi]
impl Session {
    fn session(&self) -> mirage_core::Session {
        self.inner.clone()
    }

    /// An external value standing for this session, which the functions of `fastCalls()`
    /// take as their first argument.
    #[napi(ts_return_type = "object")]
    pub fn handle<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        crate::fast::handle(env, self.inner.clone())
    }

    /// The session's name.
    #[napi(getter)]
    pub fn name(&self) -> Result<String> {
        self.inner.name().map_err(js_error)
    }

    /// A one-slot array over the session's change counter, which moves whenever what the
    /// session shows changes; the wrapper's content cache holds while it stands still.
    /// `null` where the runtime cannot share memory with JavaScript (no cache then).
    #[napi]
    pub fn changes<'env>(&self, env: &'env Env) -> Result<Option<Uint32ArraySlice<'env>>> {
        let counter = self.inner.changes().map_err(js_error)?;
        let slot = counter.as_ptr();
        // SAFETY: the counter lives as long as the array, which owns a reference to it; the
        // array is only ever read, and a u32 load of an aligned atomic sees a whole value.
        let array = unsafe { Uint32ArraySlice::from_external(env, slot, 1, counter, |_, counter| drop(counter))? };
        Ok(std::ptr::eq(array.as_ptr(), slot).then_some(array))
    }

    /// The parent session, or `null` for a root session.
    #[napi]
    pub fn parent(&self) -> Result<Option<Session>> {
        Ok(self.inner.parent().map_err(js_error)?.map(Session::from))
    }

    /// Describes `path`, following symbolic links. When the answer is ready at once, its
    /// numbers go into `scratch` (kind code, size, mode, mtime, atime) and the version is
    /// returned; otherwise a promise of the whole description.
    #[napi]
    pub fn stat<'env>(
        &self,
        env: &'env Env,
        path: String,
        #[napi(ts_arg_type = "Float64Array")] mut scratch: InPlace<f64>,
    ) -> Result<Either<Option<String>, PromiseRaw<'env, StatInfo>>> {
        let s = self.session();
        settle_map(env, async move { s.stat(&path).await }, |_, meta| fill_stat(scratch.slice(), meta), StatInfo::from)
    }

    /// Describes `path` itself (a symbolic link is not followed), as `stat` does.
    #[napi]
    pub fn lstat<'env>(
        &self,
        env: &'env Env,
        path: String,
        #[napi(ts_arg_type = "Float64Array")] mut scratch: InPlace<f64>,
    ) -> Result<Either<Option<String>, PromiseRaw<'env, StatInfo>>> {
        let s = self.session();
        settle_map(env, async move { s.lstat(&path).await }, |_, meta| fill_stat(scratch.slice(), meta), StatInfo::from)
    }

    /// Describes many paths in one call: `paths` joined by NUL, `count` of them. When every
    /// answer is ready at once, entry `i`'s numbers go into `scratch` from slot `6 * i` (as
    /// `stat` fills its scratch) and the versions are returned; otherwise a promise of the
    /// whole descriptions.
    #[napi(ts_return_type = "Array<string | undefined | null> | Promise<Array<StatInfo>>")]
    pub fn stat_many<'env>(
        &self,
        env: &'env Env,
        paths: String,
        count: u32,
        #[napi(ts_arg_type = "Float64Array")] mut scratch: InPlace<f64>,
    ) -> Result<StatBatch<'env>> {
        let (s, paths) = (self.session(), Joined::new(paths, count)?);
        settle_map(
            env,
            async move { paths.each(|path| s.stat(path)).await },
            move |_, list| {
                let slots = scratch.slice().chunks_exact_mut(STAT_SLOTS);
                if slots.len() < list.len() {
                    return Err(napi::Error::new(Status::InvalidArg, "statMany scratch is too short"));
                }
                list.into_iter().zip(slots).map(|(meta, out)| fill_stat(out, meta)).collect()
            },
            |list| list.into_iter().map(StatInfo::from).collect(),
        )
    }

    /// True when `path` exists.
    #[napi]
    pub fn exists<'env>(&self, env: &'env Env, path: String) -> Result<Either<bool, PromiseRaw<'env, bool>>> {
        let s = self.session();
        settle(env, async move { s.exists(&path).await })
    }

    /// Reads a whole file. When the content is ready at once and fits, it is copied into
    /// `pool` at `offset` and its length is returned (the wrapper hands out a view of the
    /// pool, as Node does for small buffers); otherwise a new buffer, or a promise of one.
    #[napi]
    pub fn read_file<'env>(
        &self,
        env: &'env Env,
        path: String,
        #[napi(ts_arg_type = "Buffer")] mut pool: InPlace<u8>,
        offset: u32,
    ) -> Result<Either<Either<u32, BufferSlice<'env>>, PromiseRaw<'env, Buffer>>> {
        let s = self.session();
        settle_map(
            env,
            async move { s.read_file(&path).await },
            move |env, bytes| pooled(env, &mut pool, offset, &bytes),
            buffer,
        )
    }

    /// Reads many whole files in one call: `paths` joined by NUL, `count` of them. When every
    /// read is ready at once, the contents come back in one buffer, one after another, with
    /// each length in `lengths` (the wrapper hands out views of it); otherwise a promise of
    /// one buffer per file.
    #[napi]
    pub fn read_many<'env>(
        &self,
        env: &'env Env,
        paths: String,
        count: u32,
        #[napi(ts_arg_type = "Float64Array")] mut lengths: InPlace<f64>,
    ) -> Result<Either<Buffer, PromiseRaw<'env, Vec<Buffer>>>> {
        let (s, paths) = (self.session(), Joined::new(paths, count)?);
        settle_map(
            env,
            async move { paths.each(|path| s.read_file(path)).await },
            move |_, list| {
                let lengths = lengths.slice();
                if lengths.len() < list.len() {
                    return Err(napi::Error::new(Status::InvalidArg, "readMany lengths are too short"));
                }
                let mut all = Vec::with_capacity(list.iter().map(Bytes::len).sum());
                for (bytes, length) in list.iter().zip(lengths) {
                    all.extend_from_slice(bytes);
                    *length = bytes.len() as f64;
                }
                Ok(Buffer::from(all))
            },
            |list| list.into_iter().map(buffer).collect(),
        )
    }

    /// Reads up to `length` bytes at `offset`.
    #[napi]
    pub fn read<'env>(
        &self,
        env: &'env Env,
        path: String,
        offset: f64,
        length: f64,
    ) -> Result<Either<BufferSlice<'env>, PromiseRaw<'env, Buffer>>> {
        let s = self.session();
        settle_map(
            env,
            async move { s.read(&path, offset as u64, length as u64).await },
            BufferSlice::copy_from,
            buffer,
        )
    }

    /// Creates or replaces a file.
    #[napi]
    pub fn write_file<'env>(
        &self,
        env: &'env Env,
        path: String,
        #[napi(ts_arg_type = "string | Uint8Array")] data: Data,
    ) -> Result<Either<bool, PromiseRaw<'env, bool>>> {
        let s = self.session();
        settle(env, async move { Ok(names_itself(&s.write_file(&path, data.0).await?, &path)) })
    }

    /// Appends to a file, creating it if needed.
    #[napi]
    pub fn append_file<'env>(
        &self,
        env: &'env Env,
        path: String,
        #[napi(ts_arg_type = "string | Uint8Array")] data: Data,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let (s, data) = (self.session(), data.0);
        settle(env, async move { s.append(&path, data).await })
    }

    /// Writes at an offset of an existing file.
    #[napi]
    pub fn write<'env>(
        &self,
        env: &'env Env,
        path: String,
        offset: f64,
        #[napi(ts_arg_type = "string | Uint8Array")] data: Data,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let (s, data) = (self.session(), data.0);
        settle(env, async move { s.write(&path, offset as u64, data).await })
    }

    /// Sets a file's length.
    #[napi]
    pub fn truncate<'env>(
        &self,
        env: &'env Env,
        path: String,
        length: f64,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.truncate(&path, length as u64).await })
    }

    /// Lists a directory.
    #[napi]
    pub fn readdir<'env>(
        &self,
        env: &'env Env,
        path: String,
    ) -> Result<Either<Vec<Dirent>, PromiseRaw<'env, Vec<Dirent>>>> {
        let s = self.session();
        settle(env, async move { Ok(s.read_dir(&path).await?.into_iter().map(Dirent::from).collect()) })
    }

    /// Creates a directory (and its parents with `recursive`).
    #[napi]
    pub fn mkdir<'env>(
        &self,
        env: &'env Env,
        path: String,
        mode: u32,
        recursive: bool,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { if recursive { s.mkdir_all(&path).await } else { s.mkdir(&path, mode).await } })
    }

    /// Removes an empty directory.
    #[napi]
    pub fn rmdir<'env>(&self, env: &'env Env, path: String) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.rmdir(&path).await })
    }

    /// Removes a file or link; with `recursive`, a directory and everything below it; with
    /// `force`, a missing path is not an error.
    #[napi]
    pub fn rm<'env>(
        &self,
        env: &'env Env,
        path: String,
        recursive: bool,
        force: bool,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move {
            if recursive {
                return s.remove_all(&path, force).await;
            }
            match s.remove(&path).await {
                Err(e) if force && e.kind() == mirage_core::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        })
    }

    /// Renames a file or directory.
    #[napi]
    pub fn rename<'env>(&self, env: &'env Env, from: String, to: String) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.rename(&from, &to).await })
    }

    /// Copies a file (the content is shared, not duplicated).
    #[napi]
    pub fn copy_file<'env>(
        &self,
        env: &'env Env,
        from: String,
        to: String,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.copy_file(&from, &to).await })
    }

    /// Creates a symbolic link at `path` pointing to `target`.
    #[napi]
    pub fn symlink<'env>(
        &self,
        env: &'env Env,
        target: String,
        path: String,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.symlink(&target, &path).await })
    }

    /// Reads a symbolic link's target.
    #[napi]
    pub fn readlink<'env>(&self, env: &'env Env, path: String) -> Result<Either<String, PromiseRaw<'env, String>>> {
        let s = self.session();
        settle(env, async move { s.readlink(&path).await })
    }

    /// The canonical path, every link resolved.
    #[napi]
    pub fn realpath<'env>(&self, env: &'env Env, path: String) -> Result<Either<String, PromiseRaw<'env, String>>> {
        let s = self.session();
        settle(env, async move { s.realpath(&path).await.map(|p| p.to_string()) })
    }

    /// Sets permission bits.
    #[napi]
    pub fn chmod<'env>(&self, env: &'env Env, path: String, mode: u32) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.set_mode(&path, mode).await })
    }

    /// Sets access and modification times (milliseconds since the epoch).
    #[napi]
    pub fn utimes<'env>(
        &self,
        env: &'env Env,
        path: String,
        atime_ms: f64,
        mtime_ms: f64,
    ) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.set_times(&path, Some(from_millis(atime_ms)), Some(from_millis(mtime_ms))).await })
    }

    /// The working directory.
    #[napi]
    pub fn cwd(&self) -> Result<String> {
        self.inner.cwd().map(|p| p.to_string()).map_err(js_error)
    }

    /// Changes the working directory.
    #[napi]
    pub fn chdir<'env>(&self, env: &'env Env, path: String) -> Result<Either<(), PromiseRaw<'env, ()>>> {
        let s = self.session();
        settle(env, async move { s.chdir(&path).await })
    }

    /// The session's environment variables.
    #[napi]
    pub fn env(&self) -> Result<HashMap<String, String>> {
        Ok(self.inner.env().map_err(js_error)?.into_iter().collect())
    }

    /// Sets (or, with `null`, removes) an environment variable.
    #[napi]
    pub fn set_env(&self, key: String, value: Option<String>) -> Result<()> {
        self.inner.set_env(&key, value.as_deref()).map_err(js_error)
    }

    /// Forks in O(1); the fork is isolated from this session until one of them commits.
    #[napi]
    pub fn fork(&self, name: Option<String>) -> Result<Session> {
        match name {
            Some(name) => self.inner.fork_named(&name),
            None => self.inner.fork(),
        }
        .map(Session::from)
        .map_err(js_error)
    }

    /// What this session changed relative to where it started.
    #[napi]
    pub fn diff<'env>(&self, env: &'env Env) -> Result<Either<Vec<ChangeInfo>, PromiseRaw<'env, Vec<ChangeInfo>>>> {
        let s = self.session();
        settle(env, async move {
            Ok(s.diff()
                .await?
                .into_iter()
                .map(|c| ChangeInfo {
                    path: c.path.to_string(),
                    change: match c.kind {
                        ChangeKind::Added => "added",
                        ChangeKind::Modified => "modified",
                        ChangeKind::Deleted => "deleted",
                    }
                    .to_owned(),
                    kind: type_name(c.file_type),
                    old_size: c.old_size.map(|n| n as f64),
                    new_size: c.new_size.map(|n| n as f64),
                })
                .collect())
        })
    }

    /// A unified diff of one file.
    #[napi]
    pub fn diff_text<'env>(&self, env: &'env Env, path: String) -> Result<Either<String, PromiseRaw<'env, String>>> {
        let s = self.session();
        settle(env, async move { s.diff_text(&path).await })
    }

    /// Commits into the parent (first winner wins) or, for a root session, into the
    /// resources; `message` describes the commit where a resource records one (a git
    /// repository).
    #[napi]
    pub fn commit<'env>(
        &self,
        env: &'env Env,
        winner_takes_all: bool,
        message: Option<String>,
    ) -> Result<Either<CommitInfo, PromiseRaw<'env, CommitInfo>>> {
        let s = self.session();
        settle(env, async move {
            let report = s.commit(CommitOptions { winner_takes_all, message }).await?;
            Ok(CommitInfo { applied: report.applied.iter().map(|p| p.to_string()).collect(), aborted: report.aborted })
        })
    }

    /// Discards this session and its forks.
    #[napi]
    pub fn abort(&self) -> Result<()> {
        self.inner.abort().map_err(js_error)
    }

    /// Makes this session's changes durable in the store.
    #[napi]
    pub fn flush(&self) -> Result<()> {
        self.inner.flush().map_err(js_error)
    }

    /// `readdir` without a promise.
    #[napi]
    pub fn readdir_sync(&self, path: String) -> Result<Vec<Dirent>> {
        now(async { Ok(self.inner.read_dir(&path).await?.into_iter().map(Dirent::from).collect()) })
    }
}
