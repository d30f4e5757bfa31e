//! What a server said recently: directory listings and the metadata of single entries,
//! each trusted for a fixed time, so that a lookup after a listing (what every `ls -l`, `rg`
//! or `find` does) costs no request. Writes through the resource forget what they change.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mirage_core::{Error, ErrorKind, Metadata, Result, VPath};

/// A directory's entries by name.
pub(crate) type Listing = BTreeMap<String, Metadata>;

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 1 << 16;

#[derive(Debug)]
pub(crate) struct MetaCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    listings: HashMap<VPath, (Instant, Arc<Listing>)>,
    /// `None`: known to be absent.
    entries: HashMap<VPath, (Instant, Option<Metadata>)>,
}

impl MetaCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        MetaCache { ttl, inner: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }

    /// The listing of `dir`, if fresh.
    pub(crate) fn listing(&self, dir: &VPath) -> Option<Arc<Listing>> {
        let inner = self.lock();
        inner.listings.get(dir).filter(|(at, _)| self.fresh(*at)).map(|(_, l)| l.clone())
    }

    pub(crate) fn set_listing(&self, dir: &VPath, listing: Arc<Listing>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.listings.len() >= SWEEP_AT {
            inner.listings.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        inner.listings.insert(dir.clone(), (Instant::now(), listing));
    }

    /// What is known of `path`: `Some(None)` when it is known to be absent, `None` when
    /// nothing fresh is known. A fresh listing of its parent answers too.
    pub(crate) fn entry(&self, path: &VPath) -> Option<Option<Metadata>> {
        let inner = self.lock();
        if let Some((at, meta)) = inner.entries.get(path)
            && self.fresh(*at)
        {
            return Some(meta.clone());
        }
        let (parent, name) = (path.parent()?, path.file_name()?);
        let (at, listing) = inner.listings.get(&parent)?;
        self.fresh(*at).then(|| listing.get(name).cloned())
    }

    pub(crate) fn set_entry(&self, path: &VPath, meta: Option<Metadata>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.entries.len() >= SWEEP_AT {
            inner.entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        inner.entries.insert(path.clone(), (Instant::now(), meta));
    }

    /// What `path` is, from the cache when it knows and else from `fetch` (whose answer is
    /// remembered); `None` when nothing is there. A path below a file fails with
    /// `NotADirectory`: when `path` is absent, its ancestors are looked up the same way, nearest
    /// first, until one exists.
    ///
    /// When the parent's listing has expired, `relist` lists the parent again (filling the
    /// cache) instead: a directory once listed is being browsed, and one listing (a request
    /// per page of entries) answers for all of them where `fetch` costs a request per entry.
    pub(crate) async fn lookup<F, Fut, R, RFut>(&self, path: &VPath, fetch: F, relist: R) -> Result<Option<Metadata>>
    where
        F: Fn(VPath) -> Fut,
        Fut: Future<Output = Result<Option<Metadata>>>,
        R: Fn(VPath) -> RFut,
        RFut: Future<Output = Result<()>>,
    {
        let found = self.fetched(path, &fetch, &relist).await?;
        if found.is_none() {
            for ancestor in path.ancestors() {
                match self.fetched(&ancestor, &fetch, &relist).await {
                    Ok(None) => continue,
                    Ok(Some(meta)) if !meta.is_dir() => {
                        return Err(Error::new(ErrorKind::NotADirectory, "stat").with_path(path.clone()));
                    }
                    // A directory, or no answer: `path` is simply absent.
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    async fn fetched<F, Fut, R, RFut>(&self, path: &VPath, fetch: &F, relist: &R) -> Result<Option<Metadata>>
    where
        F: Fn(VPath) -> Fut,
        Fut: Future<Output = Result<Option<Metadata>>>,
        R: Fn(VPath) -> RFut,
        RFut: Future<Output = Result<()>>,
    {
        if let Some(found) = self.entry(path) {
            return Ok(found);
        }
        if let Some(parent) = path.parent()
            && self.lock().listings.contains_key(&parent)
            && relist(parent).await.is_ok()
            && let Some(found) = self.entry(path)
        {
            return Ok(found);
        }
        let found = fetch(path.clone()).await?;
        self.set_entry(path, found.clone());
        Ok(found)
    }

    /// Records a file just written at `path`: its parent's listing is updated in place, and
    /// whatever said an ancestor was absent is forgotten (the new object brings it into being).
    pub(crate) fn stored(&self, path: &VPath, meta: Metadata) {
        if self.ttl.is_zero() {
            return;
        }
        self.set_entry(path, Some(meta.clone()));
        let mut inner = self.lock();
        let mut child = path.clone();
        let mut meta = Some(meta);
        for ancestor in path.ancestors() {
            let name = child.file_name().unwrap_or_default().to_owned();
            if let Some((_, listing)) = inner.listings.get_mut(&ancestor) {
                match meta.take() {
                    Some(meta) => {
                        Arc::make_mut(listing).insert(name, meta);
                    }
                    None if listing.contains_key(&name) => {}
                    None => {
                        inner.listings.remove(&ancestor);
                    }
                }
            }
            meta = None;
            if matches!(inner.entries.get(&ancestor), Some((_, None))) {
                inner.entries.remove(&ancestor);
            }
            child = ancestor;
        }
    }

    /// Forgets what a change at `path` may have changed: the path itself and everything
    /// below it, and every ancestor (a new object brings its directories into being; a
    /// removed one may take them away) with its listing.
    pub(crate) fn forget(&self, path: &VPath) {
        let mut inner = self.lock();
        inner.entries.retain(|p, _| !p.starts_with(path));
        inner.listings.retain(|p, _| !p.starts_with(path));
        for ancestor in path.ancestors() {
            inner.entries.remove(&ancestor);
            inner.listings.remove(&ancestor);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use mirage_core::{FileType, Version};

    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    fn file(size: u64) -> Metadata {
        let t = SystemTime::UNIX_EPOCH;
        Metadata {
            file_type: FileType::File,
            size,
            mode: 0o644,
            mtime: t,
            atime: t,
            version: Version(size.to_string()),
        }
    }

    #[test]
    fn a_listing_answers_for_its_entries_until_a_change_below_it() {
        let cache = MetaCache::new(Duration::from_secs(60));
        cache.set_listing(&p("/d"), Arc::new(Listing::from([("a".to_owned(), file(1))])));
        assert_eq!(cache.entry(&p("/d/a")), Some(Some(file(1))));
        assert_eq!(cache.entry(&p("/d/b")), Some(None), "absent from a fresh listing");
        assert_eq!(cache.entry(&p("/e/a")), None, "nothing known");
        cache.forget(&p("/d/b"));
        assert_eq!(cache.entry(&p("/d/a")), None, "the parent's listing went with the change");
        cache.set_listing(&p("/"), Arc::new(Listing::new()));
        cache.set_listing(&p("/d"), Arc::new(Listing::new()));
        cache.set_entry(&p("/d"), None);
        cache.stored(&p("/d/new"), file(3));
        assert_eq!(cache.entry(&p("/d/new")), Some(Some(file(3))));
        assert_eq!(cache.listing(&p("/d")).unwrap().get("new"), Some(&file(3)), "the parent's listing is updated");
        assert!(cache.listing(&p("/")).is_none(), "a listing that lacks the new directory is dropped");
        assert_eq!(cache.entry(&p("/d")), None, "an ancestor said absent is forgotten");
        cache.set_entry(&p("/d/x/y"), Some(file(2)));
        cache.forget(&p("/d/x"));
        assert_eq!(cache.entry(&p("/d/x/y")), None, "entries below a changed path go too");
    }

    #[tokio::test]
    async fn a_lookup_asks_once_and_finds_paths_below_files() {
        let cache = MetaCache::new(Duration::from_secs(60));
        let asked = Mutex::new(Vec::new());
        let fetch = |path: VPath| {
            asked.lock().unwrap().push(path.to_string());
            async move { Ok((path.as_str() == "/f").then(|| file(1))) }
        };
        let relist = |_: VPath| async { panic!("nothing was listed") };
        assert_eq!(cache.lookup(&p("/f"), &fetch, &relist).await.unwrap(), Some(file(1)));
        assert_eq!(cache.lookup(&p("/f"), &fetch, &relist).await.unwrap(), Some(file(1)));
        let e = cache.lookup(&p("/f/a/b"), &fetch, &relist).await.unwrap_err();
        assert_eq!((e.kind(), e.path()), (ErrorKind::NotADirectory, Some(&p("/f/a/b"))));
        assert_eq!(*asked.lock().unwrap(), ["/f", "/f/a/b", "/f/a"], "each path is asked about once");
        cache.set_entry(&p("/"), Some(Metadata { file_type: FileType::Dir, ..file(0) }));
        assert_eq!(cache.lookup(&p("/g"), &fetch, &relist).await.unwrap(), None, "absent below a directory");
    }

    #[tokio::test]
    async fn an_expired_listing_is_listed_again_rather_than_asked_entry_by_entry() {
        let cache = MetaCache::new(Duration::from_millis(50));
        cache.set_listing(&p("/d"), Arc::new(Listing::from([("a".to_owned(), file(1))])));
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Known to be a directory (an absent entry's ancestors are looked up too).
        cache.set_entry(&p("/d"), Some(Metadata { file_type: FileType::Dir, ..file(0) }));
        let fetch = |_: VPath| async { panic!("a listed directory's entries are not asked one by one") };
        let relisted = Mutex::new(0);
        let relist = |dir: VPath| {
            *relisted.lock().unwrap() += 1;
            cache.set_listing(&dir, Arc::new(Listing::from([("a".to_owned(), file(2)), ("b".to_owned(), file(3))])));
            async { Ok(()) }
        };
        assert_eq!(cache.lookup(&p("/d/a"), &fetch, &relist).await.unwrap(), Some(file(2)));
        assert_eq!(cache.lookup(&p("/d/b"), &fetch, &relist).await.unwrap(), Some(file(3)));
        assert_eq!(cache.lookup(&p("/d/c"), &fetch, &relist).await.unwrap(), None);
        assert_eq!(*relisted.lock().unwrap(), 1, "one listing answers for every entry");
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = MetaCache::new(Duration::ZERO);
        cache.set_entry(&p("/a"), Some(file(1)));
        cache.set_listing(&p("/"), Arc::new(Listing::new()));
        assert_eq!(cache.entry(&p("/a")), None);
        assert!(cache.listing(&p("/")).is_none());
    }
}
