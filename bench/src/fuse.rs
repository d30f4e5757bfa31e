//! The same workloads on the host's own filesystem, on tmpfs and on a FUSE mount of a Mirage
//! session over the host directory, side by side in every run; reports medians and ratios.
//!
//! - warm `rg` over a 10,000-file tree, and warm `git status` in it;
//! - creating 10,000 small files (in this process, `std::fs::write`);
//! - sequential read of a 1 GiB file: the first read through the mount (every byte crosses
//!   FUSE) and a warm re-read (the kernel's page cache, kept across opens), against the
//!   native file in the page cache, and how much of each cached copy the kernel keeps in
//!   large folios (read from the page tables; root only);
//! - the mount's rg, git status and file creation on a second mount without busy polling
//!   (`Options { busy_poll: false, .. }`; the default, busy polling, needs root), side by side
//!   in the same runs.
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

/// The share of `path`'s pages that the page cache holds in large folios (several pages per
/// cache entry, which makes reading cached data cheaper), read from this process's page tables
/// over a mapping of the file. `None` where page frame numbers are hidden (they need root).
fn large_folio_share(path: &Path) -> Option<f64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    // KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL in /proc/kpageflags.
    const COMPOUND: u64 = (1 << 15) | (1 << 16);
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
    let file = fs::File::open(path).ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    let (pagemap, flags) = (fs::File::open("/proc/self/pagemap").ok()?, fs::File::open("/proc/kpageflags").ok()?);
    // SAFETY: a read-only shared mapping of an open file, only read below and unmapped at the end.
    let map = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    if map == libc::MAP_FAILED {
        return None;
    }
    let (mut large, mut present) = (0usize, 0usize);
    let mut word = [0u8; 8];
    for index in 0..len / page {
        // SAFETY: inside the mapping; the load maps the cached page.
        unsafe { std::ptr::read_volatile(map.cast::<u8>().add(index * page)) };
        let virtual_page = (map as usize / page + index) as u64;
        if pagemap.read_exact_at(&mut word, virtual_page * 8).is_err() {
            break;
        }
        let entry = u64::from_ne_bytes(word);
        let frame = entry & ((1 << 55) - 1);
        if entry >> 63 == 0 || frame == 0 {
            continue;
        }
        if flags.read_exact_at(&mut word, frame * 8).is_err() {
            break;
        }
        present += 1;
        large += usize::from(u64::from_ne_bytes(word) & COMPOUND != 0);
    }
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(map, len) };
    (present > 0).then(|| large as f64 / present as f64)
}

/// A session over `source`, mounted at `point` with `options`.
fn mount(source: &Path, point: &Path, options: mirage_fuse::Options) -> mirage_fuse::Mount {
    let mirage = Mirage::new();
    mirage.mount("/", Arc::new(LocalResource::new(source).unwrap()), MountOptions::default()).unwrap();
    let session = mirage.create_session("bench").unwrap();
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
    let mounted = mount(&source, point.path(), mirage_fuse::Options::default());
    let busy_polling = mounted.busy_polling();
    // The same again with idle CPUs left to halt, as every mount of an unprivileged user is.
    let halting = tempfile::tempdir().unwrap();
    let unpolled =
        mount(&source, halting.path(), mirage_fuse::Options { busy_poll: false, ..mirage_fuse::Options::default() });
    let dirs: [(&str, PathBuf); 4] = [
        ("host", source.clone()),
        ("tmpfs", shm.path().join("src")),
        ("mirage", point.path().to_owned()),
        ("halting", halting.path().to_owned()),
    ];

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
            if *who != "halting" {
                record("read", read_all(&dir.join("big")));
            }
        }
        eprintln!("run {run} of {runs} done");
    }
    let folios: Vec<(&str, Option<f64>)> =
        dirs[..3].iter().map(|(who, dir)| (*who, large_folio_share(&dir.join("big")))).collect();
    drop((mounted, unpolled));
    // The same source mounted with passthrough: large reads go straight to the host file, and
    // every open costs a round trip.
    let through = tempfile::tempdir().unwrap();
    let passthrough =
        mount(&source, through.path(), mirage_fuse::Options { passthrough: true, ..mirage_fuse::Options::default() });
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
    let polling = if busy_polling { "busy polling" } else { "busy polling not in effect: it needs root" };
    println!("The Mirage mount has the default options ({polling}).\n");
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
    let shares: Vec<String> = folios
        .iter()
        .map(|(who, share)| match share {
            Some(share) => format!("{who} {:.0}%", share * 100.0),
            None => format!("{who} unknown (needs root)"),
        })
        .collect();
    println!(
        "\nShare of the cached 1 GiB file's pages held in large folios after the warm reads: {}.",
        shares.join(", ")
    );
    let (through_read, through_rg) = (median(first_through), median(rg_through));
    println!(
        "\nWith passthrough (`Options::passthrough`, root only): sequential read of the 1 GiB file {:.1} ms ({:.2}x the host read); warm `rg` {:.1} ms ({:.2}x the host's), as every open now asks the server.",
        ms(through_read),
        through_read.as_secs_f64() / host_read.as_secs_f64(),
        ms(through_rg),
        through_rg.as_secs_f64() / m("rg", "host").as_secs_f64()
    );
    let rows: Vec<String> =
        [("create", "creating 10,000 small files"), ("rg", "warm `rg`"), ("git status", "warm `git status`")]
            .iter()
            .map(|(what, label)| {
                let d = m(what, "halting");
                format!(
                    "{label} {:.1} ms ({:.2}x the host's, {:.2}x tmpfs's)",
                    ms(d),
                    d.as_secs_f64() / m(what, "host").as_secs_f64(),
                    d.as_secs_f64() / m(what, "tmpfs").as_secs_f64()
                )
            })
            .collect();
    println!("\nWithout busy polling (`busy_poll: false`, as for every unprivileged user): {}.", rows.join("; "));
    println!("\nTimes are per workload (lower is better); ratios above 1 are slower than native.");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
