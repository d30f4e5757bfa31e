//! Requests that must wait on a resource are answered on worker threads, so the threads
//! reading the kernel's requests stay free: a mount with a single reading thread keeps
//! answering while a resource holds one request back.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mirage_core::{Capabilities, DirEntry, LocalResource, Metadata, Mirage, MountOptions, Resource, Result, VPath};
use tokio::sync::Semaphore;

/// A host directory whose entries named `slow*` are described only once the gate opens.
#[derive(Debug)]
struct Gated {
    inner: LocalResource,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl Resource for Gated {
    fn capabilities(&self) -> Capabilities {
        // It says it answers at once, as the host directory does, so the mount tries requests
        // on the reading thread; those for `slow*` entries still wait, and must move.
        Capabilities { immediate: true, ..self.inner.capabilities() }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        if path.file_name().is_some_and(|name| name.starts_with("slow")) {
            let _open = self.gate.acquire().await.expect("the gate is never closed");
        }
        self.inner.stat(path).await
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        self.inner.read(path, offset, len).await
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.inner.list(path).await
    }
}

/// Opens the gate when dropped, also when a check fails: the requests it holds back then
/// finish, and the mount can go.
struct OpenOnDrop(Arc<Semaphore>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// Runs `f` on a thread and returns its result, or panics if it has not finished within a
/// minute (it would hang forever if the mount stopped answering).
fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what} never finished"))
}

#[test]
fn a_request_waiting_on_a_resource_holds_no_reading_thread() {
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("slow.txt"), "slow content\n").unwrap();
    fs::write(host.path().join("fast.txt"), "fast content\n").unwrap();
    fs::create_dir(host.path().join("slowdir")).unwrap();
    fs::create_dir(host.path().join("fastdir")).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let resource = Gated { inner: LocalResource::new(host.path()).unwrap(), gate: gate.clone() };
    let mirage = Mirage::new();
    mirage.mount("/", Arc::new(resource), MountOptions::default()).unwrap();
    let session = mirage.create_session("waiting").unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let options = mirage_fuse::Options { threads: 1, ..Default::default() };
    let mount = mirage_fuse::mount(&session, mnt.path(), &options).unwrap();
    let opener = OpenOnDrop(gate);

    // Held back by the resource: a read, and a create whose directory must be looked up.
    let slow = mnt.path().join("slow.txt");
    let slow_read = thread::spawn(move || fs::read_to_string(slow));
    let created = mnt.path().join("slowdir/new.txt");
    let slow_create = thread::spawn(move || fs::write(created, "made while waiting\n"));

    // The one reading thread still answers everything else, changes included (in another
    // directory: the kernel itself holds the root while it looks `slow*` up there).
    let fast = mnt.path().join("fast.txt");
    assert_eq!(finishes("a read", move || fs::read_to_string(fast)).unwrap(), "fast content\n");
    let other = mnt.path().join("fastdir/other.txt");
    finishes("a write", move || fs::write(other, "other\n")).unwrap();
    assert!(!slow_read.is_finished() && !slow_create.is_finished(), "the gate was still closed");

    drop(opener);
    assert_eq!(slow_read.join().unwrap().unwrap(), "slow content\n");
    slow_create.join().unwrap().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let read = |path: &str| runtime.block_on(session.read_file(path)).unwrap();
    assert_eq!(read("/slowdir/new.txt"), "made while waiting\n");
    assert_eq!(read("/fastdir/other.txt"), "other\n");
    mount.unmount().unwrap();
}

/// A host directory behind a resource that may wait (as a remote one does): each stat yields
/// once before answering, and is counted.
#[derive(Debug)]
struct Counted {
    inner: LocalResource,
    stats: Arc<AtomicUsize>,
}

#[async_trait]
impl Resource for Counted {
    fn capabilities(&self) -> Capabilities {
        Capabilities { immediate: false, ..self.inner.capabilities() }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        self.stats.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        self.inner.stat(path).await
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        self.inner.read(path, offset, len).await
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        self.inner.list(path).await
    }
}

#[test]
fn a_resource_that_may_wait_is_asked_once_per_request() {
    let host = tempfile::tempdir().unwrap();
    for i in 0..20 {
        fs::write(host.path().join(format!("f{i}")), format!("content {i}\n")).unwrap();
    }
    let stats = Arc::new(AtomicUsize::new(0));
    let resource = Counted { inner: LocalResource::new(host.path()).unwrap(), stats: stats.clone() };
    let mirage = Mirage::new();
    mirage.mount("/", Arc::new(resource), MountOptions::default()).unwrap();
    let session = mirage.create_session("counted").unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let mount = mirage_fuse::mount(&session, mnt.path(), &mirage_fuse::Options::default()).unwrap();
    for i in 0..20 {
        let before = stats.load(Ordering::SeqCst);
        let meta = finishes("a lookup", {
            let path = mnt.path().join(format!("f{i}"));
            move || fs::metadata(path)
        })
        .unwrap();
        assert_eq!(meta.len(), format!("content {i}\n").len() as u64);
        // One lookup request, one stat: an attempt on the reading thread that gave up when
        // the stat yielded would have asked twice.
        assert_eq!(stats.load(Ordering::SeqCst) - before, 1, "stats for f{i}");
    }
    mount.unmount().unwrap();
}
