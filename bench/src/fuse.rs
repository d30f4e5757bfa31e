//! The same workloads on the host's own filesystem, on tmpfs and on a FUSE mount of a Mirage
//! session over the host directory, side by side in every run; reports medians and ratios.
//!
//! - warm `rg` over a 10,000-file tree, and warm `git status` in it;
//! - creating 10,000 small files (in this process, `std::fs::write`);
//! - sequential read of a 1 GiB file: the first read through the mount (every byte crosses
//!   FUSE) and a warm re-read (the kernel's page cache, kept across opens), against the
//!   native file in the page cache.
//!
//! Usage: `cargo run --release -p mirage-bench --bin fuse [RUNS]` (default 5). Needs root (or
//! fusermount3), `/dev/fuse`, `git` and `rg`, and about 2 GiB free in the temporary directory
//! and in `/dev/shm`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirage_core::{LocalResource, Mirage, MountOptions};
use mirage_resources::testing::git;

const FILES: usize = 10_000;
const BIG: usize = 1 << 30;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// 100 directories of 100 files of 1-3 KiB; one file in 50 mentions the needle.
fn make_tree(root: &Path) {
    for d in 0..FILES / 100 {
        let dir = root.join(format!("mod{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let n = d * 100 + f;
            let mut body = format!("// file {n}\n").repeat(40 + n % 120);
            if n % 50 == 0 {
                body.push_str("let needle = 42;\n");
            }
            fs::write(dir.join(format!("f{f:03}.rs")), body).unwrap();
        }
    }
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-qm", "tree"]);
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn rg(dir: &Path) -> Duration {
    timed(|| {
        let out = Command::new("rg").args(["-c", "needle", "."]).current_dir(dir).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), FILES / 50, "rg finds every needle");
    })
}

fn git_status(dir: &Path) -> Duration {
    timed(|| assert_eq!(git(dir, &["status", "--porcelain"]), "", "a clean tree"))
}

fn create_files(dir: &Path) -> Duration {
    fs::create_dir(dir).unwrap();
    timed(|| {
        for i in 0..FILES {
            fs::write(dir.join(format!("new{i}")), b"small file content\n").unwrap();
        }
    })
}

fn read_all(path: &Path) -> Duration {
    let mut buf = vec![0u8; 1 << 20];
    timed(|| {
        let mut file = fs::File::open(path).unwrap();
        let mut total = 0;
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, BIG);
    })
}

fn write_big(path: &Path) {
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut file = fs::File::create(path).unwrap();
    for _ in 0..BIG >> 20 {
        std::io::Write::write_all(&mut file, &chunk).unwrap();
    }
}

/// A session over `source`, mounted at `point`.
fn mount(source: &Path, point: &Path, passthrough: bool) -> mirage_fuse::Mount {
    let mirage = Mirage::new();
    mirage.mount("/", Arc::new(LocalResource::new(source).unwrap()), MountOptions::default()).unwrap();
    let session = mirage.create_session("bench").unwrap();
    let options = mirage_fuse::Options { passthrough, ..mirage_fuse::Options::default() };
    mirage_fuse::mount(&session, point, &options).unwrap()
}

fn main() {
    let runs: usize = std::env::args().nth(1).map_or(5, |a| a.parse().expect("RUNS is a number"));
    let host = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let point = tempfile::tempdir().unwrap();
    let source = host.path().join("src");
    eprintln!("building two trees of {FILES} files and two 1 GiB files ...");
    for root in [&source, &shm.path().join("src")] {
        make_tree(&root.join("tree"));
        write_big(&root.join("big"));
    }
    let mounted = mount(&source, point.path(), false);
    let dirs: [(&str, PathBuf); 3] =
        [("host", source.clone()), ("tmpfs", shm.path().join("src")), ("mirage", point.path().to_owned())];

    let mut times: BTreeMap<(&str, &str), Vec<Duration>> = BTreeMap::new();
    // The first read through the mount, before anything warmed its page cache.
    let first = read_all(&point.path().join("big"));
    for run in 0..=runs {
        for (who, dir) in &dirs {
            let mut record = |what: &'static str, d: Duration| {
                if run > 0 {
                    times.entry((what, who)).or_default().push(d);
                }
            };
            record("rg", rg(&dir.join("tree")));
            record("git status", git_status(&dir.join("tree")));
            record("create", create_files(&dir.join(format!("created-{who}-{run}"))));
            record("read", read_all(&dir.join("big")));
        }
        eprintln!("run {run} of {runs} done");
    }
    drop(mounted);
    // The same source mounted with passthrough: large reads go straight to the host file, and
    // every open costs a round trip.
    let through = tempfile::tempdir().unwrap();
    let passthrough = mount(&source, through.path(), true);
    let mut first_through = Vec::new();
    let mut rg_through = Vec::new();
    for run in 0..=runs {
        let read = read_all(&through.path().join("big"));
        let warm_rg = rg(&through.path().join("tree"));
        if run > 0 {
            first_through.push(read);
            rg_through.push(warm_rg);
        }
    }
    drop(passthrough);

    let m = |what: &str, who: &str| median(times[&(what, who)].clone());
    println!("# FUSE benchmarks (median of {runs} runs; warm-up run dropped)\n");
    println!("| workload | host fs | tmpfs | Mirage mount | Mirage / host | Mirage / tmpfs |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (what, label) in [
        ("rg", "warm `rg` over 10,000 files"),
        ("git status", "warm `git status`, 10,000 files"),
        ("create", "create 10,000 small files"),
        ("read", "sequential read of 1 GiB (warm)"),
    ] {
        let (h, t, x) = (m(what, "host"), m(what, "tmpfs"), m(what, "mirage"));
        println!(
            "| {label} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}x | {:.2}x |",
            ms(h),
            ms(t),
            ms(x),
            x.as_secs_f64() / h.as_secs_f64(),
            x.as_secs_f64() / t.as_secs_f64()
        );
    }
    let host_read = m("read", "host");
    println!(
        "\nFirst read of the 1 GiB file through the mount (every byte crosses FUSE): {:.1} ms, {:.2}x the warm host read ({:.2} GiB/s).",
        ms(first),
        first.as_secs_f64() / host_read.as_secs_f64(),
        1.0 / first.as_secs_f64()
    );
    let (through_read, through_rg) = (median(first_through), median(rg_through));
    println!(
        "\nWith passthrough (`Options::passthrough`, root only): sequential read of the 1 GiB file {:.1} ms ({:.2}x the host read); warm `rg` {:.1} ms ({:.2}x the host's), as every open now asks the server.",
        ms(through_read),
        through_read.as_secs_f64() / host_read.as_secs_f64(),
        ms(through_rg),
        through_rg.as_secs_f64() / m("rg", "host").as_secs_f64()
    );
    println!("\nTimes are per workload (lower is better); ratios above 1 are slower than native.");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
