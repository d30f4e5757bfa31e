//! The copy-on-write overlay: what a session holds for the paths it changed.
//!
//! A session's view maps virtual paths to [`Node`]s in persistent maps (`imbl`), grouped by
//! directory; cloning it is O(1) and clones share structure, which is what makes `fork` O(1).
//! Paths absent from the view fall through to the mounted resources.
//!
//! File content is kept as 64 KiB chunks over an optional *base*: the resource's content as it
//! was when the session first changed the file. A write replaces only the chunks it touches,
//! so a small write into a large file copies at most two chunks of it, and nothing at all is
//! copied by reads or opens.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use crate::budget::{self, Buffer};
use crate::chunks::Chunks;
use crate::error::Result;
use crate::path::VPath;
use crate::resource::{FileType, Version};

/// Size of one content chunk.
pub(crate) const CHUNK: u64 = 64 * 1024;

/// A persistent hash map keyed by virtual path. Paths are hashed with foldhash, several times
/// faster than the standard library's SipHash on short keys and seeded per process.
type PathIndex<V> = imbl::GenericHashMap<VPath, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// The entries a view holds directly in one directory, keyed by full path.
type Entries = OrdMap<VPath, Arc<Node>>;

/// A session's changes: path to node, structurally shared between forks.
///
/// Grouped by directory: a hash map (HAMT) from each directory holding changed entries to
/// those entries, in a persistent ordered map, and the same directories in path order for
/// subtree walks. A point lookup finds the parent in a few pointer hops and the entry among
/// its siblings; a write changes one directory's map (the directory index only when the
/// directory is new to the view), which costs a fraction of keeping every path in a hash map
/// of its own, in time and in memory; a listing reads exactly the directory's entries.
/// Everything is persistent, so cloning a view (a fork) stays O(1).
#[derive(Clone, Debug, Default)]
pub(crate) struct View {
    /// The node at `/`, the one path without a parent.
    root: Option<Arc<Node>>,
    /// Each directory holding entries, to those entries.
    dirs: PathIndex<Entries>,
    /// The keys of `dirs`, in path order.
    dir_order: OrdSet<VPath>,
    /// What the nodes count for against the content limit (see [`budget::entry_weight`]).
    weight: u64,
}

impl View {
    /// An empty view.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The node at `path`, if the session holds one.
    pub(crate) fn get(&self, path: &(impl AsRef<str> + ?Sized)) -> Option<&Arc<Node>> {
        let path = path.as_ref();
        debug_assert!(path.starts_with('/'), "a view is keyed by absolute paths: {path:?}");
        match parent_of(path) {
            Some(parent) => self.dirs.get(parent)?.get(path),
            None => self.root.as_ref(),
        }
    }

    /// What the nodes count for against the content limit, whiteouts and clean markers
    /// included (see [`budget::entry_weight`]).
    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// Puts `node` at `path`; returns what was there.
    pub(crate) fn insert(&mut self, path: VPath, node: Arc<Node>) -> Option<Arc<Node>> {
        let path_len = path.as_str().len();
        let new_weight = node.weight(path_len);
        let old = match parent_of(path.as_str()) {
            None => self.root.replace(node),
            Some(parent) => match self.dirs.get_mut(parent) {
                Some(entries) => entries.insert(path, node),
                None => {
                    let parent = path.parent().expect("a path with a parent string has a parent");
                    self.dir_order.insert(parent.clone());
                    self.dirs.insert(parent, Entries::unit(path, node));
                    None
                }
            },
        };
        if let Some(old) = &old {
            self.weight -= old.weight(path_len);
        }
        self.weight += new_weight;
        old
    }

    /// Drops the node at `path`; returns it.
    pub(crate) fn remove(&mut self, path: &VPath) -> Option<Arc<Node>> {
        let old = match parent_of(path.as_str()) {
            None => self.root.take(),
            Some(parent) => {
                let entries = self.dirs.get_mut(parent)?;
                let old = entries.remove(path);
                if entries.is_empty() {
                    self.dirs.remove(parent);
                    self.dir_order.remove(parent);
                }
                old
            }
        };
        if let Some(old) = &old {
            self.weight -= old.weight(path.as_str().len());
        }
        old
    }

    /// What must change in `base` to give this view: each path whose node differs (`None`:
    /// absent here), grouped by directory. A directory whose entries both views share is
    /// skipped whole: the cost is the directories and the changed ones' entries, not every
    /// entry.
    pub(crate) fn changes_from(&self, base: &View) -> Vec<(VPath, Option<Arc<Node>>)> {
        let mut out = Vec::new();
        match (&self.root, &base.root) {
            (Some(mine), Some(theirs)) if Arc::ptr_eq(mine, theirs) => {}
            (None, None) => {}
            (mine, _) => out.push((VPath::root(), mine.clone())),
        }
        let empty = Entries::new();
        let only_theirs = base.dir_order.iter().filter(|dir| !self.dirs.contains_key(*dir));
        for dir in self.dir_order.iter().chain(only_theirs) {
            let mine = self.dirs.get(dir).unwrap_or(&empty);
            let theirs = base.dirs.get(dir).unwrap_or(&empty);
            if !mine.ptr_eq(theirs) {
                entry_changes(mine, theirs, &mut out);
            }
        }
        out
    }

    /// Every node strictly below `path`, grouped by directory.
    pub(crate) fn descendants<'a>(&'a self, path: &VPath) -> impl Iterator<Item = (&'a VPath, &'a Arc<Node>)> + 'a {
        use std::ops::Bound;
        let (prefix, end) = path.descendants_range();
        // The directories below `path` are the run from `path/` (for the root, the run holds
        // the root itself, counted first already).
        let below = self
            .dir_order
            .range::<_, str>((Bound::Included(prefix.as_str()), Bound::Excluded(end.as_str())))
            .filter(|dir| *dir != path)
            .filter_map(|dir| self.dirs.get(dir));
        let dirs: Vec<&Entries> = self.dirs.get(path).into_iter().chain(below).collect();
        dirs.into_iter().flat_map(|entries| entries.iter())
    }

    /// The nodes directly below `dir`, in path order.
    pub(crate) fn children<'a>(&'a self, dir: &VPath) -> impl Iterator<Item = (&'a VPath, &'a Arc<Node>)> + 'a {
        self.dirs.get(dir).into_iter().flat_map(|entries| entries.iter())
    }
}

/// The parent of the normalised absolute path `path` (`None` for `/`).
fn parent_of(path: &str) -> Option<&str> {
    crate::path::ancestor_strs(path).next()
}

/// Adds to `out` what must change in `theirs` to give `mine`, two listings of one directory:
/// one merge walk over both, in path order.
fn entry_changes(mine: &Entries, theirs: &Entries, out: &mut Vec<(VPath, Option<Arc<Node>>)>) {
    let (mut mine, mut theirs) = (mine.iter().peekable(), theirs.iter().peekable());
    loop {
        match (mine.peek(), theirs.peek()) {
            (None, None) => return,
            (Some((path, node)), None) => {
                out.push(((*path).clone(), Some((*node).clone())));
                mine.next();
            }
            (None, Some((path, _))) => {
                out.push(((*path).clone(), None));
                theirs.next();
            }
            (Some((a, node)), Some((b, other))) => match a.cmp(b) {
                std::cmp::Ordering::Less => {
                    out.push(((*a).clone(), Some((*node).clone())));
                    mine.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push(((*b).clone(), None));
                    theirs.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(node, other) {
                        out.push(((*a).clone(), Some((*node).clone())));
                    }
                    mine.next();
                    theirs.next();
                }
            },
        }
    }
}

/// What the resource held at a path when a session first shadowed it; the root commit
/// writes conditionally against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Origin {
    /// Nothing was there (or the path was not under a mount).
    Absent,
    /// An entry with this kind and version.
    Present(FileType, Version),
}

/// Permission bits and times of an overlay entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Attr {
    pub(crate) mode: u32,
    pub(crate) mtime: SystemTime,
    pub(crate) atime: SystemTime,
}

/// Resource content a file's unwritten regions read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BaseRef {
    /// Mount point of the resource.
    pub(crate) mount: VPath,
    /// Path inside the resource.
    pub(crate) inner: VPath,
    /// Version of the content when it was captured.
    pub(crate) version: Version,
    /// How many bytes of it are still visible (truncation shortens this).
    pub(crate) len: u64,
}

/// The content of an overlay file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileData {
    pub(crate) size: u64,
    pub(crate) base: Option<BaseRef>,
    /// Chunk index to bytes; a chunk shorter than [`CHUNK`] reads as zeros after its end.
    pub(crate) chunks: Chunks,
}

/// The kind of an overlay entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum NodeKind {
    File(FileData),
    /// A directory; `opaque` hides whatever the resource has below it.
    Dir {
        opaque: bool,
    },
    Symlink(String),
    /// The path was removed in this session.
    Whiteout,
    /// The change was written to the resources: the path reads through to them again. The
    /// node stays, with the stamp of the change, so that forks taken earlier still see that
    /// the path changed, and its `origin` is what the resource held afterwards.
    Clean,
}

/// One overlay entry. Immutable: every change makes a new node with a new `stamp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Node {
    /// Unique per change, in the whole process (and store); commits compare them.
    pub(crate) stamp: u64,
    pub(crate) origin: Origin,
    pub(crate) attr: Attr,
    pub(crate) kind: NodeKind,
}

impl Node {
    /// What this node, at a path of `path_len` bytes, counts for against the content limit.
    pub(crate) fn weight(&self, path_len: usize) -> u64 {
        let target_len = match &self.kind {
            NodeKind::Symlink(target) => target.len(),
            _ => 0,
        };
        budget::entry_weight(path_len, target_len)
    }

    /// The entry's type, or `None` for a whiteout.
    pub(crate) fn file_type(&self) -> Option<FileType> {
        match self.kind {
            NodeKind::File(_) => Some(FileType::File),
            NodeKind::Dir { .. } => Some(FileType::Dir),
            NodeKind::Symlink(_) => Some(FileType::Symlink),
            NodeKind::Whiteout | NodeKind::Clean => None,
        }
    }

    /// True for a node that only records a change already written to the resources.
    pub(crate) fn is_clean(&self) -> bool {
        matches!(self.kind, NodeKind::Clean)
    }

    /// Size as `stat` reports it.
    pub(crate) fn size(&self) -> u64 {
        match &self.kind {
            NodeKind::File(data) => data.size,
            NodeKind::Symlink(target) => target.len() as u64,
            NodeKind::Dir { .. } | NodeKind::Whiteout | NodeKind::Clean => 0,
        }
    }
}

/// One piece of a planned read.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Bytes the overlay holds.
    Data(Bytes),
    /// A range `[start, end)` of the base content.
    Base(u64, u64),
    /// Zeros.
    Zero(u64),
}

impl FileData {
    /// An empty file.
    pub(crate) fn empty() -> Self {
        FileData { size: 0, base: None, chunks: Chunks::Empty }
    }

    /// A file whose content is all in memory.
    pub(crate) fn from_bytes(data: Bytes) -> Self {
        let mut file = FileData { size: data.len() as u64, base: None, chunks: Chunks::Empty };
        if file.size <= CHUNK {
            // One chunk: keep the buffer itself (a slice would make it shared, allocating).
            if file.size > 0 {
                file.chunks.insert(0, data);
            }
            return file;
        }
        let mut idx = 0;
        while idx * CHUNK < file.size {
            let start = (idx * CHUNK) as usize;
            let end = ((idx + 1) * CHUNK).min(file.size) as usize;
            file.chunks.insert(idx, data.slice(start..end));
            idx += 1;
        }
        file
    }

    /// A file that reads entirely from the resource's content.
    pub(crate) fn from_base(base: BaseRef) -> Self {
        FileData { size: base.len, base: Some(base), chunks: Chunks::Empty }
    }

    /// The content, when it is one chunk at index 0 that holds the whole file.
    pub(crate) fn single_chunk(&self) -> Option<&Bytes> {
        if self.chunks.len() != 1 {
            return None;
        }
        self.chunks.get(0).filter(|chunk| chunk.len() as u64 == self.size)
    }

    fn base_len(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.len)
    }

    /// Splits the read of `[offset, offset + len)` (clipped to the file) into segments,
    /// merging neighbouring pieces of the same kind.
    pub(crate) fn plan_read(&self, offset: u64, len: u64) -> Vec<Segment> {
        let end = offset.saturating_add(len).min(self.size);
        let mut segments: Vec<Segment> = Vec::new();
        let mut push = |seg: Segment| match (segments.last_mut(), seg) {
            (Some(Segment::Base(_, prev_end)), Segment::Base(start, end)) if *prev_end == start => *prev_end = end,
            (Some(Segment::Zero(n)), Segment::Zero(m)) => *n += m,
            (_, seg) => segments.push(seg),
        };
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK;
            let chunk_start = idx * CHUNK;
            let stop = ((idx + 1) * CHUNK).min(end);
            match self.chunks.get(idx) {
                Some(chunk) => {
                    let from = (pos - chunk_start) as usize;
                    let to = ((stop - chunk_start) as usize).min(chunk.len());
                    if from < to {
                        push(Segment::Data(chunk.slice(from..to)));
                    }
                    let covered = chunk_start + to.max(from) as u64;
                    if covered < stop {
                        push(Segment::Zero(stop - covered));
                    }
                }
                None => {
                    let base_stop = stop.min(self.base_len());
                    if pos < base_stop {
                        push(Segment::Base(pos, base_stop));
                    }
                    let zero_from = pos.max(base_stop);
                    if zero_from < stop {
                        push(Segment::Zero(stop - zero_from));
                    }
                }
            }
            pos = stop;
        }
        segments
    }

    /// Indices of chunks that a write of `len` bytes at `offset` covers only partly and that
    /// the overlay does not hold yet: their current content must be read first.
    pub(crate) fn chunks_to_fill(&self, offset: u64, len: u64) -> Vec<u64> {
        if len == 0 {
            return Vec::new();
        }
        let end = offset + len;
        let (first, last) = (offset / CHUNK, (end - 1) / CHUNK);
        let partial = |idx: u64| {
            let (start, stop) = (idx * CHUNK, (idx + 1) * CHUNK);
            offset > start || end < stop
        };
        let mut candidates = vec![first];
        if last != first {
            candidates.push(last);
        }
        candidates
            .into_iter()
            .filter(|&idx| partial(idx) && self.chunks.get(idx).is_none() && idx * CHUNK < self.base_len())
            .collect()
    }

    /// Writes `data` at `offset` and returns the indices of the chunks it changed. `fills`
    /// holds the current content of the chunks that [`FileData::chunks_to_fill`] named.
    ///
    /// # Errors
    /// `NoSpace` when a chunk written in part passes the content limit (see
    /// [`crate::budget`]); the file may then be written in part, so callers write a copy.
    pub(crate) fn write(
        &mut self,
        offset: u64,
        data: &Bytes,
        fills: &[(u64, Bytes)],
        op: &'static str,
    ) -> Result<Vec<u64>> {
        if data.is_empty() {
            // As pwrite(2): writing nothing never extends a file.
            return Ok(Vec::new());
        }
        let end = offset + data.len() as u64;
        let mut changed = Vec::new();
        let mut pos = offset;
        while pos < end {
            let idx = pos / CHUNK;
            let chunk_start = idx * CHUNK;
            let stop = ((idx + 1) * CHUNK).min(end);
            let piece = data.slice((pos - offset) as usize..(stop - offset) as usize);
            let chunk = if pos == chunk_start && stop == chunk_start + CHUNK {
                piece
            } else {
                let existing = self
                    .chunks
                    .get(idx)
                    .cloned()
                    .or_else(|| fills.iter().find(|(i, _)| *i == idx).map(|(_, b)| b.clone()))
                    .unwrap_or_default();
                let mut buf = BytesMut::from(existing.as_ref());
                let need = (stop - chunk_start) as usize;
                if buf.len() < need {
                    buf.resize(need, 0);
                }
                buf[(pos - chunk_start) as usize..need].copy_from_slice(&piece);
                budget::hold(buf.freeze(), Buffer::Own, op)?
            };
            self.chunks.insert(idx, chunk);
            changed.push(idx);
            pos = stop;
        }
        self.size = self.size.max(end);
        Ok(changed)
    }

    /// Sets the length: drops what lies beyond it, and what grows reads as zeros.
    pub(crate) fn truncate(&mut self, len: u64) {
        if let Some(base) = &mut self.base {
            base.len = base.len.min(len);
        }
        if len < self.size {
            let keep_to = len.div_ceil(CHUNK);
            self.chunks.remove_from(keep_to);
            let last = len / CHUNK;
            let cut = (len - last * CHUNK) as usize;
            if let Some(chunk) = self.chunks.get(last).cloned()
                && cut < chunk.len()
            {
                self.chunks.insert(last, chunk.slice(..cut));
            }
        }
        self.size = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(len: u64) -> BaseRef {
        BaseRef { mount: VPath::root(), inner: VPath::parse("/f").unwrap(), version: Version("v".into()), len }
    }

    /// Materialises a read with a base whose byte at position `i` is `i % 251`.
    fn read(file: &FileData, offset: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seg in file.plan_read(offset, len) {
            match seg {
                Segment::Data(b) => out.extend_from_slice(&b),
                Segment::Base(s, e) => out.extend((s..e).map(|i| (i % 251) as u8)),
                Segment::Zero(n) => out.extend(std::iter::repeat_n(0, n as usize)),
            }
        }
        out
    }

    fn fills(file: &FileData, offset: u64, len: u64) -> Vec<(u64, Bytes)> {
        file.chunks_to_fill(offset, len)
            .into_iter()
            .map(|idx| {
                let stop = ((idx + 1) * CHUNK).min(file.size);
                (idx, Bytes::from(read(file, idx * CHUNK, stop - idx * CHUNK)))
            })
            .collect()
    }

    #[test]
    fn small_write_into_large_file_touches_one_chunk() {
        let size = 10 * CHUNK + 7;
        let mut file = FileData::from_base(base(size));
        let f = fills(&file, 3 * CHUNK + 5, 10);
        assert_eq!(f.len(), 1, "one partial chunk to fill");
        file.write(3 * CHUNK + 5, &Bytes::from_static(b"0123456789"), &f, "write").unwrap();
        assert_eq!(file.chunks.len(), 1);
        let mut expect: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        expect[(3 * CHUNK + 5) as usize..(3 * CHUNK + 15) as usize].copy_from_slice(b"0123456789");
        assert_eq!(read(&file, 0, size), expect);
    }

    #[test]
    fn truncate_then_grow_reads_zeros() {
        let mut file = FileData::from_base(base(3 * CHUNK));
        file.truncate(CHUNK + 10);
        file.truncate(2 * CHUNK);
        let got = read(&file, 0, 2 * CHUNK);
        assert_eq!(got.len() as u64, 2 * CHUNK);
        assert!(got[(CHUNK + 10) as usize..].iter().all(|&b| b == 0));
        assert_eq!(got[5], 5);
        let f = fills(&file, CHUNK + 5, 2);
        file.write(CHUNK + 5, &Bytes::from_static(b"ab"), &f, "write").unwrap();
        file.truncate(CHUNK + 6);
        file.truncate(CHUNK + 20);
        let got = read(&file, CHUNK, 20);
        assert_eq!(
            &got[..7],
            &[
                (CHUNK % 251) as u8,
                ((CHUNK + 1) % 251) as u8,
                ((CHUNK + 2) % 251) as u8,
                ((CHUNK + 3) % 251) as u8,
                ((CHUNK + 4) % 251) as u8,
                b'a',
                0
            ]
        );
        assert!(got[7..].iter().all(|&b| b == 0));
    }

    #[test]
    fn write_past_end_zero_fills_the_gap() {
        let mut file = FileData::from_bytes(Bytes::from_static(b"hello"));
        file.write(CHUNK * 2, &Bytes::from_static(b"x"), &[], "write").unwrap();
        let got = read(&file, 0, file.size);
        assert_eq!(got.len() as u64, CHUNK * 2 + 1);
        assert_eq!(&got[..5], b"hello");
        assert!(got[5..(CHUNK * 2) as usize].iter().all(|&b| b == 0));
        assert_eq!(got[(CHUNK * 2) as usize], b'x');
    }

    /// Paths where grouping by directory could go wrong: the root, siblings whose names sort
    /// between a directory and its children (`/a-b`, `/a!`), and nested directories.
    const VIEW_PATHS: [&str; 10] = ["/", "/a", "/b", "/a/b", "/a/c", "/a/b/c", "/a-b", "/a-b/c", "/a!", "/b/a"];

    fn node(stamp: u64) -> Arc<Node> {
        let attr = Attr { mode: 0o644, mtime: SystemTime::UNIX_EPOCH, atime: SystemTime::UNIX_EPOCH };
        Arc::new(Node { stamp, origin: Origin::Absent, attr, kind: NodeKind::Whiteout })
    }

    fn sorted<'a>(entries: impl Iterator<Item = (&'a VPath, &'a Arc<Node>)>) -> Vec<(String, u64)> {
        let mut out: Vec<_> = entries.map(|(p, n)| (p.to_string(), n.stamp)).collect();
        out.sort();
        out
    }

    proptest::proptest! {
        /// A view answers every question as one ordered map of all its paths would, and its
        /// changes from an earlier clone (a fork's base) are exactly what differs.
        #[test]
        fn a_view_behaves_like_one_ordered_map(
            ops in proptest::collection::vec((0..VIEW_PATHS.len(), 0..4u8), 0..40),
        ) {
            use std::collections::BTreeMap;
            let (mut view, mut model) = (View::new(), BTreeMap::<String, u64>::new());
            let (mut base, mut base_model) = (view.clone(), model.clone());
            for (stamp, (i, op)) in ops.into_iter().enumerate() {
                let path = VPath::parse(VIEW_PATHS[i]).unwrap();
                match op {
                    0 => {
                        proptest::prop_assert_eq!(view.remove(&path).map(|n| n.stamp), model.remove(path.as_str()));
                    }
                    1 => (base, base_model) = (view.clone(), model.clone()),
                    _ => {
                        let old = view.insert(path.clone(), node(stamp as u64));
                        proptest::prop_assert_eq!(old.map(|n| n.stamp), model.insert(path.to_string(), stamp as u64));
                    }
                }
            }
            proptest::prop_assert_eq!(view.weight(), model.keys().map(|p| budget::entry_weight(p.len(), 0)).sum::<u64>());
            for p in VIEW_PATHS {
                let path = VPath::parse(p).unwrap();
                proptest::prop_assert_eq!(view.get(p).map(|n| n.stamp), model.get(p).copied());
                let below = |q: &String| q != p && q.starts_with(&path.descendants_range().0);
                let children = |q: &String| below(q) && !q[path.descendants_range().0.len()..].contains('/');
                let expect = |keep: &dyn Fn(&String) -> bool| {
                    model.iter().filter(|(q, _)| keep(q)).map(|(q, s)| (q.clone(), *s)).collect::<Vec<_>>()
                };
                proptest::prop_assert_eq!(sorted(view.children(&path)), expect(&children));
                proptest::prop_assert_eq!(sorted(view.descendants(&path)), expect(&below));
            }
            let mut changes: Vec<_> =
                view.changes_from(&base).into_iter().map(|(p, n)| (p.to_string(), n.map(|n| n.stamp))).collect();
            changes.sort();
            let keys: std::collections::BTreeSet<_> = model.keys().chain(base_model.keys()).collect();
            let expect: Vec<_> = keys
                .into_iter()
                .filter(|k| model.get(*k) != base_model.get(*k))
                .map(|k| (k.clone(), model.get(k).copied()))
                .collect();
            proptest::prop_assert_eq!(changes, expect);
        }
    }

    #[derive(Clone, Debug)]
    enum FileOp {
        Write(u64, Vec<u8>),
        Truncate(u64),
        Read(u64, u64),
    }

    fn file_op() -> impl proptest::strategy::Strategy<Value = FileOp> {
        use proptest::prelude::*;
        // Offsets around chunk boundaries, where the interesting cases are.
        let offset =
            prop_oneof![0..4 * CHUNK, (0..4u64).prop_map(|i| i * CHUNK), (1..4u64).prop_map(|i| i * CHUNK - 1)];
        prop_oneof![
            (offset.clone(), proptest::collection::vec(any::<u8>(), 0..(CHUNK as usize + 10)))
                .prop_map(|(o, d)| FileOp::Write(o, d)),
            offset.clone().prop_map(FileOp::Truncate),
            (offset, 0..2 * CHUNK).prop_map(|(o, l)| FileOp::Read(o, l)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        /// Chunked content over a base behaves like a plain byte vector.
        #[test]
        fn chunked_content_matches_a_plain_vector(
            base_len in 0..3 * CHUNK,
            ops in proptest::collection::vec(file_op(), 1..25),
        ) {
            let mut file = FileData::from_base(base(base_len));
            let mut model: Vec<u8> = (0..base_len).map(|i| (i % 251) as u8).collect();
            for op in ops {
                match op {
                    FileOp::Write(offset, data) => {
                        let f = fills(&file, offset, data.len() as u64);
                        file.write(offset, &Bytes::from(data.clone()), &f, "write").unwrap();
                        let end = offset as usize + data.len();
                        if model.len() < end && !data.is_empty() {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].copy_from_slice(&data);
                    }
                    FileOp::Truncate(len) => {
                        file.truncate(len);
                        model.resize(len as usize, 0);
                    }
                    FileOp::Read(offset, len) => {
                        let start = (offset as usize).min(model.len());
                        let end = (offset + len).min(model.len() as u64) as usize;
                        proptest::prop_assert_eq!(read(&file, offset, len), model[start..end.max(start)].to_vec());
                    }
                }
                proptest::prop_assert_eq!(file.size, model.len() as u64);
            }
            proptest::prop_assert_eq!(read(&file, 0, file.size), model);
        }
    }
}
