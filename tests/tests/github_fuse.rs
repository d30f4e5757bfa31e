//! A FUSE mount of a session over a GitHub repository (the project's GitHub API server,
//! backed by a real git repository): `rg` and `cat` read it through the kernel, and a file
//! edited through the mount becomes one new commit of the repository when the session
//! commits.

mod common;

use std::sync::Arc;

use mirage_core::{CommitOptions, Resource};
use mirage_resources::testing::{GitHub, git};

use common::{mount_root, rg_files, run};

#[test]
fn rg_reads_a_mounted_repository_and_an_edit_commits_back() {
    let repos = tempfile::tempdir().unwrap();
    let dir = repos.path().join("octo/tools");
    for d in 0..4 {
        std::fs::create_dir_all(dir.join(format!("src/m{d}"))).unwrap();
        for f in 0..10 {
            let body = if (d * 10 + f) % 6 == 0 { "fn needle() {}\n" } else { "fn other() {}\n" };
            std::fs::write(dir.join(format!("src/m{d}/f{f}.rs")), body).unwrap();
        }
    }
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "tools"]);

    let server = GitHub::start(repos.path());
    let cache = tempfile::tempdir().unwrap();
    let head = git(&dir, &["rev-parse", "main"]);
    let url = format!("github://octo/tools?base_url={}&cache_dir={}&token=t", server.api_url(), cache.path().display());
    let repo: Arc<dyn Resource> = mirage_resources::open(&url).unwrap();
    let mounted = mount_root(repo);
    let point = mounted.point.path();

    let expected: Vec<String> =
        (0..40).filter(|n| n % 6 == 0).map(|n| format!("./src/m{}/f{}.rs", n / 10, n % 10)).collect();
    assert_eq!(rg_files("needle", point), expected);
    assert_eq!(run("cat", &["src/m0/f0.rs"], point), "fn needle() {}\n");
    let through_api = mounted.runtime.block_on(mounted.session.read_file("/src/m0/f0.rs")).unwrap();
    assert_eq!(through_api, "fn needle() {}\n", "the session's API reads what the mount shows");

    std::fs::write(point.join("src/m1/f3.rs"), "fn edited() {}\n").unwrap();
    let common::Mounted { runtime, session, mount, .. } = mounted;
    mount.unmount().unwrap();
    let options = CommitOptions { message: Some("Edit f3 through the mount".into()), ..CommitOptions::default() };
    runtime.block_on(session.commit(options)).unwrap();
    assert_eq!(git(&dir, &["log", "-1", "--format=%P %s", "main"]), format!("{head} Edit f3 through the mount"));
    assert_eq!(git(&dir, &["show", "main:src/m1/f3.rs"]), "fn edited() {}");
    let changed = git(&dir, &["diff", "--name-only", &head, "main"]);
    assert_eq!(changed, "src/m1/f3.rs", "the commit's tree differs by the one file");
}
