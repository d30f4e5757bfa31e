//! The WebDAV resource against a real server (Apache httpd with mod_dav), one server per test.

#![cfg(feature = "webdav")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use mirage_core::resource::once_stream;
use mirage_core::{CommitOptions, ErrorKind, FileType, Mirage, MountOptions, Precondition, Resource, Session, VPath};
use mirage_resources::testing::{Apache, DAV_PASSWORD, DAV_USER, DavRequest, free_port};
use mirage_resources::{WebDavOptions, WebDavResource};

fn p(path: &str) -> VPath {
    VPath::parse(path).unwrap()
}

fn open(url: &str) -> Arc<WebDavResource> {
    Arc::new(WebDavResource::open(url, WebDavOptions::default()).unwrap())
}

/// A session with `resource` mounted at `/data`.
fn session(resource: Arc<dyn Resource>) -> Session {
    let mirage = Mirage::new();
    mirage.mount("/data", resource, MountOptions::default()).unwrap();
    mirage.create_session("test").unwrap()
}

/// The requests answered since `before` of them had been.
fn since(apache: &Apache, before: usize) -> Vec<DavRequest> {
    apache.requests().split_off(before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let apache = Apache::start();
    let resource = open(&apache.url("", ""));
    mirage_core::conformance::run_all(resource.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_thousands_of_files_in_a_few_requests_and_then_answers_from_the_cache() {
    let apache = Apache::start();
    apache.mkcol("/dav/flat");
    // Another client fills the directory, 32 requests at a time.
    let writer = open(&apache.url("/flat", ""));
    futures::stream::iter(0..2000)
        .map(|i| {
            let writer = writer.clone();
            async move {
                let content = once_stream(Bytes::from(format!("file {i}\n")));
                writer.put(&p(&format!("/f{i:04}.txt")), content, Precondition::Absent).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for i in 0..20 {
        writer.mkdir(&p(&format!("/sub{i:02}")), 0o755).await.unwrap();
    }

    let session = session(open(&apache.url("", "")));
    let before = apache.requests().len();
    let listing = session.read_dir("/data/flat").await.unwrap();
    assert_eq!(listing.len(), 2020, "2,000 files and 20 directories");
    assert_eq!(listing.iter().filter(|e| e.file_type == FileType::Dir).count(), 20);
    let listed = since(&apache, before);
    // Looking the directory up (depth 0) and listing it (depth 1), in one answer.
    assert!(listed.len() <= 3 && listed.iter().all(|r| r.method == "PROPFIND"), "{listed:?}");

    let before = apache.requests().len();
    for i in (0..2000).step_by(97) {
        let meta = session.stat(&format!("/data/flat/f{i:04}.txt")).await.unwrap();
        assert_eq!(meta.size, format!("file {i}\n").len() as u64);
    }
    assert_eq!(since(&apache, before), [], "stats after a listing come from the cache");
    let content = session.read_file("/data/flat/f0042.txt").await.unwrap();
    assert_eq!(content, Bytes::from("file 42\n"));
    let read = since(&apache, before);
    assert_eq!(read.len(), 1, "a read is one GET: {read:?}");
    assert_eq!((read[0].method.as_str(), read[0].path.as_str()), ("GET", "/dav/flat/f0042.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_fetch_only_the_range() {
    let apache = Apache::start();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    apache.put("/dav/big.bin", &body);
    let resource = open(&apache.url("", ""));
    assert_eq!(resource.stat(&p("/big.bin")).await.unwrap().size, 3_000_000);
    let before = apache.requests().len();
    let got = resource.read(&p("/big.bin"), 1_000_000, 10).await.unwrap();
    assert_eq!(got.as_ref(), &body[1_000_000..1_000_010]);
    let tail = resource.read(&p("/big.bin"), 2_999_995, 100).await.unwrap();
    assert_eq!(tail.as_ref(), &body[2_999_995..], "short at the end of the file");
    assert!(resource.read(&p("/big.bin"), 3_000_000, 10).await.unwrap().is_empty());
    let statuses: Vec<u16> = since(&apache, before).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [206, 206, 416], "one ranged GET each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_ranges_is_read_up_to_the_range_only() {
    let apache = Apache::start();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    apache.put("/dav/big.bin", &body);
    let url = format!("webdav://127.0.0.1:{}/whole?user={DAV_USER}&password={DAV_PASSWORD}", apache.port);
    let resource = open(&url);
    let before = apache.requests().len();
    let got = resource.read(&p("/big.bin"), 1_500_000, 20).await.unwrap();
    assert_eq!(got.as_ref(), &body[1_500_000..1_500_020]);
    let tail = resource.read(&p("/big.bin"), 1_999_990, 100).await.unwrap();
    assert_eq!(tail.as_ref(), &body[1_999_990..]);
    let gets: Vec<u16> = since(&apache, before).iter().filter(|r| r.method == "GET").map(|r| r.status).collect();
    assert_eq!(gets, [200, 200], "whole answers, sliced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_never_takes_a_directory_the_cache_calls_a_file() {
    let apache = Apache::start();
    apache.put("/dav/thing", b"a file, for now");
    let resource = open(&apache.url("", "&cache_ttl=60s"));
    assert!(!resource.stat(&p("/thing")).await.unwrap().is_dir());
    // Someone else turns it into a directory with something in it.
    assert_eq!(apache.request("DELETE", "/dav/thing", &[], b"").0, 204);
    apache.mkcol("/dav/thing");
    apache.put("/dav/thing/precious.txt", b"keep me");
    assert!(!resource.stat(&p("/thing")).await.unwrap().is_dir(), "the cache still says a file");
    let e = resource.remove(&p("/thing")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IsADirectory, "{e}");
    assert_eq!(apache.get("/dav/thing/precious.txt").unwrap(), b"keep me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_commits_streamed() {
    let apache = Apache::start();
    let resource = open(&apache.url("", ""));
    let session = session(resource.clone());
    let body: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    session.write_file("/data/big.bin", body.clone()).await.unwrap();
    let before = apache.requests().len();
    session.commit(CommitOptions::default()).await.unwrap();
    let puts: Vec<DavRequest> = since(&apache, before).into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(puts[0].chunked && puts[0].status == 201, "streamed, without a length up front: {puts:?}");
    assert!(apache.get("/dav/big.bin").unwrap() == body, "the content arrived whole");
    assert_eq!(resource.stat(&p("/big.bin")).await.unwrap().size, body.len() as u64);
    assert!(session.diff().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_by_someone_else_is_a_conflict_not_an_overwrite() {
    let apache = Apache::start();
    // Without the cache the commit's check sees the change before writing anything.
    for (ttl, checked_first) in [("&cache_ttl=0", true), ("", false)] {
        apache.put("/dav/shared.txt", b"original");
        let resource = open(&apache.url("", ttl));
        let session = session(resource.clone());
        assert_eq!(session.read_file("/data/shared.txt").await.unwrap(), Bytes::from("original"));
        session.write_file("/data/shared.txt", "mine").await.unwrap();
        session.write_file("/data/fresh.txt", "also mine").await.unwrap();
        apache.put("/dav/shared.txt", b"theirs");

        let e = session.commit(CommitOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert_eq!(e.conflicts(), [p("/data/shared.txt")]);
        assert!(e.to_string().contains("/data/shared.txt"), "{e}");
        assert_eq!(apache.get("/dav/shared.txt").unwrap(), b"theirs", "the other writer's content stays");
        if checked_first {
            assert_eq!(apache.get("/dav/fresh.txt"), None, "nothing was written");
        }
        assert_eq!(
            session.read_file("/data/shared.txt").await.unwrap(),
            Bytes::from("mine"),
            "the session keeps its work"
        );
        apache.request("DELETE", "/dav/fresh.txt", &[], b"");
    }

    // A new file someone else created first.
    let resource = open(&apache.url("", ""));
    let session = session(resource.clone());
    session.write_file("/data/new.txt", "mine").await.unwrap();
    apache.put("/dav/new.txt", b"theirs");
    let e = session.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!((e.kind(), e.conflicts()), (ErrorKind::Conflict, &[p("/data/new.txt")][..]), "{e}");
    assert_eq!(apache.get("/dav/new.txt").unwrap(), b"theirs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_check_waits_out_a_weak_etag_and_still_refuses_a_change() {
    let apache = Apache::start();
    let resource = open(&apache.url("", "&cache_ttl=0"));
    let put = |data: &'static [u8], expect| {
        let resource = resource.clone();
        async move { resource.put(&p("/f"), once_stream(Bytes::from_static(data)), expect).await }
    };
    let first = put(b"one", Precondition::Absent).await.unwrap();
    // Just written: Apache's ETag is weak for a second, and is the same version once strong.
    let second = put(b"two", Precondition::Version(first.version.clone())).await.expect("a write right after another");
    assert_ne!(second.version, first.version);
    let stale = put(b"old", Precondition::Version(first.version)).await.unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict, "{stale}");
    assert_eq!(apache.get("/dav/f").unwrap(), b"two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_encoded_on_the_way_out_and_decoded_on_the_way_back() {
    let apache = Apache::start();
    let resource = open(&apache.url("", ""));
    let session = session(resource.clone());
    session.mkdir("/data/a dir", 0o755).await.unwrap();
    session.write_file("/data/a dir/50% off & more #1.txt", "sale").await.unwrap();
    session.write_file("/data/a dir/ünïcødé.txt", "utf-8").await.unwrap();
    session.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(apache.get("/dav/a%20dir/50%25%20off%20&%20more%20%231.txt").unwrap(), b"sale");
    let fresh = open(&apache.url("", ""));
    let mut names: Vec<String> = fresh.list(&p("/a dir")).await.unwrap().into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, ["50% off & more #1.txt", "ünïcødé.txt"]);
    assert_eq!(fresh.read(&p("/a dir/ünïcødé.txt"), 0, 100).await.unwrap(), Bytes::from("utf-8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_refuses_writes() {
    let apache = Apache::start();
    apache.put("/dav/a.txt", b"a");
    let resource = open(&apache.url("", "&read_only=true"));
    let session = session(resource.clone());
    assert_eq!(session.read_file("/data/a.txt").await.unwrap(), Bytes::from("a"));
    let e = session.write_file("/data/a.txt", "b").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let e = resource.remove(&p("/a.txt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let e = resource.put(&p("/b.txt"), once_stream(Bytes::new()), Precondition::Absent).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    assert_eq!(apache.get("/dav/a.txt").unwrap(), b"a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_explained() {
    let apache = Apache::start();
    let resource = open(&format!("webdav://127.0.0.1:{}/dav?user=test&password=wrong", apache.port));
    let e = resource.list(&p("/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let message = e.to_string();
    assert!(message.contains("credentials") && message.contains(&apache.endpoint()), "{message}");
    assert!(message.contains("WEBDAV_PASSWORD"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_fast_and_is_named() {
    let port = free_port();
    let resource = open(&format!("webdav://127.0.0.1:{port}/dav?user=u&password=p"));
    let start = Instant::now();
    let e = resource.stat(&p("/anything")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nextcloud_form_reaches_a_users_files() {
    let apache = Apache::start();
    apache.put("/remote.php/dav/files/test/hello.txt", b"hello");
    let resource = open(&apache.nextcloud_url(""));
    assert_eq!(resource.base_url().path(), "/remote.php/dav/files/test/");
    // Through the generic opener, as a mount URL would be.
    let session = session(mirage_resources::open(&apache.nextcloud_url("")).unwrap());
    let names: Vec<String> = session.read_dir("/data").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["hello.txt"]);
    session.mkdir("/data/notes", 0o755).await.unwrap();
    session.write_file("/data/notes/today.md", "# today").await.unwrap();
    session.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(apache.get("/remote.php/dav/files/test/notes/today.md").unwrap(), b"# today");
    assert_eq!(apache.get("/dav/notes/today.md"), None, "a different collection from /dav");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_fails_with_its_contents_own_error_or_when_it_stalls() {
    let apache = Apache::start();
    let resource = open(&apache.url("", ""));
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let failing = futures::stream::iter([Ok(chunk.clone()), Ok(chunk.clone())])
        .chain(futures::stream::once(async {
            Err(mirage_core::Error::new(ErrorKind::PermissionDenied, "read").with_detail("the source went away"))
        }))
        .boxed();
    let e = resource.put(&p("/broken.bin"), failing, Precondition::None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "the content's error, as it was: {e}");
    assert_eq!(apache.get("/dav/broken.bin"), None, "no half-written file (Apache writes a temporary one first)");

    // A server that accepts the upload and never reads it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    });
    let resource = open(&format!("webdav://127.0.0.1:{port}/dav?timeout=1s"));
    let endless = futures::stream::repeat_with(move || Ok(chunk.clone())).boxed();
    let start = Instant::now();
    let e = resource.put(&p("/endless.bin"), endless, Precondition::None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("stalled") && e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    held.abort();
}
