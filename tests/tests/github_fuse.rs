//! A FUSE mount of a session over a GitHub repository (the project's GitHub API server,
//! backed by a real git repository): `rg` and `cat` read it through the kernel.

mod common;

use std::sync::Arc;

use mirage_core::Resource;
use mirage_resources::testing::{GitHub, git};

use common::{mount_root, rg_files, run};

#[test]
fn rg_runs_over_a_mounted_repository() {
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
    let url = format!("github://octo/tools?base_url={}&cache_dir={}", server.api_url(), cache.path().display());
    let repo: Arc<dyn Resource> = mirage_resources::open(&url).unwrap();
    let mounted = mount_root(repo);
    let point = mounted.point.path();

    let expected: Vec<String> =
        (0..40).filter(|n| n % 6 == 0).map(|n| format!("./src/m{}/f{}.rs", n / 10, n % 10)).collect();
    assert_eq!(rg_files("needle", point), expected);
    assert_eq!(run("cat", &["src/m0/f0.rs"], point), "fn needle() {}\n");
    let through_api = mounted.runtime.block_on(mounted.session.read_file("/src/m0/f0.rs")).unwrap();
    assert_eq!(through_api, "fn needle() {}\n", "the session's API reads what the mount shows");
    let refused = std::fs::write(point.join("new.rs"), "x");
    assert!(refused.is_err(), "a read-only repository refuses writes through the mount");
    mounted.mount.unmount().unwrap();
}
