//! The GitHub resource against the project's GitHub API server, backed by real git
//! repositories made here (so shas, modes and sizes are git's own).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirage_core::{CommitOptions, ErrorKind, FileType, Mirage, MountOptions, Resource, Session, VPath};
use mirage_resources::testing::{GitHub, git};
use mirage_resources::{GitHubOptions, GitHubResource};

fn p(path: &str) -> VPath {
    VPath::parse(path).unwrap()
}

/// `repos/octo/hello`: nested files, an executable, a symbolic link and a submodule,
/// committed on `main` and tagged `v1`.
fn hello(repos: &Path) -> std::path::PathBuf {
    let dir = repos.join("octo/hello");
    std::fs::create_dir_all(dir.join("src/deep")).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# hello\n").unwrap();
    std::fs::write(dir.join("src/lib.rs"), "pub fn needle() {}\n").unwrap();
    std::fs::write(dir.join("src/deep/notes.txt"), "deep\n").unwrap();
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(dir.join("run.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("README.md", dir.join("link")).unwrap();
    git(&dir, &["add", "."]);
    let readme = git(&dir, &["rev-parse", ":README.md"]);
    git(&dir, &["update-index", "--add", "--cacheinfo", &format!("160000,{readme},vendor/lib")]);
    git(&dir, &["commit", "-qm", "first"]);
    git(&dir, &["tag", "v1"]);
    dir
}

fn open(server: &GitHub, spec: &str, extra: &str, cache: &Path) -> Arc<GitHubResource> {
    let url = format!("github://{spec}?base_url={}&cache_dir={}{extra}", server.api_url(), cache.display());
    Arc::new(GitHubResource::open(&url, GitHubOptions { token: None, ..GitHubOptions::default() }).unwrap())
}

fn session(resource: Arc<GitHubResource>) -> Session {
    let mirage = Mirage::new();
    mirage.mount("/repo", resource, MountOptions::default()).unwrap();
    mirage.create_session("test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_reads_as_its_tree_with_git_modes_and_shas() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    let server = GitHub::start(repos.path());
    let resource = open(&server, "octo/hello", "", cache.path());
    let s = session(resource.clone());

    let mut names: Vec<_> = s.read_dir("/repo").await.unwrap().into_iter().map(|e| (e.name, e.file_type)).collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("README.md".to_owned(), FileType::File),
            ("link".to_owned(), FileType::Symlink),
            ("run.sh".to_owned(), FileType::File),
            ("src".to_owned(), FileType::Dir),
            ("vendor".to_owned(), FileType::Dir),
        ]
    );
    let listed = server.requests().len();
    assert!(listed <= 3, "the repository, its branch's commit and one recursive tree: {:?}", server.requests());

    assert_eq!(s.read_file("/repo/src/deep/notes.txt").await.unwrap(), "deep\n");
    assert_eq!(s.read_file("/repo/link").await.unwrap(), "# hello\n", "a link to a file in the repository");
    assert_eq!(resource.readlink(&p("/link")).await.unwrap(), "README.md");
    assert_eq!(resource.stat(&p("/run.sh")).await.unwrap().mode & 0o111, 0o111, "the exec bit");
    assert_eq!(resource.stat(&p("/README.md")).await.unwrap().mode & 0o111, 0);
    assert!(resource.list(&p("/vendor/lib")).await.unwrap().is_empty(), "a submodule is an empty directory");
    let meta = resource.stat(&p("/src/lib.rs")).await.unwrap();
    assert_eq!(meta.version.0, git(&dir, &["rev-parse", "HEAD:src/lib.rs"]), "versions are blob shas");
    assert_eq!(meta.size, 19);
    assert_eq!(resource.stat(&p("/src/lib.rs/x")).await.unwrap_err().kind(), ErrorKind::NotADirectory);
    assert_eq!(resource.stat(&p("/link/x")).await.unwrap_err().kind(), ErrorKind::FilesystemLoop);
    assert_eq!(resource.stat(&p("/nope")).await.unwrap_err().kind(), ErrorKind::NotFound);
    let read_only = session(open(&server, "octo/hello", "&read_only=true", cache.path()));
    let e = read_only.write_file("/repo/new.txt", "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_are_fetched_once_and_shared_through_the_cache() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    hello(repos.path());
    let server = GitHub::start(repos.path());
    let first = session(open(&server, "octo/hello", "", cache.path()));
    let blobs = || server.requests().iter().filter(|r| r.contains("/git/blobs/")).count();
    assert_eq!(first.read_file("/repo/README.md").await.unwrap(), "# hello\n");
    assert_eq!(blobs(), 1);
    let fork = first.fork().unwrap();
    assert_eq!(fork.read_file("/repo/README.md").await.unwrap(), "# hello\n");
    let other = session(open(&server, "octo/hello@v1", "", cache.path()));
    assert_eq!(other.read_file("/repo/README.md").await.unwrap(), "# hello\n");
    assert_eq!(blobs(), 1, "a fork and another mount read the blob from the shared cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_tags_shas_and_directories_can_be_mounted() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    std::fs::write(dir.join("README.md"), "# hello, again\n").unwrap();
    git(&dir, &["commit", "-qam", "second"]);
    let first = git(&dir, &["rev-parse", "v1"]);
    let server = GitHub::start(repos.path());
    for (spec, readme) in [
        ("octo/hello", "# hello, again\n"),
        ("octo/hello@main", "# hello, again\n"),
        ("octo/hello@v1", "# hello\n"),
        (&format!("octo/hello@{first}") as &str, "# hello\n"),
    ] {
        let resource = open(&server, spec, "", cache.path());
        assert_eq!(resource.read(&p("/README.md"), 0, 100).await.unwrap(), readme, "{spec}");
    }
    let deep = open(&server, "octo/hello/src/deep", "", cache.path());
    let names: Vec<_> = deep.list(&p("/")).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["notes.txt"]);
    let e = open(&server, "octo/hello/nowhere", "", cache.path()).list(&p("/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("nowhere"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_branch_is_noticed_and_an_unmoved_one_costs_a_304() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    let server = GitHub::start(repos.path());
    let resource = open(&server, "octo/hello@main", "&refresh=0s", cache.path());
    assert_eq!(resource.read(&p("/README.md"), 0, 100).await.unwrap(), "# hello\n");
    resource.stat(&p("/README.md")).await.unwrap();
    assert!(
        server.requests().iter().any(|r| r.contains("/commits/main") && r.ends_with(" 304")),
        "asked again with the ETag, answered 304: {:?}",
        server.requests()
    );
    std::fs::write(dir.join("README.md"), "# moved\n").unwrap();
    git(&dir, &["commit", "-qam", "moved"]);
    assert_eq!(resource.read(&p("/README.md"), 0, 100).await.unwrap(), "# moved\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_files_list_in_a_few_calls_and_a_truncated_tree_is_walked() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = repos.path().join("octo/big");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    for d in 0..100 {
        std::fs::create_dir(dir.join(format!("d{d:02}"))).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("d{d:02}/f{f:02}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "big"]);

    let server = GitHub::start(repos.path());
    let resource = open(&server, "octo/big", "", cache.path());
    assert_eq!(resource.list(&p("/d42")).await.unwrap().len(), 100);
    assert_eq!(resource.stat(&p("/d99/f99.txt")).await.unwrap().size, 6);
    assert!(server.requests().len() <= 3, "{:?}", server.requests());

    // A server that cuts recursive answers short: the tree is walked directory by directory.
    let cut = GitHub::start_with(repos.path(), None, Some(500));
    let resource = open(&cut, "octo/big", "", cache.path());
    assert_eq!(resource.list(&p("/d42")).await.unwrap().len(), 100);
    assert_eq!(resource.stat(&p("/d99/f99.txt")).await.unwrap().size, 6);
    let trees = cut.requests().iter().filter(|r| r.contains("/git/trees/")).count();
    assert_eq!(trees, 1 + 1 + 100, "the cut answer, the root, and each of the 100 directories");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_private_repositories_and_rate_limits_are_explained() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    hello(repos.path());
    std::fs::write(repos.path().join("octo/hello/PRIVATE"), "").unwrap();
    let server = GitHub::start_with(repos.path(), Some("s3cret"), None);

    let e = open(&server, "octo/hello", "", cache.path()).list(&p("/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("GITHUB_TOKEN"), "a private repository needs a token: {e}");
    let e = open(&server, "octo/hello", "&token=wrong", cache.path()).list(&p("/")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("token"), "{e}");

    let resource = open(&server, "octo/hello", "&token=s3cret&rate_limit_wait=5s", cache.path());
    server.set_rate_limit(403, 1);
    let start = Instant::now();
    assert_eq!(resource.list(&p("/")).await.unwrap().len(), 5, "waited out, then answered");
    assert!(start.elapsed() >= Duration::from_millis(900), "the retry-after was honoured");
    server.set_rate_limit(429, 120);
    let e =
        open(&server, "octo/hello", "&token=s3cret&rate_limit_wait=5s", cache.path()).list(&p("/")).await.unwrap_err();
    assert!(e.to_string().contains("rate limit") && e.to_string().contains("120"), "{e}");
}

fn with_message(message: &str) -> CommitOptions {
    CommitOptions { message: Some(message.into()), ..CommitOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_commits_back_as_one_git_commit_on_the_branch() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    let before = git(&dir, &["rev-parse", "main"]);
    let server = GitHub::start(repos.path());
    let resource = open(&server, "octo/hello", "&token=t", cache.path());
    let s = session(resource.clone());
    s.write_file("/repo/README.md", "# hello, changed\n").await.unwrap();
    s.write_file("/repo/src/tool.sh", "#!/bin/sh\n").await.unwrap();
    s.set_mode("/repo/src/tool.sh", 0o755).await.unwrap();
    s.remove("/repo/src/deep/notes.txt").await.unwrap();
    s.symlink("src/lib.rs", "/repo/lib").await.unwrap();
    let report = s.commit(with_message("Change the readme\n\nAnd more.")).await.unwrap();
    assert_eq!(report.applied.len(), 4, "{report:?}");

    let after = git(&dir, &["rev-parse", "main"]);
    assert_eq!(git(&dir, &["rev-list", "--count", &format!("{before}..{after}")]), "1", "one commit");
    assert_eq!(git(&dir, &["log", "-1", "--format=%P", "main"]), before, "on top of what the session read");
    assert_eq!(git(&dir, &["log", "-1", "--format=%B", "main"]), "Change the readme\n\nAnd more.");
    assert_eq!(git(&dir, &["show", "main:README.md"]), "# hello, changed");
    let tree = git(&dir, &["ls-tree", "-r", "main"]);
    assert!(tree.contains("100755 blob") && tree.contains("src/tool.sh"), "{tree}");
    assert!(tree.contains("120000 blob") && tree.contains("\tlib"), "{tree}");
    assert!(!tree.contains("notes.txt"), "{tree}");
    assert!(tree.contains("160000 commit"), "the submodule stays: {tree}");
    assert!(s.diff().await.unwrap().is_empty(), "everything was applied");
    assert_eq!(s.read_file("/repo/README.md").await.unwrap(), "# hello, changed\n", "read back from the new commit");
    let meta = resource.stat(&p("/README.md")).await.unwrap();
    assert_eq!(meta.version.0, git(&dir, &["rev-parse", "main:README.md"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_that_moved_is_a_conflict_and_the_session_keeps_its_work() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    let server = GitHub::start(repos.path());
    let s = session(open(&server, "octo/hello", "&token=t", cache.path()));
    s.write_file("/repo/README.md", "# mine\n").await.unwrap();
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\necho someone else\n").unwrap();
    git(&dir, &["commit", "-qam", "someone else"]);
    let theirs = git(&dir, &["rev-parse", "main"]);

    let e = s.commit(with_message("mine")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("moved"), "{e}");
    assert_eq!(git(&dir, &["rev-parse", "main"]), theirs, "the branch is left alone");
    assert_eq!(s.read_file("/repo/README.md").await.unwrap(), "# mine\n", "the session keeps its change");
    assert_eq!(s.diff().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_can_go_onto_a_new_branch_and_a_tag_needs_one() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    let main = git(&dir, &["rev-parse", "main"]);
    let server = GitHub::start(repos.path());

    let tagged = session(open(&server, "octo/hello@v1", "&token=t", cache.path()));
    tagged.write_file("/repo/README.md", "# from the tag\n").await.unwrap();
    let e = tagged.commit(with_message("x")).await.unwrap_err();
    assert!(e.to_string().contains("branch option"), "{e}");

    let resource = open(&server, "octo/hello@v1", "&branch=agent/fix&token=t", cache.path());
    let s = session(resource.clone());
    s.write_file("/repo/README.md", "# fixed\n").await.unwrap();
    s.commit(with_message("Fix the readme")).await.unwrap();
    assert_eq!(git(&dir, &["rev-parse", "main"]), main, "the mounted branch is untouched");
    assert_eq!(git(&dir, &["log", "-1", "--format=%P %s", "agent/fix"]), format!("{main} Fix the readme"));
    assert_eq!(resource.read(&p("/README.md"), 0, 100).await.unwrap(), "# fixed\n", "the mount follows the new branch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_mount_commits_into_its_directory() {
    let (repos, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dir = hello(repos.path());
    let server = GitHub::start(repos.path());
    let s = session(open(&server, "octo/hello/src", "&token=t", cache.path()));
    s.write_file("/repo/lib.rs", "pub fn changed() {}\n").await.unwrap();
    s.write_file("/repo/deep/more.txt", "more\n").await.unwrap();
    s.commit(with_message("Change src")).await.unwrap();
    assert_eq!(git(&dir, &["show", "main:src/lib.rs"]), "pub fn changed() {}");
    assert_eq!(git(&dir, &["show", "main:src/deep/more.txt"]), "more");
    assert_eq!(git(&dir, &["show", "main:src/deep/notes.txt"]), "deep", "the rest of the directory stays");
    assert_eq!(git(&dir, &["show", "main:README.md"]), "# hello", "and the rest of the repository");
}
