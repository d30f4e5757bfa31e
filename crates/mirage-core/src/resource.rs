//! The [`Resource`] trait: what a backend implements to appear in the tree.
//!
//! # Contract
//!
//! Paths handed to a resource are *inner* paths: `/` is the root of the resource, whatever
//! its mount point. A resource never follows symbolic links, not even in intermediate
//! components: `stat` describes a link itself, and a path that passes *through* a link fails
//! with [`ErrorKind::FilesystemLoop`]. The session layer resolves links in the virtual tree, so
//! a link's target always means a virtual path and can never reach outside the tree.
//!
//! Every entry carries a [`Version`] token that changes whenever the entry's content or kind
//! changes (an etag, a git sha, mtime + size + inode). Sessions record the version they saw
//! and commit with conditional writes against it.
//!
//! Only `stat`, `read` and `list` are required; every write primitive defaults to a clean
//! `EROFS` for read-only resources and `ENOTSUP` otherwise. [`Resource::put`] has a default
//! built from the primitives, which backends with atomic replacement (local files, object
//! stores with If-Match) should override. A backend that records changes as one unit (a git
//! repository) takes a root commit whole instead: [`Resource::whole_commits`] and
//! [`Resource::commit_whole`].

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::path::VPath;

/// The kind of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// An opaque token that changes whenever an entry's content or kind changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version(pub String);

/// What [`Resource::stat`] reports about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// File, directory or symlink.
    pub file_type: FileType,
    /// Size in bytes (the target's length for a symlink, 0 for directories where unknown).
    pub size: u64,
    /// Permission bits (`0o7777` at most); the exec bit matters.
    pub mode: u32,
    /// Last modification time.
    pub mtime: SystemTime,
    /// Last access time (resources that do not track it report `mtime`).
    pub atime: SystemTime,
    /// The entry's version token.
    pub version: Version,
}

impl Metadata {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.file_type == FileType::Dir
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// The entry's name (one component).
    pub name: String,
    /// The entry's kind.
    pub file_type: FileType,
}

/// What a resource can do; the session layer refuses the rest up front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// No write primitive works.
    pub read_only: bool,
    /// `read` honours offset and length without fetching the whole entry.
    pub ranged_reads: bool,
    /// `rename` is supported and atomic.
    pub atomic_rename: bool,
    /// Symbolic links can be created and read.
    pub symlinks: bool,
    /// Permission bits are stored.
    pub modes: bool,
    /// Every operation completes when first polled, waiting on nothing (RAM, host files).
    /// Callers that poll once on their own thread may then drop an operation that did wait
    /// (for a lock) and run it again; for a resource that does I/O they hand it over instead,
    /// so that no request is sent twice.
    pub immediate: bool,
}

impl Capabilities {
    /// A writable resource that supports everything, and may wait.
    pub const FULL: Capabilities = Capabilities {
        read_only: false,
        ranged_reads: true,
        atomic_rename: true,
        symlinks: true,
        modes: true,
        immediate: false,
    };
}

/// A condition for [`Resource::put`]: the write happens only if it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Write whatever is there.
    None,
    /// Only if the path does not exist (If-None-Match: *).
    Absent,
    /// Only if the path exists with this version (If-Match).
    Version(Version),
}

/// A stream of content chunks, used to hand whole files to [`Resource::put`]. A chunk made
/// by [`hole`] is zeros the file never had written (a sparse file's hole): a resource may
/// skip it (leaving a hole of its own) where others write it as the zeros it reads as.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// The zeros [`hole`] hands out, shared.
static ZEROS: [u8; HOLE_PIECE] = [0; HOLE_PIECE];

/// The longest [`hole`].
pub const HOLE_PIECE: usize = 1 << 20;

/// `len` zero bytes that mark a hole in a [`ByteStream`] (at most [`HOLE_PIECE`]); they
/// cost no allocation.
///
/// # Panics
/// When `len` exceeds [`HOLE_PIECE`].
pub fn hole(len: usize) -> Bytes {
    Bytes::from_static(&ZEROS[..len])
}

/// Whether `chunk` was made by [`hole`] (not merely zeros).
pub fn is_hole(chunk: &Bytes) -> bool {
    !chunk.is_empty() && ZEROS.as_ptr_range().contains(&chunk.as_ptr())
}

/// What a whole commit ([`Resource::commit_whole`]) makes of one path.
pub enum Update {
    /// Nothing there any more (a directory goes with all it holds).
    Remove,
    /// A directory. Resources that keep no empty directories may leave it out.
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link to `target` (stored verbatim).
    Symlink {
        /// Where the link points.
        target: String,
    },
    /// A regular file with this content.
    File {
        /// The whole content, read on demand.
        content: ByteStream,
        /// Permission bits (the exec bit matters).
        mode: u32,
    },
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Update::Remove => f.write_str("Remove"),
            Update::Dir { mode } => f.debug_struct("Dir").field("mode", mode).finish(),
            Update::Symlink { target } => f.debug_struct("Symlink").field("target", target).finish(),
            Update::File { mode, .. } => f.debug_struct("File").field("mode", mode).finish_non_exhaustive(),
        }
    }
}

/// One path of a whole commit: what it becomes, and the version the commit found there
/// (`None`: nothing).
#[derive(Debug)]
pub struct Staged {
    /// The path, inside the resource.
    pub path: VPath,
    /// What it becomes.
    pub update: Update,
    /// The version the commit checked it against.
    pub seen: Option<Version>,
}

/// A stat's result with an absent entry as `Ok(None)`, as [`Resource::stat_now`] answers.
pub(crate) fn absent_as_none(stat: Result<Metadata>) -> Result<Option<Metadata>> {
    match stat {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A backend that can appear at a mount point: RAM, a host directory, a bucket, a repository.
///
/// Implementors write `stat`, `read`, `list` and whichever write primitives they support;
/// see the module docs for the contract. `Send + Sync` because sessions call it from many
/// tasks at once.
#[async_trait]
pub trait Resource: Send + Sync + fmt::Debug {
    /// What this resource supports.
    fn capabilities(&self) -> Capabilities;

    /// Describes one entry, without following a final symlink.
    async fn stat(&self, path: &VPath) -> Result<Metadata>;

    /// Describes one entry as [`Resource::stat`] does, when the resource can answer without
    /// waiting (memory, a host directory), with `Ok(None)` where `stat` fails with `NotFound`;
    /// `None`, the default, sends the caller to `stat`.
    ///
    /// Every new file's path is looked up and found absent first. Answering here spares that
    /// lookup the boxed future of an async call and the error of an absent entry.
    fn stat_now(&self, path: &VPath) -> Option<Result<Option<Metadata>>> {
        let _ = path;
        None
    }

    /// Reads up to `len` bytes at `offset`; short only at end of file.
    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes>;

    /// Lists a directory, in any order.
    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>>;

    /// Writes `data` at `offset` into an existing file, extending it as needed.
    async fn write(&self, path: &VPath, offset: u64, data: &[u8]) -> Result<()> {
        let _ = (offset, data);
        Err(refuse(self, "write", path))
    }

    /// Creates an empty file; fails with `AlreadyExists` if the path exists.
    async fn create(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        Err(refuse(self, "create", path))
    }

    /// Creates a directory whose parent exists.
    async fn mkdir(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        Err(refuse(self, "mkdir", path))
    }

    /// Removes a file or symlink.
    async fn remove(&self, path: &VPath) -> Result<()> {
        Err(refuse(self, "remove", path))
    }

    /// Removes an empty directory.
    async fn rmdir(&self, path: &VPath) -> Result<()> {
        Err(refuse(self, "rmdir", path))
    }

    /// Renames an entry, replacing a file (or an empty directory) at `to`.
    async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        let _ = to;
        Err(refuse(self, "rename", from))
    }

    /// Sets a file's length, zero-filling when it grows.
    async fn truncate(&self, path: &VPath, len: u64) -> Result<()> {
        let _ = len;
        Err(refuse(self, "truncate", path))
    }

    /// Creates a symbolic link at `path` pointing to `target` (stored verbatim).
    async fn symlink(&self, target: &str, path: &VPath) -> Result<()> {
        let _ = target;
        Err(refuse(self, "symlink", path))
    }

    /// Reads a symbolic link's target.
    async fn readlink(&self, path: &VPath) -> Result<String> {
        Err(Error::new(ErrorKind::InvalidInput, "readlink").with_path(path.clone()))
    }

    /// Sets permission bits.
    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        let _ = mode;
        Err(refuse(self, "chmod", path))
    }

    /// The host file holding the regular file at `path`, opened read-only, for resources
    /// that keep their files on the host (the local resource): a FUSE server can then let the
    /// kernel read it directly. `None` (the default) where there is no such file.
    fn host_file(&self, path: &VPath) -> Option<std::fs::File> {
        let _ = path;
        None
    }

    /// Sets access and modification times; `None` leaves a time unchanged.
    async fn set_times(&self, path: &VPath, atime: Option<SystemTime>, mtime: Option<SystemTime>) -> Result<()> {
        let _ = (atime, mtime);
        Err(refuse(self, "utimes", path))
    }

    /// True when the resource takes a root commit's changes all at once, through
    /// [`Resource::commit_whole`], rather than path by path through the primitives: a
    /// backend that records changes as one unit (a git repository: one commit).
    fn whole_commits(&self) -> bool {
        false
    }

    /// Applies every change of a root commit to this resource as one unit, described by
    /// `message` where the backend records one, and returns what each path of `changes` now
    /// is (in the same order; `None` for nothing). It succeeds or fails as a whole: after a
    /// failure nothing was applied. A change made behind the session's back that the
    /// backend detects (a branch that moved) is a `Conflict`.
    async fn commit_whole(&self, changes: Vec<Staged>, message: &str) -> Result<Vec<Option<Metadata>>> {
        let _ = (changes, message);
        Err(refuse(self, "commit", &VPath::root()))
    }

    /// Replaces (or creates) a whole file with `content` if `expect` holds, and returns the
    /// new metadata. A failed precondition is a `Conflict` naming the path.
    ///
    /// The default checks the precondition with `stat` and then writes in place, which is
    /// neither atomic nor race-free; backends that can do better override it.
    async fn put(&self, path: &VPath, mut content: ByteStream, expect: Precondition) -> Result<Metadata> {
        let current = match self.stat(path).await {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        check_precondition(path, current.as_ref(), &expect)?;
        if current.is_none() {
            self.create(path, 0o644).await?;
        } else {
            self.truncate(path, 0).await?;
        }
        let mut offset = 0;
        while let Some(chunk) = content.next().await {
            let chunk = chunk?;
            self.write(path, offset, &chunk).await?;
            offset += chunk.len() as u64;
        }
        self.stat(path).await
    }
}

/// Fails with `Conflict` unless `current` (what the path holds now) satisfies `expect`.
///
/// # Errors
/// `Conflict` naming `path`, or `IsADirectory` when the path is a directory.
pub fn check_precondition(path: &VPath, current: Option<&Metadata>, expect: &Precondition) -> Result<()> {
    if current.is_some_and(Metadata::is_dir) {
        return Err(Error::new(ErrorKind::IsADirectory, "put").with_path(path.clone()));
    }
    let holds = match (expect, current) {
        (Precondition::None, _) => true,
        (Precondition::Absent, current) => current.is_none(),
        (Precondition::Version(v), Some(meta)) => &meta.version == v,
        (Precondition::Version(_), None) => false,
    };
    if holds { Ok(()) } else { Err(Error::conflict("put", vec![path.clone()], "changed since the session saw it")) }
}

/// The error a resource returns for a primitive it does not implement: `EROFS` when it is
/// read-only, `ENOTSUP` otherwise.
pub fn refuse<R: Resource + ?Sized>(resource: &R, op: &'static str, path: &VPath) -> Error {
    let kind = if resource.capabilities().read_only { ErrorKind::ReadOnly } else { ErrorKind::Unsupported };
    Error::new(kind, op).with_path(path.clone())
}

/// A stream that yields one buffer, for handing in-memory content to [`Resource::put`].
pub fn once_stream(data: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(data) }).boxed()
}
