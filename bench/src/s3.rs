//! A 5,000-object prefix on a real S3 server (moto) through a Mirage session, beside a plain
//! `object_store` client on the same server in the same run: list the prefix and read every
//! object, then write every object back changed (Mirage: into the session, then one commit
//! with conditional puts). Reports the median time of each phase and the requests each made,
//! counted from the server's own log.
//!
//! Usage: `cargo run --release -p mirage-bench --bin s3 [RUNS]` (default 5). Needs
//! `moto_server` (the test command installs it into `.venv`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mirage_core::{CommitOptions, Mirage, MountOptions};
use mirage_resources::testing::Moto;
use mirage_resources::{ObjectOptions, ObjectResource};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

const OBJECTS: usize = 5_000;
const BUCKET: &str = "bench";
const PREFIX: &str = "set";

/// One measured phase: its time and the requests the server answered during it.
#[derive(Default)]
struct Phase {
    times: Vec<Duration>,
    requests: Vec<usize>,
}

impl Phase {
    fn median(&self) -> (Duration, usize) {
        let mut times = self.times.clone();
        times.sort();
        let mut requests = self.requests.clone();
        requests.sort_unstable();
        (times[times.len() / 2], requests[requests.len() / 2])
    }
}

/// Runs `work`, and records its time and the requests the server answered meanwhile.
async fn timed<T>(moto: &Moto, phase: Option<&mut Phase>, work: impl Future<Output = T>) -> T {
    let before = moto.requests().len();
    let start = Instant::now();
    let out = work.await;
    let elapsed = start.elapsed();
    if let Some(phase) = phase {
        phase.times.push(elapsed);
        phase.requests.push(moto.requests().len() - before);
    }
    out
}

fn plain_client(moto: &Moto) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(moto.endpoint())
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()
        .unwrap();
    Arc::new(store)
}

async fn mirage_read(moto: &Moto) -> mirage_core::Session {
    let resource = ObjectResource::open(&moto.url(BUCKET, PREFIX, ""), ObjectOptions::default()).unwrap();
    let mirage = Mirage::new();
    mirage.mount("/data", Arc::new(resource), MountOptions::default()).unwrap();
    let session = mirage.create_session("bench").unwrap();
    let entries = session.read_dir("/data").await.unwrap();
    assert_eq!(entries.len(), OBJECTS);
    for entry in &entries {
        let body = session.read_file(&format!("/data/{}", entry.name)).await.unwrap();
        assert!(!body.is_empty());
    }
    session
}

async fn mirage_write_back(session: &mirage_core::Session, run: usize) {
    for i in 0..OBJECTS {
        session.write_file(&format!("/data/o{i:05}"), format!("object {i}, run {run}\n")).await.unwrap();
    }
    let report = session.commit(CommitOptions::default()).await.unwrap();
    assert_eq!(report.applied.len(), OBJECTS);
}

async fn plain_read(store: &Arc<dyn ObjectStore>) {
    let listed = store.list_with_delimiter(Some(&Path::from(PREFIX))).await.unwrap();
    assert_eq!(listed.objects.len(), OBJECTS);
    for object in &listed.objects {
        let body = store.get(&object.location).await.unwrap().bytes().await.unwrap();
        assert!(!body.is_empty());
    }
}

async fn plain_write_back(store: &Arc<dyn ObjectStore>, run: usize) {
    for i in 0..OBJECTS {
        let body = format!("object {i}, plain run {run}\n");
        store.put(&Path::from(format!("{PREFIX}/o{i:05}")), PutPayload::from(body)).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args().nth(1).map_or(5, |a| a.parse().expect("RUNS is a number"));
    let moto = Moto::start();
    moto.bucket(BUCKET);
    let plain = plain_client(&moto);
    eprintln!("putting {OBJECTS} objects ...");
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let plain = plain.clone();
            async move {
                let key = Path::from(format!("{PREFIX}/o{i:05}"));
                plain.put(&key, PutPayload::from(format!("object {i}\n"))).await.unwrap()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;

    let [mut m_read, mut m_write, mut p_read, mut p_write] = std::array::from_fn(|_| Phase::default());
    for run in 0..=runs {
        // Run 0 warms up and is dropped.
        let keep = run > 0;
        let session = timed(&moto, keep.then_some(&mut m_read), mirage_read(&moto)).await;
        timed(&moto, keep.then_some(&mut m_write), mirage_write_back(&session, run)).await;
        timed(&moto, keep.then_some(&mut p_read), plain_read(&plain)).await;
        timed(&moto, keep.then_some(&mut p_write), plain_write_back(&plain, run)).await;
        eprintln!("run {run}/{runs} done");
    }

    println!("### {OBJECTS} objects on moto: Mirage session vs plain object_store client (median of {runs})\n");
    println!("| phase | Mirage | requests | object_store | requests | Mirage / object_store |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, mirage, plain) in [
        ("list the prefix and read every object", &m_read, &p_read),
        ("write every object back (Mirage: session writes + one commit)", &m_write, &p_write),
    ] {
        let ((mt, mr), (pt, pr)) = (mirage.median(), plain.median());
        println!(
            "| {name} | {:.0} ms | {mr} | {:.0} ms | {pr} | {:.2}x |",
            mt.as_secs_f64() * 1e3,
            pt.as_secs_f64() * 1e3,
            mt.as_secs_f64() / pt.as_secs_f64()
        );
    }
}
