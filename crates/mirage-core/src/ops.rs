//! The operations that change a session: they build [`Record`]s from what the session sees
//! and hand them to the hub, which journals and applies them in one step.
//!
//! Each runs under the session's write lock, so the view it computed from is the view its
//! records apply to.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::budget::{self, Buffer};
use crate::error::{Error, ErrorKind, Result};
use crate::overlay::{Attr, FileData, Node, NodeKind, Origin, View};
use crate::path::VPath;
use crate::resource::FileType;
use crate::session::{Found, Hub, Session};
use crate::state::Record;

/// The largest file a session holds: 16 TiB, ext4's limit. A sparse file grown further could
/// be committed to few filesystems, and writing out its holes would take hours.
pub const MAX_FILE_SIZE: u64 = 1 << 44;

fn err(kind: ErrorKind, op: &'static str, path: &VPath) -> Error {
    Error::new(kind, op).with_path(path.clone())
}

fn fresh_attr(mode: u32) -> Attr {
    let now = SystemTime::now();
    Attr { mode: mode & 0o7777, mtime: now, atime: now }
}

/// Holds a session's write lock for one mutation; on release, watchers hear what changed.
pub(crate) struct OpGuard<'a> {
    lock: Option<futures::lock::MutexGuard<'a, ()>>,
    hub: &'a Hub,
}

impl Drop for OpGuard<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        self.hub.deliver();
    }
}

impl Session {
    /// Starts a mutation: takes the session's write lock (held by the returned guard, which
    /// tells watchers what changed once it is released) and the view to compute from.
    async fn begin(&self) -> Result<(OpGuard<'_>, View)> {
        let lock = self.write_lock().lock().await;
        Ok((OpGuard { lock: Some(lock), hub: &self.hub }, self.view()?))
    }

    /// Journals and applies `records`, releasing the view they were computed from first, so
    /// that the session's maps are updated in place rather than copied. Fails with `NoSpace`,
    /// changing nothing, when the entries they add or grow would pass the content limit (see
    /// [`budget::room_for_entries`]); whiteouts are always let in, so that removing works on
    /// a full session.
    fn apply(&self, view: View, records: &[Record], op: &'static str) -> Result<()> {
        if budget::content_limit().is_some() {
            let (mut first, mut more) = (None, 0);
            for record in records {
                if let Record::Set { path, node, .. } = record
                    && !matches!(node.kind, NodeKind::Whiteout)
                {
                    let was = view.get(path).map_or(0, |old| old.weight(path.as_str().len()));
                    let weight = node.weight(path.as_str().len());
                    if weight > was {
                        first.get_or_insert(path);
                        more += weight - was;
                    }
                }
            }
            if let Some(first) = first {
                budget::room_for_entries(more, op).map_err(|e| e.with_path(first.clone()))?;
            }
        }
        drop(view);
        self.hub.record(records)
    }

    fn set(&self, path: &VPath, node: Arc<Node>) -> Record {
        Record::Set { session: self.id, path: path.clone(), node }
    }

    /// Resolves the directory that will hold `path` and returns the entry's real path and
    /// what is there now (following a final link only when `follow`). Creating there must be
    /// allowed; callers that replace an existing entry check writability themselves.
    async fn target(&self, view: &View, path: &VPath, follow: bool, op: &'static str) -> Result<(VPath, Found)> {
        let (path, found) = self.resolve(view, path, follow, op).await?;
        if !found.exists() {
            // Resolution left no link in the parent's path, so one lookup describes it; a
            // mount point or a directory the session holds needs none.
            let parent = path.ancestor_strs().next().ok_or_else(|| err(ErrorKind::AlreadyExists, op, &path))?;
            let known_dir = view.get(parent).is_some_and(|n| matches!(n.kind, NodeKind::Dir { .. }))
                || self.hub.mounts().is_mount_point(parent);
            let parent_type = if known_dir {
                Some(FileType::Dir)
            } else {
                let parent = path.parent().expect("a path with an ancestor has a parent");
                self.lookup(view, &parent).await.map_err(|e| e.with_op(op))?.file_type()
            };
            match parent_type {
                Some(FileType::Dir) => {}
                Some(_) => return Err(err(ErrorKind::NotADirectory, op, &path)),
                None => return Err(err(ErrorKind::NotFound, op, &path).with_detail("parent directory does not exist")),
            }
            self.check_writable(op, &path)?;
        }
        Ok((path, found))
    }

    /// Creates or replaces the file at `path` with `data` (following a final symlink), and
    /// returns the path written: `path` made absolute, links followed.
    ///
    /// # Errors
    /// `IsADirectory`, `NotFound` for a missing parent, `ReadOnly`.
    pub async fn write_file(&self, path: &str, data: impl Into<Bytes>) -> Result<VPath> {
        let path = self.abs(path)?;
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.target(&view, &path, true, "write").await?;
        if found.exists() {
            // `target` checked the mount of a new entry.
            self.check_writable("write", &path)?;
        }
        let mode = match found.file_type() {
            Some(FileType::Dir) => return Err(err(ErrorKind::IsADirectory, "write", &path)),
            // The old content is replaced whole: only its mode carries over, so nothing is read.
            Some(_) => self.metadata(&found).map_or(0o644, |meta| meta.mode),
            None => 0o644,
        };
        let data = budget::hold(data.into(), Buffer::Own, "write").map_err(|e| e.with_path(path.clone()))?;
        let node = self.new_node(found.origin(), fresh_attr(mode), NodeKind::File(FileData::from_bytes(data)));
        self.apply(view, &[self.set(&path, node)], "write")?;
        Ok(path)
    }

    /// Creates an empty file; fails if anything exists at `path` (O_CREAT | O_EXCL).
    ///
    /// # Errors
    /// `AlreadyExists`, `NotFound` for a missing parent, `ReadOnly`.
    pub async fn create(&self, path: &str, mode: u32) -> Result<()> {
        let path = self.abs(path)?;
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.target(&view, &path, false, "create").await?;
        if found.exists() {
            return Err(err(ErrorKind::AlreadyExists, "create", &path));
        }
        let node = self.new_node(found.origin(), fresh_attr(mode), NodeKind::File(FileData::empty()));
        self.apply(view, &[self.set(&path, node)], "create")
    }

    /// Writes `data` at `offset` into the existing file at `path`, extending it as needed.
    /// Only the 64 KiB chunks the write touches are copied into the overlay.
    ///
    /// # Errors
    /// `NotFound`, `IsADirectory`, `ReadOnly`, or the resource's error reading a partly
    /// overwritten chunk.
    pub async fn write(&self, path: &str, offset: u64, data: impl Into<Bytes>) -> Result<()> {
        let data = data.into();
        self.change_file(path, "write", move |_| Some(offset), data).await
    }

    /// Appends `data` to the file at `path`, creating it if needed.
    ///
    /// # Errors
    /// As [`Session::write`].
    pub async fn append(&self, path: &str, data: impl Into<Bytes>) -> Result<()> {
        let data = data.into();
        match self.change_file(path, "append", Some, data.clone()).await {
            Err(e) if e.kind() == ErrorKind::NotFound && !self.exists(path).await? => {
                self.write_file(path, data).await.map(drop)
            }
            other => other,
        }
    }

    /// Sets the length of the file at `path`; what grows reads as zeros.
    ///
    /// # Errors
    /// As [`Session::write`].
    pub async fn truncate(&self, path: &str, len: u64) -> Result<()> {
        self.change_file(path, "truncate", move |_| None, Bytes::from(len.to_le_bytes().to_vec())).await
    }

    /// Writes at the offset `at(size)` returns, or truncates to the length encoded in
    /// `data` when it returns `None`.
    async fn change_file(
        &self,
        path: &str,
        op: &'static str,
        at: impl FnOnce(u64) -> Option<u64>,
        data: Bytes,
    ) -> Result<()> {
        let path = self.abs(path)?;
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.resolve(&view, &path, true, op).await?;
        match found.file_type() {
            Some(FileType::File) => {}
            Some(FileType::Dir) => return Err(err(ErrorKind::IsADirectory, op, &path)),
            Some(FileType::Symlink) => return Err(err(ErrorKind::InvalidInput, op, &path)),
            None => return Err(err(ErrorKind::NotFound, op, &path)),
        }
        self.check_writable(op, &path)?;
        let in_overlay = matches!(found, Found::Node(_));
        let mut node = self.copy_up(&path, &found, op).await?;
        let NodeKind::File(file) = &mut node.kind else { unreachable!("checked to be a file") };
        let at = at(file.size);
        let truncate_to = || u64::from_le_bytes(data.as_ref().try_into().expect("8 bytes"));
        let end = match at {
            Some(offset) => offset.checked_add(data.len() as u64),
            None => Some(truncate_to()),
        };
        if end.is_none_or(|end| end > MAX_FILE_SIZE) {
            return Err(err(ErrorKind::FileTooLarge, op, &path)
                .with_detail(format!("a file in a session holds at most {MAX_FILE_SIZE} bytes (16 TiB)")));
        }
        let (size, chunks) = match at {
            Some(offset) => {
                let mut fills = Vec::new();
                for idx in file.chunks_to_fill(offset, data.len() as u64) {
                    let start = idx * crate::overlay::CHUNK;
                    fills.push((idx, self.read_file_data(&path, file, start, crate::overlay::CHUNK).await?));
                }
                let data = budget::hold(data, Buffer::Own, op).map_err(|e| e.with_path(path.clone()))?;
                let changed = file.write(offset, &data, &fills, op).map_err(|e| e.with_path(path.clone()))?;
                (
                    file.size,
                    changed.into_iter().map(|i| (i, file.chunks.get(i).expect("written just now").clone())).collect(),
                )
            }
            None => {
                let len = truncate_to();
                file.truncate(len);
                (len, Vec::new())
            }
        };
        let attr = Attr { mtime: SystemTime::now(), ..node.attr };
        let stamp = self.hub.next_stamp();
        let record = if in_overlay {
            Record::Patch { session: self.id, path, stamp, attr, size, chunks }
        } else {
            self.set(&path, Arc::new(Node { stamp, attr, ..node }))
        };
        self.apply(view, &[record], op)
    }

    /// Creates a directory whose parent exists.
    ///
    /// # Errors
    /// `AlreadyExists`, `NotFound` for a missing parent, `ReadOnly`.
    pub async fn mkdir(&self, path: &str, mode: u32) -> Result<()> {
        let path = self.abs(path)?;
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.target(&view, &path, false, "mkdir").await?;
        if found.exists() {
            return Err(err(ErrorKind::AlreadyExists, "mkdir", &path));
        }
        let node = self.new_node(found.origin(), fresh_attr(mode), NodeKind::Dir { opaque: true });
        self.apply(view, &[self.set(&path, node)], "mkdir")
    }

    /// Creates a directory and any missing parents; succeeds if it already exists.
    ///
    /// # Errors
    /// `AlreadyExists` when `path` is a file, `NotADirectory` when a component above it is
    /// one, `ReadOnly`.
    pub async fn mkdir_all(&self, path: &str) -> Result<()> {
        let path = self.abs(path)?;
        let mut dirs: Vec<VPath> = path.ancestors().collect();
        dirs.reverse();
        for dir in dirs.into_iter().skip(1).chain(std::iter::once(path.clone())) {
            match self.mkdir(dir.as_str(), 0o755).await {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    // As `mkdir -p`: what is in the way is EEXIST at the end and ENOTDIR above
                    // it; a dangling link at the end reports why it dangles.
                    let last = dir == path;
                    match self.stat(dir.as_str()).await {
                        Ok(meta) if meta.is_dir() => {}
                        Ok(_) if last => return Err(err(ErrorKind::AlreadyExists, "mkdir", &dir)),
                        Err(e) if last => return Err(e.with_op("mkdir")),
                        Ok(_) => return Err(err(ErrorKind::NotADirectory, "mkdir", &dir)),
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            return Err(err(ErrorKind::NotADirectory, "mkdir", &dir));
                        }
                        Err(e) => return Err(e.with_op("mkdir")),
                    }
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Creates a symbolic link at `path` whose target is `target` (stored verbatim; resolved
    /// in the virtual tree when followed).
    ///
    /// # Errors
    /// `AlreadyExists`, `NotFound` for a missing parent, `ReadOnly`, `Unsupported` when the
    /// resource cannot hold links.
    pub async fn symlink(&self, target: &str, path: &str) -> Result<()> {
        let path = self.abs(path)?;
        if target.is_empty() || target.contains('\0') {
            return Err(err(ErrorKind::InvalidInput, "symlink", &path).with_detail("empty target or NUL byte"));
        }
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.target(&view, &path, false, "symlink").await?;
        if found.exists() {
            return Err(err(ErrorKind::AlreadyExists, "symlink", &path));
        }
        if let crate::mount::Route::Resource(mount, _) = self.hub.route(&path)
            && !mount.resource().capabilities().symlinks
        {
            return Err(err(ErrorKind::Unsupported, "symlink", &path)
                .with_mount(mount.point().clone())
                .with_detail("this resource cannot hold symbolic links"));
        }
        let node = self.new_node(found.origin(), fresh_attr(0o777), NodeKind::Symlink(target.to_owned()));
        self.apply(view, &[self.set(&path, node)], "symlink")
    }

    /// Removes a file or symbolic link.
    ///
    /// # Errors
    /// `NotFound`, `IsADirectory`, `ReadOnly`.
    pub async fn remove(&self, path: &str) -> Result<()> {
        self.remove_entry(path, false).await
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    /// `NotFound`, `NotADirectory`, `DirectoryNotEmpty`, `ReadOnly`, `PermissionDenied` for a
    /// mount point.
    pub async fn rmdir(&self, path: &str) -> Result<()> {
        self.remove_entry(path, true).await
    }

    async fn remove_entry(&self, path: &str, dir: bool) -> Result<()> {
        let op = if dir { "rmdir" } else { "unlink" };
        let path = self.abs(path)?;
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.resolve(&view, &path, false, op).await?;
        match (found.file_type(), dir) {
            (None, _) => return Err(err(ErrorKind::NotFound, op, &path)),
            (Some(FileType::Dir), false) => return Err(err(ErrorKind::IsADirectory, op, &path)),
            (Some(FileType::File | FileType::Symlink), true) => return Err(err(ErrorKind::NotADirectory, op, &path)),
            _ => {}
        }
        if dir {
            if path.is_root() || self.hub.mounts().get(&path).is_some() || matches!(found, Found::Synthetic) {
                return Err(err(ErrorKind::PermissionDenied, op, &path).with_detail("a mount point cannot be removed"));
            }
            if !self.list_found(&view, &path, &found).await?.is_empty() {
                return Err(err(ErrorKind::DirectoryNotEmpty, op, &path));
            }
        }
        self.check_writable(op, &path)?;
        let node = self.new_node(found.origin(), fresh_attr(0), NodeKind::Whiteout);
        self.apply(view, &[self.set(&path, node)], op)
    }

    /// Removes `path` and everything below it (`rm -r`); with `force`, a missing path is
    /// not an error.
    ///
    /// # Errors
    /// `NotFound` (without `force`), `ReadOnly`.
    pub async fn remove_all(&self, path: &str, force: bool) -> Result<()> {
        let abs = self.abs(path)?;
        let meta = match self.lstat(abs.as_str()).await {
            Ok(meta) => meta,
            Err(e) if force && e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            for entry in self.read_dir(abs.as_str()).await? {
                Box::pin(self.remove_all(abs.child(&entry.name)?.as_str(), force)).await?;
            }
            self.rmdir(abs.as_str()).await
        } else {
            self.remove(abs.as_str()).await
        }
    }

    /// Renames `from` to `to`, replacing a file (or an empty directory, when moving one) at
    /// `to`. Directories move with everything below them; content is never copied.
    ///
    /// # Errors
    /// `NotFound`, `IsADirectory`/`NotADirectory` for mismatched kinds, `DirectoryNotEmpty`,
    /// `InvalidInput` for a move into itself, `ReadOnly`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.abs(from)?, self.abs(to)?);
        let (_guard, view) = self.begin().await?;
        // As the kernel does: both parents are resolved, in order, before the source is
        // looked at.
        let (from, found) = self.resolve(&view, &from, false, "rename").await?;
        if !found.exists()
            && let Some(parent) = from.parent()
        {
            match self.lookup(&view, &parent).await.map_err(|e| e.with_op("rename"))?.file_type() {
                Some(FileType::Dir) => {}
                Some(_) => return Err(err(ErrorKind::NotADirectory, "rename", &from)),
                None => return Err(err(ErrorKind::NotFound, "rename", &from)),
            }
        }
        let (to, existing) = self.target(&view, &to, false, "rename").await?;
        let Some(kind) = found.file_type() else { return Err(err(ErrorKind::NotFound, "rename", &from)) };
        self.check_writable("rename", &from)?;
        self.check_writable("rename", &to)?;
        if from == to {
            return Ok(());
        }
        if to.starts_with(&from) {
            return Err(
                err(ErrorKind::InvalidInput, "rename", &to).with_detail(format!("'{from}' cannot move into itself"))
            );
        }
        if from.starts_with(&to) {
            // The target is an ancestor of the source, so not empty (the kernel agrees).
            return Err(err(ErrorKind::DirectoryNotEmpty, "rename", &to));
        }
        if from.is_root() || self.hub.mounts().get(&from).is_some() || matches!(found, Found::Synthetic) {
            return Err(err(ErrorKind::PermissionDenied, "rename", &from).with_detail("a mount point cannot be moved"));
        }
        match (kind, existing.file_type()) {
            (FileType::Dir, Some(FileType::Dir)) if !self.list_found(&view, &to, &existing).await?.is_empty() => {
                return Err(err(ErrorKind::DirectoryNotEmpty, "rename", &to));
            }
            (FileType::Dir, Some(FileType::Dir)) => {}
            (FileType::Dir, Some(_)) => return Err(err(ErrorKind::NotADirectory, "rename", &to)),
            (_, Some(FileType::Dir)) => return Err(err(ErrorKind::IsADirectory, "rename", &to)),
            _ => {}
        }
        let mut records = Vec::new();
        let mut pending = vec![(from.clone(), found)];
        while let Some((source, found)) = pending.pop() {
            let dest = source.strip_prefix(&from).expect("below from").rebase(&to);
            let dest_origin = match view.get(&dest) {
                Some(node) => node.origin.clone(),
                None if dest == to => existing.origin(),
                None => Origin::Absent,
            };
            let mut node = self.copy_up(&source, &found, "rename").await?;
            if let NodeKind::Dir { opaque } = &mut node.kind {
                *opaque = true;
                let entries = self.list_found(&view, &source, &found).await?;
                for entry in entries {
                    let child = source.child(&entry.name)?;
                    let child_found = self.lookup(&view, &child).await?;
                    pending.push((child, child_found));
                }
            }
            records.push(self.set(&dest, Arc::new(Node { stamp: self.hub.next_stamp(), origin: dest_origin, ..node })));
            let whiteout = self.new_node(found.origin(), fresh_attr(0), NodeKind::Whiteout);
            records.push(self.set(&source, whiteout));
        }
        records.sort_by_key(|r| matches!(r, Record::Set { node, .. } if node.file_type().is_none()));
        self.apply(view, &records, "rename")
    }

    /// Copies the file at `from` to `to` (content is shared, not duplicated).
    ///
    /// # Errors
    /// `NotFound`, `IsADirectory`, `ReadOnly`.
    pub async fn copy_file(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.abs(from)?, self.abs(to)?);
        let (_guard, view) = self.begin().await?;
        // In the order copyfile(3) meets them: the source opens, then the target, then the
        // source turns out to be a directory.
        let (from, found) = self.resolve(&view, &from, true, "copyfile").await?;
        if !found.exists() {
            return Err(err(ErrorKind::NotFound, "copyfile", &from));
        }
        let (to, existing) = self.target(&view, &to, true, "copyfile").await?;
        if found.file_type() != Some(FileType::File) {
            return Err(err(ErrorKind::IsADirectory, "copyfile", &from));
        }
        if existing.file_type() == Some(FileType::Dir) {
            return Err(err(ErrorKind::IsADirectory, "copyfile", &to));
        }
        self.check_writable("copyfile", &to)?;
        let node = self.copy_up(&from, &found, "copyfile").await?;
        let node =
            Node { stamp: self.hub.next_stamp(), origin: existing.origin(), attr: fresh_attr(node.attr.mode), ..node };
        self.apply(view, &[self.set(&to, Arc::new(node))], "copyfile")
    }

    /// Sets the permission bits of `path` (following symbolic links).
    ///
    /// # Errors
    /// `NotFound`, `ReadOnly`.
    pub async fn set_mode(&self, path: &str, mode: u32) -> Result<()> {
        self.change_attr(path, "chmod", |attr| attr.mode = mode & 0o7777).await
    }

    /// Sets access and modification times (`None` leaves one unchanged).
    ///
    /// # Errors
    /// `NotFound`, `ReadOnly`.
    pub async fn set_times(&self, path: &str, atime: Option<SystemTime>, mtime: Option<SystemTime>) -> Result<()> {
        self.change_attr(path, "utimes", |attr| {
            attr.atime = atime.unwrap_or(attr.atime);
            attr.mtime = mtime.unwrap_or(attr.mtime);
        })
        .await
    }

    async fn change_attr(&self, path: &str, op: &'static str, change: impl FnOnce(&mut Attr)) -> Result<()> {
        let path = self.abs(path)?;
        let (_guard, view) = self.begin().await?;
        let (path, found) = self.resolve(&view, &path, true, op).await?;
        if !found.exists() {
            return Err(err(ErrorKind::NotFound, op, &path));
        }
        self.check_writable(op, &path)?;
        let mut node = self.copy_up(&path, &found, op).await?;
        change(&mut node.attr);
        node.stamp = self.hub.next_stamp();
        self.apply(view, &[self.set(&path, Arc::new(node))], op)
    }
}
