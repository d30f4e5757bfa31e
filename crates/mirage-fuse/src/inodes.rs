//! The inode table: a stable number for every virtual path the kernel holds, as long as it
//! holds it, and the content of files removed while still open.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use fuser::{Errno, INodeNo};
use mirage_core::{FileSnapshot, VPath};

use crate::sparse::Sparse;

/// A file removed (or replaced by a rename) while the kernel still holds it (open, most
/// likely): its content lives on until the kernel forgets it, as POSIX promises for unlinked
/// files that are still open.
#[derive(Debug)]
pub(crate) struct Orphan {
    /// The content when it was removed, shared with the session.
    pub(crate) snapshot: FileSnapshot,
    /// The content once changed after the removal (the snapshot shows where it was not).
    pub(crate) data: Option<Sparse>,
    pub(crate) mode: u32,
    pub(crate) mtime: SystemTime,
}

impl Orphan {
    /// An orphan of the file `snapshot` shows.
    pub(crate) fn new(snapshot: FileSnapshot) -> Self {
        let (mode, mtime) = (snapshot.metadata().mode, snapshot.metadata().mtime);
        Orphan { snapshot, data: None, mode, mtime }
    }

    /// The current size.
    pub(crate) fn size(&self) -> u64 {
        self.data.as_ref().map_or(self.snapshot.metadata().size, Sparse::size)
    }
}

/// An orphan shared by the requests that reach it.
pub(crate) type SharedOrphan = Arc<Mutex<Orphan>>;

#[derive(Debug)]
struct Inode {
    /// Where it lives; `None` once removed.
    path: Option<VPath>,
    /// How many lookups the kernel has not forgotten yet (an open file holds one).
    lookups: u64,
    orphan: Option<SharedOrphan>,
}

#[derive(Debug)]
struct Table {
    by_ino: HashMap<u64, Inode>,
    /// Ordered, so that a directory's subtree is one range (a rename moves it whole).
    by_path: BTreeMap<VPath, u64>,
    next: u64,
}

/// What an inode number stands for now.
#[derive(Debug)]
pub(crate) enum Target {
    /// A live path.
    Path(VPath),
    /// A removed file the kernel still holds.
    Orphan(SharedOrphan),
}

/// The inode table.
#[derive(Debug)]
pub(crate) struct Inodes {
    table: Mutex<Table>,
}

impl Inodes {
    /// A table holding only the root directory, inode 1.
    pub(crate) fn new() -> Self {
        let root = Inode { path: Some(VPath::root()), lookups: 1, orphan: None };
        let table = Table {
            by_ino: HashMap::from([(INodeNo::ROOT.0, root)]),
            by_path: BTreeMap::from([(VPath::root(), INodeNo::ROOT.0)]),
            next: INodeNo::ROOT.0 + 1,
        };
        Inodes { table: Mutex::new(table) }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path of `ino`, or its orphaned content.
    ///
    /// # Errors
    /// `ESTALE` for a number the kernel should no longer hold.
    pub(crate) fn target(&self, ino: INodeNo) -> Result<Target, Errno> {
        let table = self.table();
        let inode = table.by_ino.get(&ino.0).ok_or(Errno::ESTALE)?;
        match (&inode.path, &inode.orphan) {
            (Some(path), _) => Ok(Target::Path(path.clone())),
            (None, Some(orphan)) => Ok(Target::Orphan(orphan.clone())),
            (None, None) => Err(Errno::ENOENT),
        }
    }

    /// The path of `ino`; an orphan has none.
    ///
    /// # Errors
    /// `ESTALE` for an unknown number, `ENOENT` for a removed entry.
    pub(crate) fn path(&self, ino: INodeNo) -> Result<VPath, Errno> {
        match self.target(ino)? {
            Target::Path(path) => Ok(path),
            Target::Orphan(_) => Err(Errno::ENOENT),
        }
    }

    /// The number of `path`, counting one more lookup by the kernel.
    pub(crate) fn remember(&self, path: &VPath) -> INodeNo {
        let mut table = self.table();
        if let Some(&ino) = table.by_path.get(path)
            && let Some(inode) = table.by_ino.get_mut(&ino)
        {
            inode.lookups += 1;
            return INodeNo(ino);
        }
        let ino = table.next;
        table.next += 1;
        table.by_ino.insert(ino, Inode { path: Some(path.clone()), lookups: 1, orphan: None });
        table.by_path.insert(path.clone(), ino);
        INodeNo(ino)
    }

    /// The number of `path` if the kernel holds it (no lookup counted).
    pub(crate) fn peek(&self, path: &VPath) -> Option<INodeNo> {
        self.table().by_path.get(path).copied().map(INodeNo)
    }

    /// The kernel dropped `n` lookups of `ino`; true when that was the last (the number is
    /// free again).
    pub(crate) fn forget(&self, ino: INodeNo, n: u64) -> bool {
        let mut table = self.table();
        if let Some(inode) = table.by_ino.get_mut(&ino.0) {
            inode.lookups = inode.lookups.saturating_sub(n);
        }
        table.collect(ino.0);
        !table.by_ino.contains_key(&ino.0)
    }

    /// The entry at `path` is gone (removed, or replaced by a rename); `orphan` keeps the
    /// content of a file the kernel still holds. Entries below a removed directory go too.
    pub(crate) fn removed(&self, path: &VPath, orphan: Option<Orphan>) {
        let orphan = orphan.map(|o| Arc::new(Mutex::new(o)));
        let mut table = self.table();
        let gone: Vec<(VPath, u64)> = table.subtree(path);
        for (p, ino) in gone {
            table.by_path.remove(&p);
            if let Some(inode) = table.by_ino.get_mut(&ino) {
                inode.path = None;
                if p == *path {
                    inode.orphan = orphan.clone();
                }
            }
            table.collect(ino);
        }
    }

    /// `from` (and everything below it) is now at `to`; what was at `to` is gone
    /// (`orphan` keeps its content if it was open).
    pub(crate) fn renamed(&self, from: &VPath, to: &VPath, orphan: Option<Orphan>) {
        self.removed(to, orphan);
        let mut table = self.table();
        let moved = table.subtree(from);
        for (old, ino) in moved {
            table.by_path.remove(&old);
            let new = rebase(&old, from, to);
            if let Some(inode) = table.by_ino.get_mut(&ino) {
                inode.path = Some(new.clone());
            }
            table.by_path.insert(new, ino);
        }
    }

    /// Every live (path, number) pair: for invalidating everything at once.
    pub(crate) fn all(&self) -> Vec<(VPath, INodeNo)> {
        self.table().by_path.iter().map(|(p, &i)| (p.clone(), INodeNo(i))).collect()
    }
}

impl Table {
    /// `path` and the entries below it.
    fn subtree(&self, path: &VPath) -> Vec<(VPath, u64)> {
        let mut out: Vec<(VPath, u64)> = self.by_path.get(path).map(|&i| (path.clone(), i)).into_iter().collect();
        let prefix = format!("{path}/");
        out.extend(
            self.by_path
                .range::<str, _>((std::ops::Bound::Included(prefix.as_str()), std::ops::Bound::Unbounded))
                .take_while(|(p, _)| p.as_str().starts_with(&prefix))
                .map(|(p, &i)| (p.clone(), i)),
        );
        out
    }

    /// Drops `ino` once the kernel holds it no more.
    fn collect(&mut self, ino: u64) {
        if ino == INodeNo::ROOT.0 {
            return;
        }
        let done = self.by_ino.get(&ino).is_some_and(|i| i.lookups == 0);
        if done
            && let Some(Inode { path: Some(path), .. }) = self.by_ino.remove(&ino)
            && self.by_path.get(&path) == Some(&ino)
        {
            self.by_path.remove(&path);
        }
    }
}

/// `path` (at or below `from`) moved below `to`.
fn rebase(path: &VPath, from: &VPath, to: &VPath) -> VPath {
    let rest = &path.as_str()[from.as_str().len()..];
    VPath::parse(&format!("{to}{rest}")).expect("a path below a valid path is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn numbers_are_stable_while_held_and_recycled_after() {
        let inodes = Inodes::new();
        let a = inodes.remember(&p("/a"));
        assert_eq!(inodes.remember(&p("/a")), a);
        assert_eq!(inodes.path(a).unwrap(), p("/a"));
        inodes.forget(a, 2);
        assert_eq!(inodes.target(a).unwrap_err(), Errno::ESTALE);
        assert_ne!(inodes.remember(&p("/a")), a, "a new number after the kernel forgot the old one");
        assert_eq!(inodes.path(INodeNo::ROOT).unwrap(), VPath::root());
    }

    #[test]
    fn a_rename_moves_the_subtree_and_detaches_the_target() {
        let inodes = Inodes::new();
        let dir = inodes.remember(&p("/d"));
        let inner = inodes.remember(&p("/d/f"));
        let sibling = inodes.remember(&p("/d-x"));
        let target = inodes.remember(&p("/e"));
        inodes.renamed(&p("/d"), &p("/e"), None);
        assert_eq!(inodes.path(dir).unwrap(), p("/e"));
        assert_eq!(inodes.path(inner).unwrap(), p("/e/f"));
        assert_eq!(inodes.path(sibling).unwrap(), p("/d-x"), "a name sharing the prefix stays");
        assert_eq!(inodes.target(target).unwrap_err(), Errno::ENOENT, "held by the kernel, but gone");
        assert_eq!(inodes.peek(&p("/e")), Some(dir));
        inodes.forget(target, 1);
        assert_eq!(inodes.target(target).unwrap_err(), Errno::ESTALE);
    }

    #[test]
    fn removing_a_directory_detaches_everything_below() {
        let inodes = Inodes::new();
        let f = inodes.remember(&p("/d/f"));
        inodes.removed(&p("/d"), None);
        assert_eq!(inodes.peek(&p("/d/f")), None);
        assert_eq!(inodes.target(f).unwrap_err(), Errno::ENOENT);
    }
}
