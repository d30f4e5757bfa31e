//! Runs each example binary as a user would and checks the outcome it prints, so an example
//! that stops working fails the test suite instead of a reader's first try.

use std::process::Command;

/// Runs the example binary at `path` and returns what it printed; fails on a non-zero exit.
fn run(path: &str) -> String {
    let output = Command::new(path).output().unwrap_or_else(|e| panic!("{path}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{path} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn kv_resource_commits_into_its_store() {
    let out = run(env!("CARGO_BIN_EXE_kv_resource"));
    assert!(out.contains("in the session: hello, world"), "{out}");
    assert!(out.contains("in the store before commit: []"), "{out}");
    assert!(out.contains("in the store now: b\"hello, world\""), "{out}");
}

#[test]
fn agents_commit_the_careful_fork_and_abort_the_hasty_one() {
    let out = run(env!("CARGO_BIN_EXE_agents"));
    assert!(out.contains("hasty sees /scratch/plan.txt:   false"), "{out}");
    assert!(out.contains("main still sees tests/ (hasty deleted it in its fork): true"), "{out}");
    assert!(out.contains("aborted: [\"hasty\"]"), "{out}");
    assert!(out.contains("return f'Hello, {name}!'"), "{out}");
    assert!(out.contains("tests/ still on disk: true"), "{out}");
}
