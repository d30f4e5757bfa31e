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

#[test]
fn the_kernel_checks_permissions_as_for_any_filesystem() {
    use std::os::unix::fs::PermissionsExt;
    let options = mirage_fuse::Options { allow_other: true, ..mirage_fuse::Options::default() };
    let m =
        Mounted::with_options(|host| fs::set_permissions(host, fs::Permissions::from_mode(0o755)).unwrap(), &options);
    m.sh("echo secret > private && chmod 600 private && echo open > public && chmod 644 public && mkdir shut && chmod 700 shut");
    // As an unprivileged user: what the mode bits allow, and nothing else.
    let as_nobody = |cmd: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", cmd])
            .current_dir(m.mnt.path())
            .output()
            .unwrap()
    };
    let read = as_nobody("cat public");
    assert_eq!(String::from_utf8_lossy(&read.stdout), "open\n", "{}", String::from_utf8_lossy(&read.stderr));
    for denied in ["cat private", "echo x >> public", "touch new", "ls shut", "chmod 777 public", "rm public"] {
        let out = as_nobody(denied);
        assert!(!out.status.success(), "{denied} must fail");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ermission denied")
                || String::from_utf8_lossy(&out.stderr).contains("not permitted"),
            "{denied}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(m.api(m.session.read_file("/public")), "open\n", "nothing changed");
}

#[test]
fn a_descriptor_mounted_elsewhere_is_served() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("hello"), "from the host\n").unwrap();
    let mirage = mirage_core::Mirage::new();
    let resource = std::sync::Arc::new(mirage_core::LocalResource::new(host.path()).unwrap());
    mirage.mount("/", resource, mirage_core::MountOptions::default()).unwrap();
    let session = mirage.create_session("fd").unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let target = std::ffi::CString::new(mnt.path().to_str().unwrap()).unwrap();
    // What a sandbox does in its own namespace: open /dev/fuse, mount it, hand the descriptor over.
    // SAFETY: plain syscalls on valid strings; the descriptor is owned below.
    let fd = unsafe {
        let fd = libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        assert!(fd >= 0, "open /dev/fuse: {}", std::io::Error::last_os_error());
        let data =
            std::ffi::CString::new(format!("fd={fd},rootmode=40000,user_id=0,group_id=0,default_permissions")).unwrap();
        let ret = libc::mount(
            c"mirage".as_ptr(),
            target.as_ptr(),
            c"fuse.mirage".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        );
        assert_eq!(ret, 0, "mount: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    };
    let served = mirage_fuse::serve_fd(&session, fd, &mirage_fuse::Options::default()).unwrap();
    assert_eq!(fs::read_to_string(mnt.path().join("hello")).unwrap(), "from the host\n");
    fs::write(mnt.path().join("new"), "through the descriptor").unwrap();
    assert_eq!(common::futures_lite(session.read_file("/new")).unwrap(), "through the descriptor");
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::umount2(target.as_ptr(), 0) }, 0);
    served.wait().unwrap();
}

#[test]
fn passthrough_reads_host_files_and_never_hides_the_sessions_changes() {
    let options = mirage_fuse::Options { passthrough: true, ..mirage_fuse::Options::default() };
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    let m = Mounted::with_options(|host| fs::write(host.join("big"), &big).unwrap(), &options);
    assert_eq!(fs::read(m.path("big")).unwrap(), big, "read through to the host file");
    fs::write(m.path("big"), "replaced").unwrap();
    assert_eq!(fs::read_to_string(m.path("big")).unwrap(), "replaced", "the session's content once changed");
    assert_eq!(fs::read(m.host.path().join("big")).unwrap().len(), big.len(), "the host is untouched");
    m.sh("echo new > new.txt && cat new.txt >/dev/null && git init -q repo");
    assert_eq!(m.api(m.session.read_file("/new.txt")), "new\n");
}
