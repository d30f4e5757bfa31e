//! The conformance suite every [`Resource`] passes (enable the `conformance` feature).
//!
//! Each function exercises one area of the [`Resource`] contract against an empty,
//! writable resource and panics with a message naming the broken rule. A backend's tests call
//! [`run_all`] (or the functions that apply to what it supports).

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::ErrorKind;
use crate::path::VPath;
use crate::resource::{FileType, Precondition, Resource, once_stream};

fn p(path: &str) -> VPath {
    VPath::parse(path).expect("valid test path")
}

async fn names(resource: &dyn Resource, dir: &str) -> Vec<(String, FileType)> {
    let mut list: Vec<_> =
        resource.list(&p(dir)).await.expect("list").into_iter().map(|e| (e.name, e.file_type)).collect();
    list.sort();
    list
}

/// `stat_now`, where the resource answers it, tells what `stat` tells: the same metadata, no
/// entry where `stat` says `NotFound`, the same error kind otherwise.
async fn stat_now_agrees(resource: &dyn Resource, path: &str) {
    let Some(now) = resource.stat_now(&p(path)) else { return };
    match (resource.stat(&p(path)).await, now) {
        (Ok(meta), Ok(Some(now))) => assert_eq!(meta, now, "stat_now of {path} describes it as stat does"),
        (Err(e), Ok(None)) => {
            assert_eq!(e.kind(), ErrorKind::NotFound, "stat_now of {path} finds nothing where stat fails with {e}")
        }
        (Err(e), Err(now)) => assert_eq!(e.kind(), now.kind(), "stat_now of {path} fails as stat does"),
        (stat, now) => panic!("stat_now of {path} disagrees with stat: {now:?} against {stat:?}"),
    }
}

/// Runs every check of the suite, each in its own directory.
pub async fn run_all(resource: &dyn Resource) {
    files(resource).await;
    directories(resource).await;
    rename_and_put(resource).await;
    symlinks(resource).await;
    modes_and_times(resource).await;
}

/// Create, ranged read, write at an offset, truncate, versions, remove.
pub async fn files(resource: &dyn Resource) {
    resource.mkdir(&p("/files"), 0o755).await.expect("mkdir /files");
    let f = p("/files/a.txt");
    resource.create(&f, 0o644).await.expect("create");
    assert_eq!(resource.create(&f, 0o644).await.unwrap_err().kind(), ErrorKind::AlreadyExists, "create is exclusive");
    let v0 = resource.stat(&f).await.expect("stat").version;
    resource.write(&f, 0, b"hello world").await.expect("write");
    resource.write(&f, 6, b"WORLD!").await.expect("write at offset");
    assert_eq!(resource.read(&f, 0, 100).await.expect("read"), Bytes::from_static(b"hello WORLD!"));
    assert_eq!(resource.read(&f, 3, 4).await.expect("ranged read"), Bytes::from_static(b"lo W"));
    assert_eq!(resource.read(&f, 50, 4).await.expect("read past end"), Bytes::new());
    let meta = resource.stat(&f).await.expect("stat");
    assert_eq!((meta.file_type, meta.size), (FileType::File, 12));
    assert_ne!(meta.version, v0, "a content change changes the version");
    resource.write(&f, 14, b"!").await.expect("write past end");
    assert_eq!(resource.read(&f, 0, 100).await.expect("read").as_ref(), b"hello WORLD!\0\0!", "gaps read as zeros");
    resource.truncate(&f, 5).await.expect("truncate");
    assert_eq!(resource.read(&f, 0, 100).await.expect("read").as_ref(), b"hello");
    assert_eq!(names(resource, "/files").await, [("a.txt".to_owned(), FileType::File)]);
    assert_eq!(resource.stat(&p("/files/missing")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(resource.stat(&p("/files/a.txt/below")).await.unwrap_err().kind(), ErrorKind::NotADirectory);
    for path in ["/", "/files", "/files/a.txt", "/files/missing", "/files/a.txt/below", "/nowhere/x"] {
        stat_now_agrees(resource, path).await;
    }
    resource.remove(&f).await.expect("remove");
    assert_eq!(resource.stat(&f).await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// mkdir, listing, rmdir of empty and non-empty directories, kind mismatches.
pub async fn directories(resource: &dyn Resource) {
    resource.mkdir(&p("/dirs"), 0o755).await.expect("mkdir");
    resource.mkdir(&p("/dirs/sub"), 0o755).await.expect("mkdir sub");
    resource.create(&p("/dirs/sub/f"), 0o644).await.expect("create");
    assert_eq!(resource.mkdir(&p("/dirs/sub"), 0o755).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(resource.mkdir(&p("/dirs/no/such"), 0o755).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(resource.rmdir(&p("/dirs/sub")).await.unwrap_err().kind(), ErrorKind::DirectoryNotEmpty);
    assert_eq!(resource.remove(&p("/dirs/sub")).await.unwrap_err().kind(), ErrorKind::IsADirectory);
    assert_eq!(resource.rmdir(&p("/dirs/sub/f")).await.unwrap_err().kind(), ErrorKind::NotADirectory);
    assert_eq!(names(resource, "/dirs").await, [("sub".to_owned(), FileType::Dir)]);
    let root = names(resource, "/").await;
    assert!(root.contains(&("dirs".to_owned(), FileType::Dir)), "the root lists its entries: {root:?}");
    assert!(resource.stat(&p("/dirs/sub")).await.expect("stat").is_dir());
    resource.remove(&p("/dirs/sub/f")).await.expect("remove");
    resource.rmdir(&p("/dirs/sub")).await.expect("rmdir");
    assert!(names(resource, "/dirs").await.is_empty());
}

/// rename over files and directories, and conditional `put`.
pub async fn rename_and_put(resource: &dyn Resource) {
    resource.mkdir(&p("/mv"), 0o755).await.expect("mkdir");
    let put = |path: &'static str, data: &'static [u8], expect| async move {
        resource.put(&p(path), once_stream(Bytes::from_static(data)), expect).await
    };
    let meta = put("/mv/a", b"one", Precondition::Absent).await.expect("put new");
    assert_eq!(put("/mv/a", b"x", Precondition::Absent).await.unwrap_err().kind(), ErrorKind::Conflict);
    let stale = meta.version.clone();
    put("/mv/a", b"two", Precondition::Version(meta.version)).await.expect("put if-match");
    assert_eq!(put("/mv/a", b"x", Precondition::Version(stale)).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(resource.read(&p("/mv/a"), 0, 10).await.expect("read"), Bytes::from_static(b"two"));
    let bee = put("/mv/b", b"bee", Precondition::None).await.expect("put");
    assert_eq!(bee.size, 3);
    resource.rename(&p("/mv/a"), &p("/mv/b")).await.expect("rename over a file");
    assert_eq!(resource.read(&p("/mv/b"), 0, 10).await.expect("read"), Bytes::from_static(b"two"));
    assert_eq!(resource.stat(&p("/mv/a")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_ne!(
        resource.stat(&p("/mv/b")).await.expect("stat").version,
        bee.version,
        "a replaced entry has a new version"
    );
    resource.mkdir(&p("/mv/d"), 0o755).await.expect("mkdir");
    resource.create(&p("/mv/d/inner"), 0o644).await.expect("create");
    resource.rename(&p("/mv/d"), &p("/mv/e")).await.expect("rename a directory");
    assert_eq!(names(resource, "/mv/e").await, [("inner".to_owned(), FileType::File)]);
    assert_eq!(
        resource.rename(&p("/mv/b"), &p("/mv/e")).await.unwrap_err().kind(),
        ErrorKind::IsADirectory,
        "a file cannot replace a directory"
    );
}

/// Links are stored verbatim and never followed by the resource.
pub async fn symlinks(resource: &dyn Resource) {
    if !resource.capabilities().symlinks {
        return;
    }
    resource.mkdir(&p("/ln"), 0o755).await.expect("mkdir");
    resource.mkdir(&p("/ln/real"), 0o755).await.expect("mkdir");
    resource.create(&p("/ln/real/f"), 0o644).await.expect("create");
    resource.symlink("real", &p("/ln/link")).await.expect("symlink");
    resource.symlink("/etc/passwd", &p("/ln/abs")).await.expect("symlink to an absolute path");
    assert_eq!(resource.readlink(&p("/ln/link")).await.expect("readlink"), "real");
    assert_eq!(resource.stat(&p("/ln/abs")).await.expect("lstat").file_type, FileType::Symlink);
    assert_eq!(
        resource.stat(&p("/ln/link/f")).await.unwrap_err().kind(),
        ErrorKind::FilesystemLoop,
        "a path through a link is refused"
    );
    assert!(resource.read(&p("/ln/abs"), 0, 10).await.is_err(), "reading a link does not follow it");
    assert!(resource.write(&p("/ln/link/f"), 0, b"x").await.is_err(), "writing through a link is refused");
    assert!(names(resource, "/ln").await.contains(&("link".to_owned(), FileType::Symlink)));
    resource.remove(&p("/ln/link")).await.expect("remove a link");
    assert!(resource.stat(&p("/ln/real/f")).await.is_ok(), "removing a link leaves its target");
}

/// Permission bits (the exec bit) and modification times (which a store may not let be set).
pub async fn modes_and_times(resource: &dyn Resource) {
    resource.mkdir(&p("/attr"), 0o755).await.expect("mkdir");
    let f = p("/attr/run.sh");
    resource.create(&f, 0o644).await.expect("create");
    if resource.capabilities().modes {
        resource.set_mode(&f, 0o755).await.expect("chmod");
        assert_eq!(resource.stat(&f).await.expect("stat").mode & 0o777, 0o755);
    }
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    match resource.set_times(&f, None, Some(when)).await {
        Ok(()) => assert_eq!(resource.stat(&f).await.expect("stat").mtime, when),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "times are set, or refused as unsupported: {e}"),
    }
}
