//! Named sessions from the command line: a session kept across runs, two forks of it, the
//! first commit winning, the second refused with the paths and keeping its work, and a root
//! commit writing the result to the workspace.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mirage-run");

fn mirage_run(workspace: &Path, store: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(workspace).env("MIRAGE_STORE", store).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn forks_race_the_first_commit_wins_and_the_loser_keeps_its_work() {
    let (ws, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (w, s) = (ws.path(), store.path());
    fs::write(w.join("notes.txt"), "base\n").unwrap();
    ok(mirage_run(w, s, &["--session", "main", "--", "sh", "-c", "echo setup > setup.txt"]));
    assert!(!w.join("setup.txt").exists(), "kept in the session, not written");
    ok(mirage_run(w, s, &["--fork", "main", "--", "sh", "-c", "echo A > notes.txt && echo a > a.txt"]));
    ok(mirage_run(w, s, &["--fork", "main", "--", "sh", "-c", "echo B > notes.txt && echo b > b.txt"]));
    let list = ok(mirage_run(w, s, &["sessions"]));
    assert!(list.contains("main.1 (fork of main)") && list.contains("main.2 (fork of main)"), "{list}");

    let diff = ok(mirage_run(w, s, &["diff", "main.1", "--text"]));
    assert!(diff.contains("M ") && diff.contains("notes.txt") && diff.contains("+A"), "{diff}");
    ok(mirage_run(w, s, &["commit", "main.1"]));
    let lost = mirage_run(w, s, &["commit", "main.2"]);
    assert!(!lost.status.success());
    let why = String::from_utf8_lossy(&lost.stderr);
    assert!(why.contains("notes.txt") && why.contains("keeps"), "the conflict names the path: {why}");
    let kept = ok(mirage_run(w, s, &["diff", "main.2"]));
    assert!(kept.contains("b.txt"), "the loser keeps its changes: {kept}");

    ok(mirage_run(w, s, &["commit", "main"]));
    assert_eq!(fs::read_to_string(w.join("notes.txt")).unwrap(), "A\n");
    assert_eq!(fs::read_to_string(w.join("setup.txt")).unwrap(), "setup\n");
    assert!(w.join("a.txt").exists() && !w.join("b.txt").exists());
    ok(mirage_run(w, s, &["abort", "main.2"]));
    assert!(!ok(mirage_run(w, s, &["sessions"])).contains("main.2"));
}

#[test]
fn a_session_belongs_to_its_workspace_and_mistakes_are_explained() {
    let (ws, other, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ok(mirage_run(ws.path(), store.path(), &["--session", "s", "--", "true"]));
    let elsewhere = mirage_run(other.path(), store.path(), &["--session", "s", "--", "true"]);
    assert!(!elsewhere.status.success());
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("run mirage-run from there"));
    let missing = mirage_run(ws.path(), store.path(), &["--fork", "nope", "--", "true"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session 'nope'"));
    let both = mirage_run(ws.path(), store.path(), &["--session", "a", "--fork", "b", "--", "true"]);
    assert_eq!(both.status.code(), Some(2));
    let discard = mirage_run(ws.path(), store.path(), &["--session", "s", "--on-exit", "discard", "--", "true"]);
    assert_eq!(discard.status.code(), Some(2), "discarding a whole named session is refused");
    assert!(String::from_utf8_lossy(&discard.stderr).contains("--fork"));
}

#[test]
fn two_agents_run_on_two_forks_at_once_and_the_first_commit_wins() {
    let (ws, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (w, s) = (ws.path(), store.path());
    fs::write(w.join("plan.md"), "v0\n").unwrap();
    ok(mirage_run(w, s, &["--session", "base", "--", "true"]));
    let agent = |text: &str| {
        Command::new(BIN)
            .args([
                "--fork",
                "base",
                "--",
                "sh",
                "-c",
                &format!("sleep 2; echo {text} > plan.md; echo {text} > {text}.txt"),
            ])
            .current_dir(w)
            .env("MIRAGE_STORE", s)
            .spawn()
            .unwrap()
    };
    let (mut one, mut two) = (agent("one"), agent("two"));
    // Both run at once (each sleeps a while in its fork); the same session twice at once is
    // refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok(mirage_run(w, s, &["sessions"])).contains("base.2") {
        assert!(std::time::Instant::now() < deadline, "the agents did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let busy = mirage_run(w, s, &["--session", "base.1", "--", "true"]);
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use by another mirage-run"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(one.wait().unwrap().success() && two.wait().unwrap().success());
    let list = ok(mirage_run(w, s, &["sessions"]));
    assert!(list.contains("base.1 (fork of base)") && list.contains("base.2 (fork of base)"), "{list}");
    // Which agent got which fork is a race; the fork committed first wins either way.
    let winner = if ok(mirage_run(w, s, &["diff", "base.2"])).contains("one.txt") { "one" } else { "two" };
    ok(mirage_run(w, s, &["commit", "base.2"]));
    let lost = mirage_run(w, s, &["commit", "base.1"]);
    assert!(!lost.status.success() && String::from_utf8_lossy(&lost.stderr).contains("plan.md"));
    ok(mirage_run(w, s, &["commit", "base"]));
    assert_eq!(fs::read_to_string(w.join("plan.md")).unwrap(), format!("{winner}\n"));
}
