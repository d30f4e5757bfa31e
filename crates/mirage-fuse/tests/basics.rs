//! The mount and the session's API see each other's changes at once; the host directory is
//! untouched until a commit.

mod common;

use std::fs;

use common::Mounted;

#[test]
fn files_written_through_the_mount_live_in_the_session_only() {
    let m = Mounted::with_host(|host| fs::write(host.join("existing.txt"), "from the host\n").unwrap());
    assert_eq!(fs::read_to_string(m.path("existing.txt")).unwrap(), "from the host\n");
    m.sh("echo hello > new.txt && mkdir -p a/b && echo deep > a/b/c.txt && echo more >> existing.txt");
    assert_eq!(m.api(m.session.read_file("/new.txt")), "hello\n");
    assert_eq!(m.api(m.session.read_file("/a/b/c.txt")), "deep\n");
    assert_eq!(m.api(m.session.read_file("/existing.txt")), "from the host\nmore\n");
    assert_eq!(fs::read_to_string(m.host.path().join("existing.txt")).unwrap(), "from the host\n");
    assert!(!m.host.path().join("new.txt").exists(), "nothing reaches the host before a commit");
    m.api(m.session.commit(mirage_core::CommitOptions::default()));
    assert_eq!(fs::read_to_string(m.host.path().join("a/b/c.txt")).unwrap(), "deep\n");
    assert_eq!(fs::read_to_string(m.path("existing.txt")).unwrap(), "from the host\nmore\n");
}

#[test]
fn changes_through_the_api_are_visible_through_the_mount_at_once() {
    let m = Mounted::new();
    m.sh("echo one > f && mkdir d && ls d >/dev/null && cat f >/dev/null");
    m.api(m.session.write_file("/f", "two, longer\n"));
    assert_eq!(fs::read_to_string(m.path("f")).unwrap(), "two, longer\n", "cached pages and size dropped");
    m.api(m.session.write_file("/d/new", "x"));
    assert_eq!(m.sh("ls d"), "new\n");
    assert!(!m.path("later").exists());
    m.api(m.session.write_file("/later", "now here"));
    assert_eq!(fs::read_to_string(m.path("later")).unwrap(), "now here", "a negative entry is dropped too");
    m.api(m.session.remove("/f"));
    assert!(!m.path("f").exists());
    let fork = m.session.fork().unwrap();
    m.api(fork.write_file("/from-fork", "forked"));
    assert!(!m.path("from-fork").exists());
    m.api(fork.commit(mirage_core::CommitOptions::default()));
    assert_eq!(fs::read_to_string(m.path("from-fork")).unwrap(), "forked", "a commit into the session shows");
}
