//! Core benchmarks, each beside its native counterpart in the same run:
//!
//! - fork cost for sessions holding 10, 10,000 and 100,000 changed files (must be flat);
//! - small-file write, read and stat on a memory mount against `std::fs` on tmpfs;
//! - committing 10,000 new files to a local directory against writing them with `std::fs`.
//!
//! Every figure is the median of `RUNS` runs. Usage: `core [RUNS]` (default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mirage_core::{CommitOptions, LocalResource, MemoryResource, Mirage, MountOptions, Session};

const SMALL_FILES: usize = 2_000;
const COMMIT_FILES: usize = 10_000;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn memory_session() -> Session {
    let mirage = Mirage::new();
    mirage.mount("/m", Arc::new(MemoryResource::new()), MountOptions::default()).expect("mount");
    mirage.create_session("bench").expect("session")
}

async fn fork_cost(runs: usize) {
    println!("## Fork cost\n\n| changed files | fork (median) |\n|---:|---:|");
    let mut results = Vec::new();
    for size in [10usize, 10_000, 100_000] {
        let session = memory_session();
        session.mkdir("/m/d", 0o755).await.expect("mkdir");
        for i in 0..size {
            session.write_file(&format!("/m/d/{i}"), "x").await.expect("write");
        }
        let mut samples = Vec::new();
        for _ in 0..runs * 20 {
            let start = Instant::now();
            let fork = session.fork().expect("fork");
            samples.push(start.elapsed());
            fork.abort().expect("abort");
        }
        let m = median(samples);
        println!("| {size} | {:.2} µs |", m.as_secs_f64() * 1e6);
        results.push(m);
    }
    let ratio = results[2].as_secs_f64() / results[0].as_secs_f64();
    println!("\nlargest / smallest: {ratio:.2}x (flat is 1x)\n");
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn small_files(runs: usize) {
    let tmpfs = tempfile::tempdir_in("/dev/shm").expect("tmpfs at /dev/shm");
    let data = vec![b'a'; 1024];
    let (mut mw, mut mr, mut ms, mut nw, mut nr, mut ns) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let session = memory_session();
        let names: Vec<String> = (0..SMALL_FILES).map(|i| format!("/m/{run}-{i}")).collect();
        let t = Instant::now();
        for name in &names {
            session.write_file(name, data.clone()).await.expect("write");
        }
        mw.push(t.elapsed());
        let t = Instant::now();
        for name in &names {
            session.read_file(name).await.expect("read");
        }
        mr.push(t.elapsed());
        let t = Instant::now();
        for name in &names {
            session.stat(name).await.expect("stat");
        }
        ms.push(t.elapsed());

        let paths: Vec<_> = (0..SMALL_FILES).map(|i| tmpfs.path().join(format!("{run}-{i}"))).collect();
        let t = Instant::now();
        for path in &paths {
            std::fs::write(path, &data).expect("write");
        }
        nw.push(t.elapsed());
        let t = Instant::now();
        for path in &paths {
            std::fs::read(path).expect("read");
        }
        nr.push(t.elapsed());
        let t = Instant::now();
        for path in &paths {
            std::fs::metadata(path).expect("stat");
        }
        ns.push(t.elapsed());
    }
    println!("## Small files (1 KiB): Mirage session on a memory mount vs std::fs on tmpfs\n");
    println!("| operation | Mirage ops/s | tmpfs ops/s | Mirage / tmpfs |\n|---|---:|---:|---:|");
    for (op, m, n) in [("write", mw, nw), ("read", mr, nr), ("stat", ms, ns)] {
        let (m, n) = (rate(SMALL_FILES, median(m)), rate(SMALL_FILES, median(n)));
        println!("| {op} | {m:.0} | {n:.0} | {:.2}x |", m / n);
    }
    println!();
}

async fn commit_to_local(runs: usize) {
    let data = vec![b'c'; 512];
    let (mut mirage_t, mut native_t) = (vec![], vec![]);
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let mirage = Mirage::new();
        mirage
            .mount("/w", Arc::new(LocalResource::new(dir.path()).expect("local")), MountOptions::default())
            .expect("mount");
        let session = mirage.create_session("bench").expect("session");
        session.mkdir("/w/d", 0o755).await.expect("mkdir");
        for i in 0..COMMIT_FILES {
            session.write_file(&format!("/w/d/{i}"), data.clone()).await.expect("write");
        }
        let t = Instant::now();
        let report = session.commit(CommitOptions::default()).await.expect("commit");
        mirage_t.push(t.elapsed());
        assert_eq!(report.applied.len(), COMMIT_FILES + 1);

        let native = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        std::fs::create_dir(native.path().join("d")).expect("mkdir");
        for i in 0..COMMIT_FILES {
            let path = native.path().join(format!("d/{i}"));
            std::fs::write(&path, &data).expect("write");
            std::fs::File::open(&path).and_then(|f| f.sync_all()).expect("fsync");
        }
        native_t.push(t.elapsed());
    }
    let (m, n) = (median(mirage_t), median(native_t));
    println!("## Commit of {COMMIT_FILES} new files to a local directory\n");
    println!("| | time (median) |\n|---|---:|");
    println!("| Mirage root commit (conditional, atomic replace, fsync per file) | {:.0} ms |", m.as_secs_f64() * 1e3);
    println!("| std::fs write + fsync per file | {:.0} ms |", n.as_secs_f64() * 1e3);
    println!("\nMirage / native: {:.2}x\n", m.as_secs_f64() / n.as_secs_f64());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5usize).max(1);
    println!("# mirage-core benchmarks (median of {runs} runs)\n");
    fork_cost(runs).await;
    small_files(runs).await;
    commit_to_local(runs).await;
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}
