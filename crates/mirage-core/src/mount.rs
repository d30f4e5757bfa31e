//! The mount table: which resource serves which part of the virtual tree.
//!
//! Routing picks the longest mount point that is a prefix of a path. Directories above mount
//! points that no resource covers (`/mnt` when only `/mnt/data` is mounted) appear as synthetic,
//! read-only directories.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::path::VPath;
use crate::resource::Resource;

/// How a resource is mounted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Refuse every write under the mount point with `EROFS`.
    pub read_only: bool,
}

/// One entry of the mount table; cheap to clone (a shared handle).
#[derive(Clone)]
pub struct Mount(Arc<MountEntry>);

struct MountEntry {
    point: VPath,
    resource: Arc<dyn Resource>,
    read_only: bool,
}

impl Mount {
    /// Where the resource appears in the virtual tree.
    pub fn point(&self) -> &VPath {
        &self.0.point
    }

    /// The resource itself.
    pub fn resource(&self) -> &Arc<dyn Resource> {
        &self.0.resource
    }

    /// True when writes are refused, by the mount options or by the resource.
    pub fn is_read_only(&self) -> bool {
        self.0.read_only
    }
}

impl fmt::Debug for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mount").field("point", self.point()).field("read_only", &self.is_read_only()).finish()
    }
}

/// Where a virtual path leads.
#[derive(Debug)]
pub enum Route {
    /// Into a resource, at an inner path.
    Resource(Mount, VPath),
    /// A directory that exists only because mount points lie below it.
    Synthetic,
    /// Nowhere: no mount covers the path.
    Nothing,
}

/// Mount points and their resources.
#[derive(Clone, Debug, Default)]
pub struct MountTable {
    mounts: BTreeMap<VPath, Mount>,
    /// Every proper ancestor of a mount point: the directories that exist because of them.
    above: BTreeSet<VPath>,
    /// The lengths of the mount points, longest first: the only prefixes of a path that can
    /// be its mount point, so routing looks up a handful of them rather than every ancestor.
    point_lengths: Vec<usize>,
}

impl MountTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts `resource` at `point`.
    ///
    /// # Errors
    /// `AlreadyExists` when something is already mounted at `point`.
    pub fn mount(&mut self, point: VPath, resource: Arc<dyn Resource>, options: MountOptions) -> Result<()> {
        if self.mounts.contains_key(&point) {
            return Err(Error::new(ErrorKind::AlreadyExists, "mount")
                .with_path(point)
                .with_detail("a resource is already mounted there (unmount it first)"));
        }
        let read_only = options.read_only || resource.capabilities().read_only;
        self.mounts.insert(point.clone(), Mount(Arc::new(MountEntry { point, resource, read_only })));
        self.index();
        Ok(())
    }

    /// Removes the mount at `point` and returns its resource.
    ///
    /// # Errors
    /// `NotFound` when nothing is mounted at `point`.
    pub fn unmount(&mut self, point: &VPath) -> Result<Arc<dyn Resource>> {
        let mount = self.mounts.remove(point).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "unmount").with_path(point.clone()).with_detail("not a mount point")
        })?;
        self.index();
        Ok(mount.resource().clone())
    }

    /// Recomputes the directories above mount points.
    fn index(&mut self) {
        self.above = self.mounts.keys().flat_map(VPath::ancestors).collect();
        self.point_lengths = self.mounts.keys().map(|point| point.as_str().len()).collect();
        self.point_lengths.sort_unstable_by(|a, b| b.cmp(a));
        self.point_lengths.dedup();
    }

    /// Every mount, in path order.
    pub fn iter(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.values()
    }

    /// The mount at exactly `point`.
    pub fn get(&self, point: &VPath) -> Option<&Mount> {
        self.mounts.get(point)
    }

    /// True when something is mounted at exactly `point`.
    pub fn is_mount_point(&self, point: &str) -> bool {
        self.mounts.contains_key(point)
    }

    /// The mount with the longest mount point covering `path`.
    pub fn covering(&self, path: &VPath) -> Option<&Mount> {
        self.covering_str(path.as_str())
    }

    /// As [`MountTable::covering`], for a path in normal form given as a string.
    fn covering_str(&self, path: &str) -> Option<&Mount> {
        self.point_lengths.iter().find_map(|&len| {
            // The prefix of that length, when it ends at a component boundary.
            let prefix = match path.as_bytes().get(len) {
                _ if len == 1 => "/",
                None | Some(b'/') => path.get(..len)?,
                Some(_) => return None,
            };
            self.mounts.get(prefix)
        })
    }

    /// True when every mounted resource answers at once ([`crate::Capabilities::immediate`]).
    pub fn all_immediate(&self) -> bool {
        self.mounts.values().all(|mount| mount.resource().capabilities().immediate)
    }

    /// True when `path`, a string, is an absolute path in normal form whose mount, if any,
    /// answers at once ([`crate::Capabilities::immediate`]): a path no mount covers reaches no
    /// resource.
    pub fn is_immediate(&self, path: &str) -> bool {
        crate::path::is_normal(path)
            && self.covering_str(path).is_none_or(|mount| mount.resource().capabilities().immediate)
    }

    /// Routes `path` to the mount with the longest matching mount point.
    pub fn route(&self, path: &VPath) -> Route {
        match self.covering(path) {
            Some(mount) => {
                let inner = path.strip_prefix(mount.point()).expect("mount point is a prefix");
                Route::Resource(mount.clone(), inner)
            }
            None if self.is_above_mounts(path) => Route::Synthetic,
            None => Route::Nothing,
        }
    }

    /// Names of the entries that mount points add to directory `dir`: the next component of
    /// every mount point strictly below it.
    pub fn children_of(&self, dir: &VPath) -> Vec<String> {
        let (lo, hi) = dir.descendants_range();
        let mut names: Vec<String> = self
            .mounts
            .range::<str, _>((std::ops::Bound::Included(lo.as_str()), std::ops::Bound::Excluded(hi.as_str())))
            .filter_map(|(point, _)| point.strip_prefix(dir)?.components().next().map(str::to_owned))
            .collect();
        names.dedup();
        names
    }

    /// True when mount points lie below `path`.
    pub fn is_above_mounts(&self, path: &VPath) -> bool {
        self.above.contains(path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryResource;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn routes_to_the_longest_prefix_and_synthesises_parents() {
        let mut table = MountTable::new();
        table.mount(p("/data"), Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
        table.mount(p("/data/cache"), Arc::new(MemoryResource::new()), MountOptions { read_only: true }).unwrap();
        table.mount(p("/mnt/a/b"), Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();

        match table.route(&p("/data/cache/x/y")) {
            Route::Resource(m, inner) => {
                assert_eq!(m.point(), &p("/data/cache"));
                assert_eq!(inner, p("/x/y"));
                assert!(m.is_read_only());
            }
            other => panic!("unexpected {other:?}"),
        }
        match table.route(&p("/data/cachet")) {
            Route::Resource(m, inner) => assert_eq!((m.point(), inner), (&p("/data"), p("/cachet"))),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(table.route(&p("/mnt")), Route::Synthetic));
        assert!(matches!(table.route(&p("/")), Route::Synthetic));
        assert!(matches!(table.route(&p("/elsewhere")), Route::Nothing));
        assert_eq!(table.children_of(&p("/")), vec!["data", "mnt"]);
        assert_eq!(table.children_of(&p("/data")), vec!["cache"]);
        assert!(table.mount(p("/data"), Arc::new(MemoryResource::new()), MountOptions::default()).is_err());
        table.unmount(&p("/data")).unwrap();
        assert_eq!(table.unmount(&p("/data")).unwrap_err().kind(), ErrorKind::NotFound);
    }

    /// A normal path of up to four components from a small alphabet, so that mount points and
    /// paths often share prefixes (`/a` and `/ab`, `/a/b` and `/a/b.c`).
    fn small_path() -> impl proptest::strategy::Strategy<Value = VPath> {
        use proptest::prelude::*;
        proptest::collection::vec(proptest::sample::select(&["a", "b", "ab", "b.c"][..]), 0..4)
            .prop_map(|names| VPath::parse(&format!("/{}", names.join("/"))).unwrap())
    }

    proptest::proptest! {
        #[test]
        fn routes_to_the_nearest_mount_point_at_or_above_a_path(
            points in proptest::collection::vec(small_path(), 0..5),
            path in small_path(),
        ) {
            let mut table = MountTable::new();
            for point in &points {
                let _ = table.mount(point.clone(), Arc::new(MemoryResource::new()), MountOptions::default());
            }
            // The path itself, else its nearest ancestor, that is a mount point.
            let expected = std::iter::once(path.clone()).chain(path.ancestors()).find(|p| points.contains(p));
            proptest::prop_assert_eq!(table.covering(&path).map(|m| m.point().clone()), expected);
        }
    }

    /// A memory resource that says it may wait, as a remote one does.
    #[derive(Debug)]
    struct Waiting(MemoryResource);

    #[async_trait::async_trait]
    impl Resource for Waiting {
        fn capabilities(&self) -> crate::Capabilities {
            crate::Capabilities::FULL
        }

        async fn stat(&self, path: &VPath) -> crate::Result<crate::Metadata> {
            self.0.stat(path).await
        }

        async fn read(&self, path: &VPath, offset: u64, len: u64) -> crate::Result<bytes::Bytes> {
            self.0.read(path, offset, len).await
        }

        async fn list(&self, path: &VPath) -> crate::Result<Vec<crate::DirEntry>> {
            self.0.list(path).await
        }
    }

    #[test]
    fn only_plain_paths_no_waiting_mount_covers_are_immediate() {
        let mut table = MountTable::new();
        table.mount(p("/ram"), Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
        table.mount(p("/ram/remote"), Arc::new(Waiting(MemoryResource::new())), MountOptions::default()).unwrap();
        assert!(table.is_immediate("/ram"));
        assert!(table.is_immediate("/ram/a/b.txt"));
        assert!(table.is_immediate("/ram/remotely"));
        for path in ["/ram/remote", "/ram/remote/x", "/ram//x", "/ram/./x", "/ram/x/..", "/ram/x/", "ram/x", ""] {
            assert!(!table.is_immediate(path), "{path:?}");
        }
        // No mount covers these: they reach no resource.
        assert!(table.is_immediate("/"));
        assert!(table.is_immediate("/elsewhere/x"));
    }
}
