//! Fork, diff, commit and abort through the public API, over memory and local mounts.

use std::sync::Arc;

use mirage_core::{
    ChangeKind, CommitOptions, ErrorKind, LocalResource, MemoryResource, Mirage, MountOptions, Resource, Session, VPath,
};

fn setup() -> (Mirage, Session) {
    let mirage = Mirage::new();
    mirage.mount("/data", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    let root = mirage.create_session("main").unwrap();
    (mirage, root)
}

#[tokio::test]
async fn classic_fork_isolation_on_a_ram_mount() {
    let (_m, a) = setup();
    let a1 = a.fork().unwrap();
    let a2 = a.fork().unwrap();
    a1.write_file("/data/scratch.txt", "from a1").await.unwrap();
    assert_eq!(a1.read_file("/data/scratch.txt").await.unwrap(), "from a1");
    for other in [&a2, &a] {
        let e = other.read_file("/data/scratch.txt").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(other.read_dir("/data").await.unwrap().is_empty());
    }
    a1.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(a.read_file("/data/scratch.txt").await.unwrap(), "from a1");
    assert!(!a2.exists("/data/scratch.txt").await.unwrap(), "a sibling still does not see it");
}

#[tokio::test]
async fn first_winner_commit_and_nothing_lost() {
    let (_m, root) = setup();
    root.write_file("/data/x", "base").await.unwrap();
    let (f1, f2) = (root.fork().unwrap(), root.fork().unwrap());
    f1.write_file("/data/x", "one").await.unwrap();
    f2.write_file("/data/x", "two").await.unwrap();
    f2.write_file("/data/y", "also two").await.unwrap();
    f1.commit(CommitOptions::default()).await.unwrap();
    let e = f2.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.conflicts(), &[VPath::parse("/data/x").unwrap()]);
    assert!(e.to_string().contains("/data/x"), "{e}");
    assert_eq!(f2.read_file("/data/x").await.unwrap(), "two", "the loser keeps its changes");
    assert_eq!(f2.read_file("/data/y").await.unwrap(), "also two");
    assert_eq!(root.read_file("/data/x").await.unwrap(), "one");
    assert!(!root.exists("/data/y").await.unwrap());
}

#[tokio::test]
async fn disjoint_forks_both_commit() {
    let (_m, root) = setup();
    let (f1, f2) = (root.fork().unwrap(), root.fork().unwrap());
    f1.write_file("/data/a", "a").await.unwrap();
    f2.write_file("/data/b", "b").await.unwrap();
    f1.commit(CommitOptions::default()).await.unwrap();
    f2.commit(CommitOptions::default()).await.unwrap();
    let names: Vec<String> = root.read_dir("/data").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["a", "b"]);
}

#[tokio::test]
async fn winner_takes_all_aborts_siblings() {
    let (m, root) = setup();
    let (f1, f2) = (root.fork().unwrap(), root.fork().unwrap());
    let f2_child = f2.fork().unwrap();
    f1.write_file("/data/a", "a").await.unwrap();
    let report = f1.commit(CommitOptions { winner_takes_all: true, ..CommitOptions::default() }).await.unwrap();
    assert_eq!(report.applied, [VPath::parse("/data/a").unwrap()]);
    assert_eq!(report.aborted.len(), 2);
    assert_eq!(f2.read_file("/data/a").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(f2.name().is_err() && f2_child.name().is_err());
    assert_eq!(m.sessions().len(), 2);
}

#[tokio::test]
async fn deleting_a_directory_conflicts_with_a_sibling_adding_into_it() {
    let (_m, root) = setup();
    root.mkdir("/data/d", 0o755).await.unwrap();
    root.write_file("/data/d/old", "x").await.unwrap();
    let (f1, f2) = (root.fork().unwrap(), root.fork().unwrap());
    f1.write_file("/data/d/new", "y").await.unwrap();
    f2.remove_all("/data/d", false).await.unwrap();
    f1.commit(CommitOptions::default()).await.unwrap();
    let e = f2.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.conflicts().contains(&VPath::parse("/data/d/new").unwrap()), "{e}");
}

#[tokio::test]
async fn diff_lists_added_modified_deleted_with_sizes() {
    let (_m, root) = setup();
    root.write_file("/data/keep", "1").await.unwrap();
    root.write_file("/data/gone", "22").await.unwrap();
    root.write_file("/data/edit", "333").await.unwrap();
    let fork = root.fork().unwrap();
    fork.write_file("/data/new", "4444").await.unwrap();
    fork.remove("/data/gone").await.unwrap();
    fork.write_file("/data/edit", "line\n").await.unwrap();
    let diff = fork.diff().await.unwrap();
    let summary: Vec<(String, ChangeKind, Option<u64>, Option<u64>)> =
        diff.iter().map(|c| (c.path.to_string(), c.kind, c.old_size, c.new_size)).collect();
    assert_eq!(
        summary,
        [
            ("/data/edit".into(), ChangeKind::Modified, Some(3), Some(5)),
            ("/data/gone".into(), ChangeKind::Deleted, Some(2), None),
            ("/data/new".into(), ChangeKind::Added, None, Some(4)),
        ]
    );
    let text = fork.diff_text("/data/edit").await.unwrap();
    assert!(text.contains("-333") && text.contains("+line"), "{text}");
}

#[tokio::test]
async fn read_only_mounts_refuse_writes() {
    let (m, root) = setup();
    m.mount("/ro", Arc::new(MemoryResource::new()), MountOptions { read_only: true }).unwrap();
    let e = root.write_file("/ro/x", "no").await.unwrap_err();
    assert_eq!((e.kind(), e.errno()), (ErrorKind::ReadOnly, libc_erofs()));
    assert!(e.to_string().contains("/ro/x"), "{e}");
    let e = root.write_file("/elsewhere", "no").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly);
}

fn libc_erofs() -> i32 {
    30
}

#[tokio::test]
async fn synthetic_parents_of_mount_points() {
    let mirage = Mirage::new();
    mirage.mount("/mnt/deep/data", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    assert!(s.stat("/mnt").await.unwrap().is_dir());
    let names: Vec<String> = s.read_dir("/mnt/deep").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["data"]);
    assert_eq!(s.rmdir("/mnt/deep/data").await.unwrap_err().kind(), ErrorKind::PermissionDenied);
}

#[tokio::test]
async fn symlinks_resolve_inside_the_virtual_tree() {
    let (_m, s) = setup();
    s.mkdir_all("/data/real/dir").await.unwrap();
    s.write_file("/data/real/dir/f", "hi").await.unwrap();
    s.symlink("real/dir", "/data/link").await.unwrap();
    s.symlink("/data/link/f", "/data/abs").await.unwrap();
    assert_eq!(s.read_file("/data/link/f").await.unwrap(), "hi");
    assert_eq!(s.read_file("/data/abs").await.unwrap(), "hi");
    assert_eq!(s.readlink("/data/link").await.unwrap(), "real/dir");
    assert_eq!(s.realpath("/data/abs").await.unwrap().as_str(), "/data/real/dir/f");
    s.symlink("loop2", "/data/loop1").await.unwrap();
    s.symlink("loop1", "/data/loop2").await.unwrap();
    assert_eq!(s.read_file("/data/loop1").await.unwrap_err().kind(), ErrorKind::FilesystemLoop);
    s.symlink("../../../../../..", "/data/up").await.unwrap();
    assert_eq!(s.realpath("/data/up").await.unwrap().as_str(), "/");
}

#[tokio::test]
async fn rename_moves_trees_without_copying_and_commits_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/sub")).unwrap();
    std::fs::write(dir.path().join("src/sub/a.txt"), "alpha").unwrap();
    std::fs::write(dir.path().join("src/b.txt"), "beta").unwrap();
    let mirage = Mirage::new();
    mirage.mount("/w", Arc::new(LocalResource::new(dir.path()).unwrap()), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    s.rename("/w/src", "/w/dst").await.unwrap();
    assert_eq!(s.read_file("/w/dst/sub/a.txt").await.unwrap(), "alpha");
    assert!(!s.exists("/w/src").await.unwrap());
    assert!(dir.path().join("src/sub/a.txt").exists(), "nothing on disk until commit");
    let report = s.commit(CommitOptions::default()).await.unwrap();
    assert!(!report.applied.is_empty());
    assert_eq!(std::fs::read_to_string(dir.path().join("dst/sub/a.txt")).unwrap(), "alpha");
    assert_eq!(std::fs::read_to_string(dir.path().join("dst/b.txt")).unwrap(), "beta");
    assert!(!dir.path().join("src").exists());
    assert!(s.diff().await.unwrap().is_empty());
}

#[tokio::test]
async fn root_commit_refuses_to_overwrite_a_file_changed_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "original").unwrap();
    std::fs::write(dir.path().join("b"), "untouched").unwrap();
    let mirage = Mirage::new();
    mirage.mount("/w", Arc::new(LocalResource::new(dir.path()).unwrap()), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    s.write_file("/w/a", "mine").await.unwrap();
    s.write_file("/w/new", "new").await.unwrap();
    std::fs::write(dir.path().join("a"), "someone else's, longer").unwrap();
    let e = s.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(e.conflicts(), &[VPath::parse("/w/a").unwrap()]);
    assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "someone else's, longer");
    assert!(!dir.path().join("new").exists(), "all or nothing");
    assert_eq!(s.read_file("/w/a").await.unwrap(), "mine", "the session keeps its change");
    s.write_file("/w/a", "mine again").await.unwrap();
    s.remove("/w/a").await.unwrap();
    s.commit(CommitOptions::default()).await.unwrap_err();
}

#[tokio::test]
async fn small_write_into_large_local_file_and_exec_bit() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let mirage = Mirage::new();
    mirage.mount("/w", Arc::new(LocalResource::new(dir.path()).unwrap()), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    s.write("/w/big", 1_000_000, "PATCH").await.unwrap();
    s.write_file("/w/run.sh", "#!/bin/sh\necho hi\n").await.unwrap();
    s.set_mode("/w/run.sh", 0o755).await.unwrap();
    let mut expect = big.clone();
    expect[1_000_000..1_000_005].copy_from_slice(b"PATCH");
    assert_eq!(s.read_file("/w/big").await.unwrap(), expect);
    assert_eq!(s.read("/w/big", 999_998, 9).await.unwrap(), &expect[999_998..1_000_007]);
    s.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("big")).unwrap(), expect);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(dir.path().join("run.sh")).unwrap().permissions().mode() & 0o777, 0o755);
}

/// Memory that fails the first `put` of `/b` and the first `mkdir` of `/x`, as a backend that
/// goes away mid-commit would.
#[derive(Debug, Default)]
struct FailOnce {
    inner: MemoryResource,
    failed: std::sync::atomic::AtomicBool,
    failed_mkdir: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl mirage_core::Resource for FailOnce {
    fn capabilities(&self) -> mirage_core::Capabilities {
        self.inner.capabilities()
    }
    async fn stat(&self, path: &VPath) -> mirage_core::Result<mirage_core::Metadata> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &VPath, offset: u64, len: u64) -> mirage_core::Result<bytes::Bytes> {
        self.inner.read(path, offset, len).await
    }
    async fn list(&self, path: &VPath) -> mirage_core::Result<Vec<mirage_core::DirEntry>> {
        self.inner.list(path).await
    }
    async fn set_mode(&self, path: &VPath, mode: u32) -> mirage_core::Result<()> {
        self.inner.set_mode(path, mode).await
    }
    async fn mkdir(&self, path: &VPath, mode: u32) -> mirage_core::Result<()> {
        if path.as_str() == "/x" && !self.failed_mkdir.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(mirage_core::Error::new(ErrorKind::Io, "mkdir").with_path(path.clone()));
        }
        self.inner.mkdir(path, mode).await
    }
    async fn remove(&self, path: &VPath) -> mirage_core::Result<()> {
        self.inner.remove(path).await
    }
    async fn set_times(
        &self,
        path: &VPath,
        atime: Option<std::time::SystemTime>,
        mtime: Option<std::time::SystemTime>,
    ) -> mirage_core::Result<()> {
        self.inner.set_times(path, atime, mtime).await
    }
    async fn put(
        &self,
        path: &VPath,
        content: mirage_core::ByteStream,
        expect: mirage_core::Precondition,
    ) -> mirage_core::Result<mirage_core::Metadata> {
        if path.as_str() == "/b" && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(mirage_core::Error::new(ErrorKind::Io, "put").with_path(path.clone()));
        }
        self.inner.put(path, content, expect).await
    }
}

#[tokio::test]
async fn a_root_commit_that_fails_midway_completes_when_retried() {
    let backend = Arc::new(FailOnce::default());
    let mirage = Mirage::new();
    mirage.mount("/r", backend.clone(), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    for name in ["a", "b", "c"] {
        s.write_file(&format!("/r/{name}"), name.to_uppercase()).await.unwrap();
    }
    let e = s.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("applying 1 of 3"), "{e}");
    assert_eq!(s.diff().await.unwrap().len(), 2, "what was written left the session");
    let report = s.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(report.applied.len(), 2);
    for name in ["a", "b", "c"] {
        let got = backend.read(&VPath::parse(&format!("/{name}")).unwrap(), 0, 10).await.unwrap();
        assert_eq!(got, name.to_uppercase());
    }
}

/// Shrunk from the model test: an empty append copied the file up by reference, so a later
/// change on the resource leaked into the session's copy.
#[tokio::test]
async fn regression_external_change_after_an_empty_append() {
    let backend = Arc::new(MemoryResource::new());
    let mirage = Mirage::new();
    mirage.mount("/data", backend.clone(), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    let put = |data: &'static [u8]| {
        let backend = backend.clone();
        async move {
            let stream = mirage_core::resource::once_stream(bytes::Bytes::from_static(data));
            backend.put(&VPath::parse("/b").unwrap(), stream, mirage_core::Precondition::None).await.unwrap();
        }
    };
    put(b"0").await;
    s.append("/data/b", "").await.unwrap();
    put(b"1").await;
    assert_eq!(s.read_file("/data/b").await.unwrap(), "0");
}

#[tokio::test]
async fn a_large_file_changed_under_the_session_is_a_conflict_not_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big"), vec![b'a'; 200_000]).unwrap();
    let mirage = Mirage::new();
    mirage.mount("/w", Arc::new(LocalResource::new(dir.path()).unwrap()), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    s.write("/w/big", 0, "B").await.unwrap();
    std::fs::write(dir.path().join("big"), vec![b'z'; 200_000]).unwrap();
    assert_eq!(s.read("/w/big", 0, 2).await.unwrap(), "Ba", "the session's own chunk is intact");
    let e = s.read("/w/big", 150_000, 10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(s.commit(CommitOptions::default()).await.unwrap_err().kind(), ErrorKind::Conflict);
}

/// Shrunk from the directory model test: a change the parent made after the fork and then
/// wrote to the resource must still conflict with the fork's change to the same path.
#[tokio::test]
async fn regression_a_change_already_committed_to_the_resource_still_conflicts() {
    let (_m, main) = setup();
    let fork = main.fork().unwrap();
    fork.write_file("/data/d", "a file").await.unwrap();
    main.mkdir("/data/d", 0o755).await.unwrap();
    main.commit(CommitOptions::default()).await.unwrap();
    let e = fork.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.conflicts(), &[VPath::parse("/data/d").unwrap()]);
    assert!(main.stat("/data/d").await.unwrap().is_dir());
    assert_eq!(fork.read_file("/data/d").await.unwrap(), "a file");
}

/// Shrunk from the directory model test: re-creating a directory replaces what was below it,
/// so it conflicts with a file the parent added there meanwhile.
#[tokio::test]
async fn regression_recreating_a_directory_conflicts_with_entries_added_below_it() {
    let (_m, main) = setup();
    main.mkdir("/data/d", 0o755).await.unwrap();
    let fork = main.fork().unwrap();
    main.write_file("/data/d/x", "added by the parent").await.unwrap();
    main.commit(CommitOptions::default()).await.unwrap();
    fork.rmdir("/data/d").await.unwrap();
    fork.mkdir("/data/d", 0o755).await.unwrap();
    let e = fork.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.conflicts(), &[VPath::parse("/data/d/x").unwrap()]);
    assert_eq!(main.read_file("/data/d/x").await.unwrap(), "added by the parent");
}

/// Shrunk from the directory model test: moving a directory onto an empty one is allowed.
#[tokio::test]
async fn regression_a_directory_moves_onto_an_empty_directory() {
    let (_m, main) = setup();
    main.mkdir_all("/data/d").await.unwrap();
    main.write_file("/data/d/x", "x").await.unwrap();
    main.mkdir("/data/e", 0o755).await.unwrap();
    main.rename("/data/d", "/data/e").await.unwrap();
    assert_eq!(main.read_file("/data/e/x").await.unwrap(), "x");
    assert!(!main.exists("/data/d").await.unwrap());
    main.mkdir("/data/f", 0o755).await.unwrap();
    main.write_file("/data/f/y", "y").await.unwrap();
    let e = main.rename("/data/e", "/data/f").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DirectoryNotEmpty);
}

/// Shrunk from the equivalence test: a file replaced by a directory holding a new file
/// commits (the new file's path cannot exist on the resource while the file is there).
#[tokio::test]
async fn regression_a_file_replaced_by_a_directory_with_content_commits() {
    let backend = Arc::new(MemoryResource::new());
    let mirage = Mirage::new();
    mirage.mount("/m", backend.clone(), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    s.mkdir("/m/e", 0o755).await.unwrap();
    s.write_file("/m/d", "").await.unwrap();
    s.commit(CommitOptions::default()).await.unwrap();
    s.remove("/m/d").await.unwrap();
    s.rename("/m/e", "/m/d").await.unwrap();
    s.write_file("/m/d/x", "inside").await.unwrap();
    s.commit(CommitOptions::default()).await.unwrap();
    assert!(backend.stat(&VPath::parse("/d").unwrap()).await.unwrap().is_dir());
    assert_eq!(backend.read(&VPath::parse("/d/x").unwrap(), 0, 10).await.unwrap(), "inside");
}

/// Shrunk from the equivalence test: errors of a rename follow the kernel's order (the
/// source's parent, the target's parent, then the source).
#[tokio::test]
async fn regression_rename_reports_errors_in_the_kernels_order() {
    let (_m, s) = setup();
    s.write_file("/data/d", "a file").await.unwrap();
    let e = s.rename("/data/e/x", "/data/d/x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = s.rename("/data/e", "/data/d/x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotADirectory, "{e}");
    s.mkdir_all("/data/p/q").await.unwrap();
    let e = s.rename("/data/p/q", "/data/p").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DirectoryNotEmpty, "{e}");
}

/// Found by the differential test against node:fs: resolution goes from the root down, so a
/// link higher up decides before a removed entry lower down.
#[tokio::test]
async fn regression_a_looping_link_above_a_removed_entry_is_eloop() {
    let (_m, s) = setup();
    s.mkdir_all("/data/d/x").await.unwrap();
    s.rmdir("/data/d/x").await.unwrap();
    s.rmdir("/data/d").await.unwrap();
    s.symlink("d/x", "/data/d").await.unwrap();
    let e = s.stat("/data/d/y").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FilesystemLoop, "{e}");
    let e = s.mkdir_all("/data/d/y").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FilesystemLoop, "{e}");
    s.symlink("nowhere", "/data/dangling").await.unwrap();
    assert_eq!(s.mkdir_all("/data/dangling/z").await.unwrap_err().kind(), ErrorKind::NotADirectory);
    assert_eq!(s.mkdir_all("/data/dangling").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(s.readlink("/data/d/x").await.unwrap_err().kind(), ErrorKind::FilesystemLoop);
}

/// Many tasks on many threads fork, write disjoint files, read each other's committed work
/// and commit at once: every commit succeeds and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_forks_on_many_threads_commit_everything() {
    let (_m, main) = setup();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let main = main.clone();
        tasks.push(tokio::spawn(async move {
            let fork = main.fork().unwrap();
            for i in 0..50 {
                fork.write_file(&format!("/data/t{t}-{i}"), format!("{t}:{i}")).await.unwrap();
                if i % 10 == 0 {
                    fork.append(&format!("/data/t{t}-0"), "+").await.unwrap();
                    let _ = main.read_dir("/data").await.unwrap();
                }
            }
            fork.commit(CommitOptions::default()).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let names = main.read_dir("/data").await.unwrap();
    assert_eq!(names.len(), 8 * 50);
    for t in 0..8 {
        assert_eq!(main.read_file(&format!("/data/t{t}-0")).await.unwrap(), format!("{t}:0+++++"));
        assert_eq!(main.read_file(&format!("/data/t{t}-49")).await.unwrap(), format!("{t}:49"));
    }
}

/// Forks racing on one path from many threads: exactly one commit wins, every loser gets a
/// conflict and keeps its own content.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commits_on_many_threads_have_exactly_one_winner() {
    let (_m, main) = setup();
    let forks: Vec<Session> = (0..8).map(|_| main.fork().unwrap()).collect();
    let mut tasks = Vec::new();
    for (i, fork) in forks.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            fork.write_file("/data/contested", format!("fork {i}")).await.unwrap();
            fork.commit(CommitOptions::default()).await.map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(main.read_file("/data/contested").await.unwrap(), format!("fork {}", winners[0]));
    for (i, fork) in forks.iter().enumerate() {
        assert_eq!(fork.read_file("/data/contested").await.unwrap(), format!("fork {i}"));
    }
}

/// An entry whose kind changes is removed, then re-created; a failure in between is recorded,
/// so the retried commit creates it instead of reporting a conflict.
#[tokio::test]
async fn a_root_commit_failing_between_removal_and_recreation_completes_when_retried() {
    let backend = Arc::new(FailOnce::default());
    let mirage = Mirage::new();
    mirage.mount("/r", backend.clone(), MountOptions::default()).unwrap();
    let s = mirage.create_session("s").unwrap();
    s.write_file("/r/x", "a file first").await.unwrap();
    s.commit(CommitOptions::default()).await.unwrap();
    s.remove("/r/x").await.unwrap();
    s.mkdir("/r/x", 0o755).await.unwrap();
    s.write_file("/r/x/inside", "then a directory").await.unwrap();
    let e = s.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(backend.stat(&VPath::parse("/x").unwrap()).await.is_err(), "the file was removed");
    s.commit(CommitOptions::default()).await.unwrap();
    assert!(backend.stat(&VPath::parse("/x").unwrap()).await.unwrap().is_dir());
    assert_eq!(backend.read(&VPath::parse("/x/inside").unwrap(), 0, 100).await.unwrap(), "then a directory");
}

#[tokio::test]
async fn the_change_counter_moves_exactly_when_what_the_session_shows_changes() {
    use std::sync::atomic::Ordering::Acquire;
    let (_m, root) = setup();
    let counter = root.changes().unwrap();
    let now = || counter.load(Acquire);
    let start = now();
    root.write_file("/data/a", "a").await.unwrap();
    assert_eq!(now(), start + 1, "one write, one step");
    root.read_file("/data/a").await.unwrap();
    root.stat("/data/a").await.unwrap();
    let child = root.fork().unwrap();
    assert_eq!(now(), start + 1, "reads and forks change nothing");
    let child_counter = child.changes().unwrap();
    child.write_file("/data/a", "b").await.unwrap();
    assert_eq!(now(), start + 1, "a fork's writes are its own");
    assert_eq!(child_counter.load(Acquire), 1);
    child.commit(CommitOptions::default()).await.unwrap();
    assert!(now() > start + 1, "a commit into the session moves it");
    let (before, loser) = (child_counter.load(Acquire), child.fork().unwrap());
    let loser_counter = loser.changes().unwrap();
    loser.abort().unwrap();
    assert_eq!(loser_counter.load(Acquire), 1, "an abort moves it");
    assert_eq!(child_counter.load(Acquire), before, "but not the parent's");
    assert_eq!(loser.changes().unwrap_err().kind(), ErrorKind::NotFound);
    let before = now();
    root.commit(CommitOptions::default()).await.unwrap();
    assert!(now() > before, "a root commit moves it");
}

#[tokio::test]
async fn watchers_hear_every_change_to_what_the_session_shows() {
    use std::sync::Mutex;
    let (_m, root) = setup();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let watch_root = {
        let heard = heard.clone();
        root.watch(move |notice| {
            heard.lock().unwrap().push(match notice {
                mirage_core::Notice::Changed(paths) => paths.iter().map(VPath::to_string).collect::<Vec<_>>().join(" "),
                mirage_core::Notice::Ended => "ended".to_owned(),
            })
        })
        .unwrap()
    };
    let take = || std::mem::take(&mut *heard.lock().unwrap());
    root.write_file("/data/a", "a").await.unwrap();
    root.read_file("/data/a").await.unwrap();
    assert_eq!(take(), ["/data/a"]);
    let (winner, loser) = (root.fork().unwrap(), root.fork().unwrap());
    let loser_heard = Arc::new(Mutex::new(Vec::new()));
    let _watch_loser = {
        let loser_heard = loser_heard.clone();
        loser.watch(move |n| loser_heard.lock().unwrap().push(n == mirage_core::Notice::Ended)).unwrap()
    };
    winner.write_file("/data/b", "b").await.unwrap();
    winner.rename("/data/a", "/data/c").await.unwrap();
    assert!(take().is_empty(), "a fork's changes are its own until it commits");
    winner.commit(CommitOptions { winner_takes_all: true, ..CommitOptions::default() }).await.unwrap();
    let mut paths: Vec<String> = take().join(" ").split(' ').map(str::to_owned).collect();
    paths.sort();
    assert_eq!(paths, ["/data/a", "/data/b", "/data/c"], "the commit names every path it brings");
    assert_eq!(*loser_heard.lock().unwrap(), [true], "the aborted sibling hears that it ended");
    drop(watch_root);
    root.write_file("/data/d", "d").await.unwrap();
    assert!(take().is_empty(), "a dropped watch hears nothing");
}

#[tokio::test]
async fn a_snapshot_reads_what_the_file_held_after_it_is_replaced_or_removed() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("on-host"), "host content").unwrap();
    let mirage = Mirage::new();
    mirage.mount("/h", Arc::new(LocalResource::new(host.path()).unwrap()), MountOptions::default()).unwrap();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    let s = mirage.create_session("snap").unwrap();
    s.write_file("/m/f", "first").await.unwrap();
    let overlay = s.snapshot("/m/f").await.unwrap();
    let untouched = s.snapshot("/h/on-host").await.unwrap();
    s.write_file("/m/g", "replacement").await.unwrap();
    s.rename("/m/g", "/m/f").await.unwrap();
    s.remove("/h/on-host").await.unwrap();
    assert_eq!(overlay.read(0, 100).await.unwrap(), "first");
    assert_eq!(overlay.metadata().size, 5);
    assert_eq!(untouched.read(5, 100).await.unwrap(), "content");
    assert_eq!(s.read_file("/m/f").await.unwrap(), "replacement");
    s.mkdir("/m/d", 0o755).await.unwrap();
    assert_eq!(s.snapshot("/m/d").await.unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(s.snapshot("/m/none").await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn host_files_are_offered_only_for_what_the_session_has_not_changed() {
    use std::io::Read;
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "on the host").unwrap();
    let mirage = Mirage::new();
    mirage.mount("/h", Arc::new(LocalResource::new(host.path()).unwrap()), MountOptions::default()).unwrap();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).unwrap();
    let s = mirage.create_session("host-files").unwrap();
    let mut content = String::new();
    s.host_file("/h/f").await.unwrap().expect("an untouched host file").read_to_string(&mut content).unwrap();
    assert_eq!(content, "on the host");
    assert!(s.host_file("/h").await.unwrap().is_none(), "not a directory");
    s.write_file("/m/x", "ram").await.unwrap();
    assert!(s.host_file("/m/x").await.unwrap().is_none(), "no host file behind RAM");
    s.write_file("/h/f", "changed").await.unwrap();
    assert!(s.host_file("/h/f").await.unwrap().is_none(), "the session's own content is not on the host");
    assert_eq!(s.host_file("/h/none").await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn default_fork_names_are_unique_and_reuse_freed_numbers() {
    let (mirage, main) = setup();
    // Names that look like fork names but are not the parent's own numbering.
    mirage.create_session("main.x").unwrap();
    mirage.create_session("main.2").unwrap();
    let forks: Vec<Session> = (0..500).map(|_| main.fork().unwrap()).collect();
    let names: Vec<String> = forks.iter().map(|f| f.name().unwrap()).collect();
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 500, "every fork has its own name");
    assert_eq!(names[0], "main.1");
    assert_eq!(names[1], "main.3", "main.2 was taken");
    forks[41].abort().unwrap();
    let again = main.fork().unwrap();
    assert_eq!(again.name().unwrap(), names[41], "the first free number is reused");
    assert_eq!(forks[7].fork().unwrap().name().unwrap(), format!("{}.1", names[7]));
}

/// A root session `main` over an empty host directory mounted at `/w`.
fn over_an_empty_dir() -> (tempfile::TempDir, Mirage, Session) {
    let dir = tempfile::tempdir().unwrap();
    let mirage = Mirage::new();
    mirage.mount("/w", Arc::new(LocalResource::new(dir.path()).unwrap()), MountOptions::default()).unwrap();
    let root = mirage.create_session("main").unwrap();
    (dir, mirage, root)
}

#[tokio::test]
async fn a_sparse_file_is_committed_sparse_and_sizes_are_bounded() {
    use std::os::unix::fs::MetadataExt;
    let (dir, _mirage, root) = over_an_empty_dir();
    root.write_file("/w/sparse", "head").await.unwrap();
    let size = 64u64 << 30;
    root.truncate("/w/sparse", size).await.unwrap();
    root.write("/w/sparse", size - 4, "tail").await.unwrap();
    // Past the largest file a session holds.
    for e in [
        root.truncate("/w/sparse", mirage_core::MAX_FILE_SIZE + 1).await.unwrap_err(),
        root.write("/w/sparse", mirage_core::MAX_FILE_SIZE - 1, "xy").await.unwrap_err(),
    ] {
        assert_eq!((e.kind(), e.kind().code()), (ErrorKind::FileTooLarge, "EFBIG"), "{e}");
    }
    let text = root.diff_text("/w/sparse").await.unwrap();
    assert!(text.contains("larger than 8 MiB, not shown"), "{text}");
    root.commit(CommitOptions::default()).await.unwrap();
    let meta = std::fs::metadata(dir.path().join("sparse")).unwrap();
    assert_eq!(meta.len(), size);
    assert!(meta.blocks() * 512 < 16 << 20, "the holes stayed holes: {} blocks", meta.blocks());
    let mut ends = [0u8; 4];
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(dir.path().join("sparse")).unwrap();
    file.read_exact_at(&mut ends, 0).unwrap();
    assert_eq!(&ends, b"head");
    file.read_exact_at(&mut ends, size - 4).unwrap();
    assert_eq!(&ends, b"tail");
}

#[tokio::test]
async fn setuid_and_setgid_bits_do_not_reach_host_files() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _mirage, root) = over_an_empty_dir();
    root.write_file("/w/tool", "#!/bin/sh\n").await.unwrap();
    root.set_mode("/w/tool", 0o6755).await.unwrap();
    root.mkdir("/w/shared", 0o3777).await.unwrap();
    assert_eq!(root.stat("/w/tool").await.unwrap().mode, 0o6755, "the session keeps what it was told");
    root.commit(CommitOptions::default()).await.unwrap();
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("tool"), 0o755);
    assert_eq!(mode("shared") & 0o3000, 0o3000, "a directory keeps setgid (group inheritance) and sticky");
}
