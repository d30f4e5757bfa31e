//! `mirage-run -- COMMAND` beside the same command run directly, in the same run:
//!
//! - start-up: `mirage-run -- true` against `true`;
//! - a real workload: `git clone` of a local repository (2,000 files), `rg` over the clone,
//!   and `cargo build` of a small crate, in the workspace; inside `mirage-run`, the time
//!   includes setting the sandbox up and the end-of-session summary of the 2,000 new files;
//!   and the same inside `mirage-run --no-busy-poll` (idle CPUs halt, as they do for every
//!   unprivileged user; busy polling, the default, needs root).
//!
//! Usage: `cargo build --release -p mirage-run && cargo run --release -p mirage-bench --bin
//! sandbox [RUNS]` (default 5). Needs what `mirage-run` needs (user namespaces, /dev/fuse),
//! git, rg and cargo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `mirage-run`, built beside this benchmark.
fn mirage_run() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("mirage-run");
    assert!(path.exists(), "build it first: cargo build --release -p mirage-run");
    path
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh").args(["-c", script]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

fn timed(mut command: Command) -> Duration {
    let start = Instant::now();
    let out = command.output().unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    took
}

/// A workspace holding a git repository of 2,000 files and a small crate.
fn workspace() -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    sh(
        ws.path(),
        "mkdir src-repo && cd src-repo && git init -q -b main
         for d in $(seq 1 20); do mkdir d$d; for f in $(seq 1 100); do
           printf 'fn item_%s_%s() -> u32 { %s }\\n' $d $f $f > d$d/f$f.rs; done; done
         git add . && git -c user.name=b -c user.email=b@b commit -qm tree
         cd .. && cargo new --quiet --vcs none small",
    );
    ws
}

const WORKLOAD: &str =
    "git clone -q src-repo clone && rg -c fn clone >/dev/null && cd small && cargo build --quiet --offline";

/// Leaves the workspace as the workload found it (the sandbox's runs leave nothing behind:
/// their sessions are discarded).
const CLEANUP: &str = "rm -rf clone small/target";

fn main() {
    let runs: usize = std::env::args().nth(1).map_or(5, |a| a.parse().expect("RUNS is a number"));
    let run = mirage_run();
    let ws = workspace();
    let (mut native_start, mut sandbox_start, mut native_work, mut sandbox_work) = (vec![], vec![], vec![], vec![]);
    let mut halting_work = vec![];
    // SAFETY: no arguments, no side effects.
    let root = unsafe { libc::geteuid() } == 0;
    for i in 0..=runs {
        let mut plain = Command::new("true");
        plain.current_dir(ws.path());
        let mut sandboxed = Command::new(&run);
        sandboxed.args(["--on-exit", "discard", "--", "true"]).current_dir(ws.path());
        let (a, b) = (timed(plain), timed(sandboxed));
        let mut host = Command::new("sh");
        host.args(["-c", WORKLOAD]).current_dir(ws.path());
        let mut inside = Command::new(&run);
        inside.args(["--on-exit", "discard", "--", "sh", "-c", WORKLOAD]).current_dir(ws.path());
        let c = timed(host);
        sh(ws.path(), CLEANUP);
        let mut halting = Command::new(&run);
        halting.args(["--on-exit", "discard", "--no-busy-poll", "--", "sh", "-c", WORKLOAD]).current_dir(ws.path());
        // The two sandboxed runs take turns going first, so neither always follows the other.
        let (d, e) = if i % 2 == 0 {
            let d = timed(inside);
            (d, timed(halting))
        } else {
            let e = timed(halting);
            (timed(inside), e)
        };
        if i > 0 {
            halting_work.push(e);
            native_start.push(a);
            sandbox_start.push(b);
            native_work.push(c);
            sandbox_work.push(d);
        }
        eprintln!("run {i} of {runs} done");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (a, b, c, d) = (median(native_start), median(sandbox_start), median(native_work), median(sandbox_work));
    println!("# mirage-run benchmarks (median of {runs} runs; warm-up run dropped)\n");
    let polling = if root { "busy polling" } else { "no busy polling: it needs root" };
    println!("`mirage-run` has its default options ({polling}).\n");
    println!("| | directly | in `mirage-run` | overhead / ratio |");
    println!("|---|---:|---:|---:|");
    println!("| start-up: `true` | {:.1} ms | {:.1} ms | +{:.1} ms |", ms(a), ms(b), ms(b) - ms(a));
    println!(
        "| `git clone` (2,000 files) + `rg` + `cargo build` of a small crate | {:.0} ms | {:.0} ms | {:.2}x |",
        ms(c),
        ms(d),
        d.as_secs_f64() / c.as_secs_f64()
    );
    let e = median(halting_work);
    println!(
        "| the same in `mirage-run --no-busy-poll` | {:.0} ms | {:.0} ms | {:.2}x |",
        ms(c),
        ms(e),
        e.as_secs_f64() / c.as_secs_f64()
    );
}
