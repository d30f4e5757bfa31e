//! The GitHub API server harness (`testing::GitHub`) from Rust: it starts over a repository
//! made here, answers, logs, and obeys its controls. The server's own checks against GitHub's
//! API description are in `tests/github`.

use mirage_resources::testing::{GitHub, git};

/// `repos/o/r`: one commit of `README.md` and `src/lib.rs` on `main`.
fn repository() -> tempfile::TempDir {
    let repos = tempfile::tempdir().unwrap();
    let dir = repos.path().join("o/r");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# r\n").unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "first"]);
    repos
}

#[test]
fn the_server_answers_logs_and_limits() {
    let repos = repository();
    let server = GitHub::start(repos.path());
    assert_eq!(server.api_url(), format!("http://127.0.0.1:{}/", server.port));

    let (status, body) = server.request("GET", "/repos/o/r", &[], b"");
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""full_name":"o/r""#) && body.contains(r#""default_branch":"main""#), "{body}");
    assert_eq!(server.request("GET", "/repos/o/nothing", &[], b"").0, 404);
    assert_eq!(server.requests(), ["GET /repos/o/r 200", "GET /repos/o/nothing 404"]);

    server.set_rate_limit(429, 1);
    assert_eq!(server.request("GET", "/repos/o/r", &[], b"").0, 429);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(server.request("GET", "/repos/o/r", &[], b"").0, 200, "the window has passed");
    assert_eq!(server.requests().len(), 4, "the control calls are not logged: {:?}", server.requests());
}

#[test]
fn a_token_and_a_tree_limit_are_passed_on() {
    let repos = repository();
    let server = GitHub::start_with(repos.path(), Some("s3cret"), Some(2));
    assert_eq!(server.request("GET", "/repos/o/r", &[("Authorization", "Bearer wrong")], b"").0, 401);
    assert_eq!(server.request("GET", "/repos/o/r", &[("Authorization", "token s3cret")], b"").0, 200);
    let (status, body) = server.request("GET", "/repos/o/r/git/trees/main?recursive=1", &[], b"");
    assert_eq!(status, 200);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains(r#""path":"src""#) && !body.contains("src/lib.rs"), "cut after two entries: {body}");
    assert!(body.ends_with(r#""truncated":true}"#), "{body}");
}
