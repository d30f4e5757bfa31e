//! `memory`: a resource held in RAM.
//!
//! Useful as scratch space, as the writable layer of a sandbox, and as the reference backend
//! in tests. Content lives in the process and is lost when it exits (a persistent *session*
//! over a memory mount keeps its own changes in the store; the resource itself is volatile).
//! Every operation completes without awaiting anything, so callers that poll once (the Node
//! addon) never pay a thread hop.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::error::{Error, ErrorKind, Result};
use crate::path::VPath;
use crate::resource::{
    ByteStream, Capabilities, DirEntry, FileType, Metadata, Precondition, Resource, Version, check_precondition,
};

#[derive(Clone, Debug)]
enum Content {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    content: Content,
    mode: u32,
    mtime: SystemTime,
    atime: SystemTime,
    version: u64,
}

#[derive(Debug)]
struct Tree {
    entries: BTreeMap<VPath, Entry>,
    next_version: u64,
}

/// A filesystem in RAM. Cheap to create; share it with `Arc` to mount it in several places.
#[derive(Debug)]
pub struct MemoryResource {
    tree: Mutex<Tree>,
}

impl Default for MemoryResource {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryResource {
    /// An empty filesystem (just the root directory).
    pub fn new() -> Self {
        let now = SystemTime::now();
        let root = Entry { content: Content::Dir, mode: 0o755, mtime: now, atime: now, version: 0 };
        MemoryResource { tree: Mutex::new(Tree { entries: BTreeMap::from([(VPath::root(), root)]), next_version: 1 }) }
    }

    fn with_tree<T>(&self, f: impl FnOnce(&mut Tree) -> Result<T>) -> Result<T> {
        let mut tree = self.tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut tree)
    }
}

fn err(kind: ErrorKind, op: &'static str, path: &VPath) -> Error {
    Error::new(kind, op).with_path(path.clone())
}

/// What the ancestors of a path are, checked from the root down.
enum Ancestors<'a> {
    /// All directories.
    Dirs,
    /// The first that is not a directory does not exist.
    Missing,
    /// The first that is not a directory is a file.
    File,
    /// The first that is not a directory is a symbolic link, at this path.
    Link(&'a str),
}

impl Ancestors<'_> {
    /// What operation `op` on `path` fails with for these ancestors, if anything.
    fn check(self, op: &'static str, path: &VPath) -> Result<()> {
        match self {
            Ancestors::Dirs => Ok(()),
            Ancestors::Link(dir) => {
                let link = VPath::parse(dir).expect("an ancestor of a valid path is valid");
                Err(err(ErrorKind::FilesystemLoop, op, &link))
            }
            Ancestors::File => Err(err(ErrorKind::NotADirectory, op, path)),
            Ancestors::Missing => Err(err(ErrorKind::NotFound, op, path)),
        }
    }
}

impl Tree {
    /// What the ancestors of `path` are, without allocating.
    fn ancestors<'a>(&self, path: &'a VPath) -> Ancestors<'a> {
        for dir in path.ancestor_strs_from_root() {
            match self.entries.get(dir).map(|e| &e.content) {
                Some(Content::Dir) => {}
                Some(Content::Symlink(_)) => return Ancestors::Link(dir),
                Some(Content::File(_)) => return Ancestors::File,
                None => return Ancestors::Missing,
            }
        }
        Ancestors::Dirs
    }

    /// Checks that every ancestor of `path` is a directory (not a link, not a file).
    fn check_parents(&self, op: &'static str, path: &VPath) -> Result<()> {
        self.ancestors(path).check(op, path)
    }

    fn get(&self, op: &'static str, path: &VPath) -> Result<&Entry> {
        self.check_parents(op, path)?;
        self.entries.get(path).ok_or_else(|| err(ErrorKind::NotFound, op, path))
    }

    fn get_mut(&mut self, op: &'static str, path: &VPath) -> Result<&mut Entry> {
        self.get(op, path)?;
        let version = self.bump();
        let entry = self.entries.get_mut(path).expect("checked above");
        entry.version = version;
        Ok(entry)
    }

    fn file_mut(&mut self, op: &'static str, path: &VPath) -> Result<&mut Vec<u8>> {
        let entry = self.get_mut(op, path)?;
        entry.mtime = SystemTime::now();
        match &mut entry.content {
            Content::File(data) => Ok(data),
            Content::Dir => Err(err(ErrorKind::IsADirectory, op, path)),
            Content::Symlink(_) => Err(err(ErrorKind::FilesystemLoop, op, path)),
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    fn insert_new(&mut self, op: &'static str, path: &VPath, content: Content, mode: u32) -> Result<()> {
        self.check_parents(op, path)?;
        if self.entries.contains_key(path) {
            return Err(err(ErrorKind::AlreadyExists, op, path));
        }
        let now = SystemTime::now();
        let version = self.bump();
        self.entries.insert(path.clone(), Entry { content, mode: mode & 0o7777, mtime: now, atime: now, version });
        Ok(())
    }

    fn has_children(&self, path: &VPath) -> bool {
        let (lo, hi) = path.descendants_range();
        self.entries
            .range::<str, _>((std::ops::Bound::Included(lo.as_str()), std::ops::Bound::Excluded(hi.as_str())))
            .next()
            .is_some()
    }

    fn metadata(entry: &Entry) -> Metadata {
        let (file_type, size) = match &entry.content {
            Content::File(data) => (FileType::File, data.len() as u64),
            Content::Dir => (FileType::Dir, 0),
            Content::Symlink(target) => (FileType::Symlink, target.len() as u64),
        };
        Metadata {
            file_type,
            size,
            mode: entry.mode,
            mtime: entry.mtime,
            atime: entry.atime,
            version: Version(format!("m{}", entry.version)),
        }
    }
}

#[async_trait]
impl Resource for MemoryResource {
    fn capabilities(&self) -> Capabilities {
        Capabilities { immediate: true, ..Capabilities::FULL }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        self.with_tree(|t| t.get("stat", path).map(Tree::metadata))
    }

    fn stat_now(&self, path: &VPath) -> Option<Result<Option<Metadata>>> {
        Some(self.with_tree(|t| match t.ancestors(path) {
            Ancestors::Dirs => Ok(t.entries.get(path).map(Tree::metadata)),
            Ancestors::Missing => Ok(None),
            refused => refused.check("stat", path).map(|()| None),
        }))
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        self.with_tree(|t| match &t.get("read", path)?.content {
            Content::File(data) => {
                let start = (offset.min(data.len() as u64)) as usize;
                let end = (offset.saturating_add(len).min(data.len() as u64)) as usize;
                Ok(Bytes::copy_from_slice(&data[start..end]))
            }
            Content::Dir => Err(err(ErrorKind::IsADirectory, "read", path)),
            Content::Symlink(_) => Err(err(ErrorKind::FilesystemLoop, "read", path)),
        })
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.with_tree(|t| {
            if !matches!(t.get("list", path)?.content, Content::Dir) {
                return Err(err(ErrorKind::NotADirectory, "list", path));
            }
            let (lo, hi) = path.descendants_range();
            let range = t
                .entries
                .range::<str, _>((std::ops::Bound::Included(lo.as_str()), std::ops::Bound::Excluded(hi.as_str())));
            Ok(range
                .filter(|(p, _)| p.parent().as_ref() == Some(path))
                .map(|(p, e)| DirEntry {
                    name: p.file_name().unwrap_or_default().to_owned(),
                    file_type: Tree::metadata(e).file_type,
                })
                .collect())
        })
    }

    async fn write(&self, path: &VPath, offset: u64, data: &[u8]) -> Result<()> {
        self.with_tree(|t| {
            let file = t.file_mut("write", path)?;
            if data.is_empty() {
                // As pwrite(2): writing nothing never extends a file.
                return Ok(());
            }
            let end = offset as usize + data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[offset as usize..end].copy_from_slice(data);
            Ok(())
        })
    }

    async fn create(&self, path: &VPath, mode: u32) -> Result<()> {
        self.with_tree(|t| t.insert_new("create", path, Content::File(Vec::new()), mode))
    }

    async fn mkdir(&self, path: &VPath, mode: u32) -> Result<()> {
        self.with_tree(|t| t.insert_new("mkdir", path, Content::Dir, mode))
    }

    async fn remove(&self, path: &VPath) -> Result<()> {
        self.with_tree(|t| {
            if matches!(t.get("remove", path)?.content, Content::Dir) {
                return Err(err(ErrorKind::IsADirectory, "remove", path));
            }
            t.entries.remove(path);
            Ok(())
        })
    }

    async fn rmdir(&self, path: &VPath) -> Result<()> {
        self.with_tree(|t| {
            if !matches!(t.get("rmdir", path)?.content, Content::Dir) {
                return Err(err(ErrorKind::NotADirectory, "rmdir", path));
            }
            if path.is_root() {
                return Err(err(ErrorKind::PermissionDenied, "rmdir", path));
            }
            if t.has_children(path) {
                return Err(err(ErrorKind::DirectoryNotEmpty, "rmdir", path));
            }
            t.entries.remove(path);
            Ok(())
        })
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        self.with_tree(|t| {
            // As the kernel does: both parents are resolved before the source is looked at.
            t.check_parents("rename", from)?;
            t.check_parents("rename", to)?;
            let moving_dir = matches!(t.get("rename", from)?.content, Content::Dir);
            if from == to {
                return Ok(());
            }
            if from.starts_with(to) {
                // The target is an ancestor of the source, so not empty (the kernel agrees).
                return Err(err(ErrorKind::DirectoryNotEmpty, "rename", to));
            }
            if to.starts_with(from) && to != from {
                return Err(err(ErrorKind::InvalidInput, "rename", to));
            }
            if let Some(existing) = t.entries.get(to) {
                match (&existing.content, moving_dir) {
                    (Content::Dir, false) => return Err(err(ErrorKind::IsADirectory, "rename", to)),
                    (Content::Dir, true) if t.has_children(to) => {
                        return Err(err(ErrorKind::DirectoryNotEmpty, "rename", to));
                    }
                    (Content::File(_) | Content::Symlink(_), true) => {
                        return Err(err(ErrorKind::NotADirectory, "rename", to));
                    }
                    _ => {}
                }
            }
            let (lo, hi) = from.descendants_range();
            let moved: Vec<VPath> = t
                .entries
                .range::<str, _>((std::ops::Bound::Included(lo.as_str()), std::ops::Bound::Excluded(hi.as_str())))
                .map(|(p, _)| p.clone())
                .chain(std::iter::once(from.clone()))
                .collect();
            for old in moved {
                let entry = t.entries.remove(&old).expect("listed above");
                let new = old.strip_prefix(from).expect("under from").rebase(to);
                t.entries.insert(new, entry);
            }
            let version = t.bump();
            if let Some(e) = t.entries.get_mut(to) {
                e.version = version;
            }
            Ok(())
        })
    }

    async fn truncate(&self, path: &VPath, len: u64) -> Result<()> {
        self.with_tree(|t| {
            t.file_mut("truncate", path)?.resize(len as usize, 0);
            Ok(())
        })
    }

    async fn symlink(&self, target: &str, path: &VPath) -> Result<()> {
        self.with_tree(|t| t.insert_new("symlink", path, Content::Symlink(target.to_owned()), 0o777))
    }

    async fn readlink(&self, path: &VPath) -> Result<String> {
        self.with_tree(|t| match &t.get("readlink", path)?.content {
            Content::Symlink(target) => Ok(target.clone()),
            _ => Err(err(ErrorKind::InvalidInput, "readlink", path)),
        })
    }

    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        self.with_tree(|t| {
            t.get_mut("chmod", path)?.mode = mode & 0o7777;
            Ok(())
        })
    }

    async fn set_times(&self, path: &VPath, atime: Option<SystemTime>, mtime: Option<SystemTime>) -> Result<()> {
        self.with_tree(|t| {
            let old_mtime = t.get("utimes", path)?.mtime;
            let entry = t.get_mut("utimes", path)?;
            entry.mtime = mtime.unwrap_or(old_mtime);
            if let Some(atime) = atime {
                entry.atime = atime;
            }
            Ok(())
        })
    }

    async fn put(&self, path: &VPath, mut content: ByteStream, expect: Precondition) -> Result<Metadata> {
        let mut data = Vec::new();
        while let Some(chunk) = content.next().await {
            data.extend_from_slice(&chunk?);
        }
        self.with_tree(|t| {
            t.check_parents("put", path)?;
            let current = t.entries.get(path).map(Tree::metadata);
            check_precondition(path, current.as_ref(), &expect)?;
            let now = SystemTime::now();
            let mode = t.entries.get(path).map_or(0o644, |e| e.mode);
            let version = t.bump();
            let entry = Entry { content: Content::File(data), mode, mtime: now, atime: now, version };
            let meta = Tree::metadata(&entry);
            t.entries.insert(path.clone(), entry);
            Ok(meta)
        })
    }
}
