//! The object-store resource against a real S3 server (moto), one bucket per test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use mirage_core::{CommitOptions, ErrorKind, Mirage, MountOptions, Resource, Session, VPath};
use mirage_resources::testing::{Moto, free_port};
use mirage_resources::{ObjectOptions, ObjectResource};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn p(path: &str) -> VPath {
    VPath::parse(path).unwrap()
}

fn open(url: &str) -> Arc<ObjectResource> {
    Arc::new(ObjectResource::open(url, ObjectOptions::default()).unwrap())
}

/// A session with `resource` mounted at `/data`.
fn session(resource: Arc<ObjectResource>) -> Session {
    let mirage = Mirage::new();
    mirage.mount("/data", resource, MountOptions::default()).unwrap();
    mirage.create_session("test").unwrap()
}

/// Puts objects straight into the store, as another client would.
async fn put_all(store: &Arc<dyn ObjectStore>, objects: Vec<(String, Vec<u8>)>) {
    futures::stream::iter(objects)
        .map(|(key, body)| {
            let store = store.clone();
            async move { store.put(&Path::from(key), PutPayload::from(body)).await.unwrap() }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let moto = Moto::start();
    moto.bucket("conformance");
    let resource = open(&moto.url("conformance", "some/prefix", ""));
    mirage_core::conformance::run_all(resource.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_thousands_of_keys_in_a_few_requests_and_then_answers_from_the_cache() {
    let moto = Moto::start();
    moto.bucket("many");
    let resource = open(&moto.url("many", "tree", ""));
    let mut objects: Vec<(String, Vec<u8>)> =
        (0..2500).map(|i| (format!("tree/flat/f{i:04}.txt"), format!("file {i}\n").into_bytes())).collect();
    objects.extend((0..30).map(|i| (format!("tree/flat/sub{i:02}/inner.txt"), b"inner".to_vec())));
    put_all(resource.store(), objects).await;
    let session = session(resource.clone());

    let before = moto.requests().len();
    let listing = session.read_dir("/data/flat").await.unwrap();
    let listed = moto.requests().len() - before;
    assert_eq!(listing.len(), 2530, "2,500 files and 30 directories");
    assert!(listing.iter().filter(|e| e.file_type == mirage_core::FileType::Dir).count() == 30);
    // Looking the directory up (a HEAD that misses, a listing of one page that finds keys
    // below it) and three pages of a delimiter listing, 1,000 keys each.
    assert!(listed <= 5, "{listed} requests: {:?}", &moto.requests()[before..]);

    let before = moto.requests().len();
    for i in (0..2500).step_by(97) {
        let meta = session.stat(&format!("/data/flat/f{i:04}.txt")).await.unwrap();
        assert_eq!(meta.size, format!("file {i}\n").len() as u64);
    }
    assert_eq!(moto.requests().len(), before, "stats after a listing come from the cache");
    let content = session.read_file("/data/flat/f0042.txt").await.unwrap();
    assert_eq!(content, Bytes::from("file 42\n"));
    let after = moto.requests();
    assert_eq!(after.len(), before + 1, "a read is one GET: {:?}", &after[before.saturating_sub(3)..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_fetch_only_the_range() {
    let moto = Moto::start();
    moto.bucket("ranges");
    let resource = open(&moto.url("ranges", "", ""));
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    put_all(resource.store(), vec![("big.bin".into(), body.clone())]).await;
    let got = resource.read(&p("/big.bin"), 1_000_000, 10).await.unwrap();
    assert_eq!(got.as_ref(), &body[1_000_000..1_000_010]);
    let tail = resource.read(&p("/big.bin"), 2_999_995, 100).await.unwrap();
    assert_eq!(tail.as_ref(), &body[2_999_995..], "short at the end of the object");
    assert!(resource.read(&p("/big.bin"), 3_000_000, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_commits_as_a_multipart_upload() {
    let moto = Moto::start();
    moto.bucket("large");
    let resource = open(&moto.url("large", "up", "&multipart_threshold=6MiB&part_size=5MiB"));
    let session = session(resource.clone());
    let body: Vec<u8> = (0..13 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    session.write_file("/data/big.bin", body.clone()).await.unwrap();
    session.commit(CommitOptions::default()).await.unwrap();
    let got = resource.store().get(&Path::from("up/big.bin")).await.unwrap();
    let etag = got.meta.e_tag.clone().unwrap();
    assert!(etag.trim_matches('"').ends_with("-3"), "three parts (5 + 5 + 3 MiB): etag {etag}");
    assert!(got.bytes().await.unwrap() == body, "the content arrived whole");
    let uploads = moto.requests().iter().filter(|r| r.starts_with("PUT") && r.contains("partNumber")).count();
    assert_eq!(uploads, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changed_by_someone_else_is_a_conflict_not_an_overwrite() {
    let moto = Moto::start();
    moto.bucket("conflicts");
    // Without the cache the commit's check sees the change before writing anything.
    for (ttl, checked_first) in [("&cache_ttl=0", true), ("", false)] {
        let resource = open(&moto.url("conflicts", "", ttl));
        let store = resource.store().clone();
        put_all(&store, vec![("shared.txt".into(), b"original".to_vec())]).await;
        let session = session(resource.clone());
        assert_eq!(session.read_file("/data/shared.txt").await.unwrap(), Bytes::from("original"));
        session.write_file("/data/shared.txt", "mine").await.unwrap();
        session.write_file("/data/fresh.txt", "also mine").await.unwrap();
        store.put(&Path::from("shared.txt"), PutPayload::from_static(b"theirs")).await.unwrap();

        let e = session.commit(CommitOptions::default()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert_eq!(e.conflicts(), [p("/data/shared.txt")]);
        let theirs = store.get(&Path::from("shared.txt")).await.unwrap().bytes().await.unwrap();
        assert_eq!(theirs, Bytes::from("theirs"), "the other writer's content stays");
        if checked_first {
            assert!(store.head(&Path::from("fresh.txt")).await.is_err(), "nothing was written");
        }
        assert_eq!(
            session.read_file("/data/shared.txt").await.unwrap(),
            Bytes::from("mine"),
            "the session keeps its work"
        );
        store.delete(&Path::from("fresh.txt")).await.unwrap();
    }

    // A new key someone else created first.
    let resource = open(&moto.url("conflicts", "", ""));
    let session = session(resource.clone());
    session.write_file("/data/new.txt", "mine").await.unwrap();
    resource.store().put(&Path::from("new.txt"), PutPayload::from_static(b"theirs")).await.unwrap();
    let e = session.commit(CommitOptions::default()).await.unwrap_err();
    assert_eq!((e.kind(), e.conflicts()), (ErrorKind::Conflict, &[p("/data/new.txt")][..]), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_mount_refuses_writes() {
    let moto = Moto::start();
    moto.bucket("readonly");
    let resource = open(&moto.url("readonly", "", "&read_only=true"));
    put_all(resource.store(), vec![("a.txt".into(), b"a".to_vec())]).await;
    let session = session(resource.clone());
    assert_eq!(session.read_file("/data/a.txt").await.unwrap(), Bytes::from("a"));
    let e = session.write_file("/data/a.txt", "b").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let e = resource.remove(&p("/a.txt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_explained() {
    // After its first action (creating the bucket) this server checks every signature.
    let moto = Moto::start_with(free_port(), &[("INITIAL_NO_AUTH_ACTION_COUNT", "1")]);
    moto.bucket("guarded");
    let resource = open(&moto.url("guarded", "", ""));
    let e = resource.list(&p("/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let message = e.to_string();
    assert!(message.contains("credentials") && message.contains(&moto.endpoint()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_fast_and_names_the_endpoint() {
    let port = free_port();
    let url = format!(
        "s3://nowhere/data?endpoint=http://127.0.0.1:{port}&region=us-east-1&access_key_id=k&secret_access_key=s"
    );
    let resource = open(&url);
    let start = Instant::now();
    let e = resource.stat(&p("/anything")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    // The default retries give up within seconds (object_store's own default is minutes).
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_mid_commit_loses_nothing_and_a_retry_completes() {
    let port = free_port();
    let mut moto = Moto::start_with(port, &[]);
    moto.bucket("crash");
    let resource = open(&moto.url("crash", "", ""));
    let session = session(resource.clone());
    const FILES: usize = 1000;
    for i in 0..FILES {
        session.write_file(&format!("/data/f{i:03}"), format!("content {i}")).await.unwrap();
    }
    let committing = tokio::spawn({
        let session = session.clone();
        async move { session.commit(CommitOptions::default()).await }
    });
    let start = Instant::now();
    while moto.log_text().matches("PUT /crash/f").count() < 20 {
        assert!(start.elapsed() < Duration::from_secs(60), "the commit never started writing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    moto.kill();
    let e = committing.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains(&moto.endpoint()), "the message names the endpoint: {e}");
    let left = session.diff().await.unwrap().len();
    assert!(left > 0 && left < FILES, "some files were applied, the rest stay in the session: {left} left");

    let moto = Moto::start_with(port, &[]);
    moto.bucket("crash");
    let report = session.commit(CommitOptions::default()).await.expect("the retried commit completes");
    assert_eq!(report.applied.len(), left, "the retry applies exactly what was left");
    assert!(session.diff().await.unwrap().is_empty());
    for path in &report.applied {
        let key = path.as_str().trim_start_matches("/data/");
        let body = resource.store().get(&Path::from(key)).await.unwrap().bytes().await.unwrap();
        let i: usize = key[1..].parse().unwrap();
        assert_eq!(body, Bytes::from(format!("content {i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_markers_made_by_other_tools_are_directories() {
    let moto = Moto::start();
    moto.bucket("markers");
    assert_eq!(moto.request("PUT", "/markers/base/empty/", b""), 200);
    assert_eq!(moto.request("PUT", "/markers/base/full/", b""), 200);
    assert_eq!(moto.request("PUT", "/markers/base/full/file.txt", b"x"), 200);
    let session = session(open(&moto.url("markers", "base", "")));
    let mut names: Vec<_> =
        session.read_dir("/data").await.unwrap().into_iter().map(|e| (e.name, e.file_type)).collect();
    names.sort();
    assert_eq!(
        names,
        [("empty".to_owned(), mirage_core::FileType::Dir), ("full".to_owned(), mirage_core::FileType::Dir)]
    );
    assert!(session.stat("/data/empty").await.unwrap().is_dir());
    assert!(session.read_dir("/data/empty").await.unwrap().is_empty());
    let inside: Vec<_> = session.read_dir("/data/full").await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(inside, ["file.txt"], "the marker itself is not an entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_shows_in_listings_at_once_and_others_changes_after_the_ttl() {
    let moto = Moto::start();
    moto.bucket("fresh");
    let resource = open(&moto.url("fresh", "", "&cache_ttl=3s"));
    put_all(resource.store(), vec![("old.txt".into(), b"old".to_vec())]).await;
    let session = session(resource.clone());
    assert_eq!(session.read_dir("/data").await.unwrap().len(), 1);
    session.write_file("/data/mine.txt", "mine").await.unwrap();
    session.commit(CommitOptions::default()).await.unwrap();
    let names = |entries: Vec<mirage_core::DirEntry>| entries.into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(names(resource.list(&p("/")).await.unwrap()), ["mine.txt", "old.txt"], "our own write, at once");
    put_all(resource.store(), vec![("theirs.txt".into(), b"theirs".to_vec())]).await;
    assert_eq!(resource.list(&p("/")).await.unwrap().len(), 2, "someone else's, not before the TTL");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(names(resource.list(&p("/")).await.unwrap()), ["mine.txt", "old.txt", "theirs.txt"]);
}
