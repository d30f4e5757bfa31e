//! `--mount PATH=URL`: a remote resource in a sandboxed run's tree, read and written by the
//! command, committed to the real server on exit.

use std::process::Command;
use std::sync::Arc;

use mirage_core::{Resource, VPath};
use mirage_resources::testing::{Apache, GitHub, Moto, git};

const BIN: &str = env!("CARGO_BIN_EXE_mirage-run");

/// Runs `mirage-run --mount PATH=URL --on-exit commit -- sh -c SCRIPT` in a fresh workspace,
/// home and store; returns what the command printed, after checking that it succeeded.
fn run_with(mount: &str, url: &str, script: &str) -> String {
    let (workspace, home, store) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = Command::new(BIN)
        .args(["--mount", &format!("{mount}={url}"), "--on-exit", "commit", "--", "sh", "-c", script])
        .current_dir(workspace.path())
        .env("HOME", home.path())
        .env("MIRAGE_STORE", store.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_mounted_with_a_url_is_read_and_written_by_the_command() {
    let moto = Moto::start();
    moto.bucket("runs");
    assert_eq!(moto.request("PUT", "/runs/shared/in.txt", b"from the bucket\n"), 200);
    let url = moto.url("runs", "shared", "");
    let stdout = run_with("/bucket", &url, "cat /bucket/in.txt && ls /bucket && echo written > /bucket/out.txt");
    assert_eq!(stdout, "from the bucket\nin.txt\n");
    let bucket: Arc<dyn Resource> = mirage_resources::open(&url).unwrap();
    let written = bucket.read(&VPath::parse("/out.txt").unwrap(), 0, 100).await.unwrap();
    assert_eq!(written.as_ref(), b"written\n", "the commit on exit put the file in the bucket");
}

#[test]
fn a_webdav_collection_mounted_with_a_url_is_read_and_written_by_the_command() {
    let apache = Apache::start();
    apache.mkcol("/dav/team");
    apache.put("/dav/team/in.txt", b"from the server\n");
    let stdout = run_with("/shared", &apache.url("/team", ""), "cat /shared/in.txt && echo written > /shared/out.txt");
    assert_eq!(stdout, "from the server\n");
    assert_eq!(apache.get("/dav/team/out.txt").as_deref(), Some(&b"written\n"[..]));
}

#[test]
fn a_github_repository_mounted_with_a_url_is_read_and_committed_to_on_exit() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repos.path().join("octo/hello");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("README.md"), "# hello\n").unwrap();
    for args in [&["init", "-q", "-b", "main"][..], &["add", "."], &["commit", "-qm", "first"]] {
        git(&dir, args);
    }
    let head = git(&dir, &["rev-parse", "main"]);
    let server = GitHub::start(repos.path());
    let cache = tempfile::tempdir().unwrap();
    let url = format!("github://octo/hello?base_url={}&cache_dir={}&token=t", server.api_url(), cache.path().display());
    let stdout = run_with("/upstream", &url, "cat /upstream/README.md && echo notes > /upstream/NOTES.md");
    assert_eq!(stdout, "# hello\n");
    assert_eq!(git(&dir, &["log", "-1", "--format=%P", "main"]), head, "one commit on top of what was read");
    assert_eq!(git(&dir, &["show", "main:NOTES.md"]), "notes");
}

#[test]
fn an_unknown_url_is_refused_with_what_is_understood() {
    let out = Command::new(BIN).args(["--mount", "/x=ftp://host/dir", "--", "true"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("s3://") && stderr.contains("ftp://host/dir"), "{stderr}");
}
