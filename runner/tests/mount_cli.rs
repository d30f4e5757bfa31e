//! `mirage-run mount` and `unmount` as a user runs them: a real mount, signals, a stale mount
//! left by a killed process, a busy mount, and command-line mistakes.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mirage-run");

fn mounted(point: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let point = point.canonicalize().unwrap_or_else(|_| point.to_owned());
    info.lines().any(|l| l.split(' ').nth(4) == Some(point.to_str().unwrap()))
}

/// True when a server answers at `point` (statfs is never answered from a cache).
fn alive(point: &Path) -> bool {
    let path = std::ffi::CString::new(point.to_str().unwrap()).unwrap();
    // SAFETY: valid path and out-structure.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(path.as_ptr(), &mut st) == 0
    }
}

/// Starts `mirage-run mount` and waits until the mount is up.
fn start(args: &[&str], point: &Path) -> Child {
    let child = Command::new(BIN).arg("mount").args(args).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(mounted(point) && alive(point)) {
        assert!(Instant::now() < deadline, "the mount did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stderr_of(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
fn ctrl_c_unmounts_reports_and_commits_on_request() {
    let (src, mnt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(src.path().join("kept.txt"), "host\n").unwrap();
    let child = start(
        &[mnt.path().to_str().unwrap(), "--source", src.path().to_str().unwrap(), "--on-exit", "commit"],
        mnt.path(),
    );
    fs::write(mnt.path().join("new.txt"), "from the mount\n").unwrap();
    fs::remove_file(mnt.path().join("kept.txt")).unwrap();
    assert!(src.path().join("kept.txt").exists(), "nothing reaches the source before the end");
    signal(&child, libc::SIGINT);
    let (ok, stderr) = stderr_of(child);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("1 added, 0 modified, 1 deleted"), "{stderr}");
    assert!(!mounted(mnt.path()));
    assert_eq!(fs::read_to_string(src.path().join("new.txt")).unwrap(), "from the mount\n");
    assert!(!src.path().join("kept.txt").exists());
}

#[test]
fn without_a_commit_the_source_is_untouched() {
    let (src, mnt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let child =
        start(&[mnt.path().to_str().unwrap(), "--source", src.path().to_str().unwrap(), "--busy-poll"], mnt.path());
    fs::write(mnt.path().join("scratch"), "x").unwrap();
    let out = Command::new(BIN).arg("unmount").arg(mnt.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, stderr) = stderr_of(child);
    assert!(ok && stderr.contains("discarded"), "{stderr}");
    // Busy polling is in effect where this process may open the latency device (root).
    let can_poll = fs::OpenOptions::new().write(true).open("/dev/cpu_dma_latency").is_ok();
    assert_eq!(stderr.contains("--busy-poll is not in effect"), !can_poll, "{stderr}");
    assert_eq!(fs::read_dir(src.path()).unwrap().count(), 0);
}

#[test]
fn a_stale_mount_left_by_a_killed_process_is_replaced() {
    let (src, mnt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = [mnt.path().to_str().unwrap(), "--source", src.path().to_str().unwrap()];
    let mut first = start(&args, mnt.path());
    signal(&first, libc::SIGKILL);
    first.wait().unwrap();
    let err = fs::write(mnt.path().join("lost"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "the killed server leaves a dead mount");
    let second = start(&args, mnt.path());
    fs::write(mnt.path().join("works"), "yes").unwrap();
    signal(&second, libc::SIGTERM);
    let (ok, stderr) = stderr_of(second);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("stale mount"), "the user is told: {stderr}");
}

#[test]
fn a_busy_mount_is_refused_and_lazy_detaches_it() {
    let (src, mnt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(src.path().join("f"), "open me").unwrap();
    let child = start(&[mnt.path().to_str().unwrap(), "--source", src.path().to_str().unwrap()], mnt.path());
    let open = fs::File::open(mnt.path().join("f")).unwrap();
    let out = Command::new(BIN).arg("unmount").arg(mnt.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lazy"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(BIN).args(["unmount", "--lazy"]).arg(mnt.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(open);
    let (ok, stderr) = stderr_of(child);
    assert!(ok, "{stderr}");
}

#[test]
fn mistakes_are_explained() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("inner")).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let inner = src.path().join("inner");
    let (code, err) = run(&["mount", inner.to_str().unwrap(), "--source", src.path().to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("lies inside the source"), "{err}");
    let (code, err) = run(&["mount", "/nonexistent/mirage-test"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/mirage-test"), "{err}");
    let (code, err) = run(&["mount", "x", "--on-exit", "later"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("keep, commit or discard") && err.contains("usage:"), "{err}");
    let (code, err) = run(&["mount", "x", "--store", "/tmp"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("goes with --session"), "{err}");
    let (code, err) = run(&["mount", "x", "--on-exit", "keep"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("needs --session"), "{err}");
    assert_eq!(run(&["frobnicate"]).0, Some(2));
}

#[test]
fn an_unprivileged_user_mounts_through_fusermount3_or_is_told_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (src, mnt, nodes) = (dir.path().join("src"), dir.path().join("mnt"), tempfile::tempdir().unwrap());
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    fs::write(src.join("f"), "hello\n").unwrap();
    Command::new("chown").args(["-R", "65534:65534"]).arg(dir.path()).status().unwrap();
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // In a mount namespace of the test's own, a private /dev/fuse node of the given mode; then,
    // as nobody, mount, read through the mount and unmount.
    let attempt = |mode: &str, flags: &str| {
        let node = nodes.path().join(format!("fuse-{mode}"));
        let script = format!(
            "mount --make-rprivate / && rm -f {node} && mknod {node} c 10 229 && chmod {mode} {node} && mount --bind {node} /dev/fuse && \
             exec setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '\
               {BIN} mount {mnt} --source {src} {flags} & \
               for i in $(seq 100); do test -e {mnt}/f && break; sleep 0.05; done; \
               cat {mnt}/f; {BIN} unmount {mnt}; wait'",
            node = node.display(),
            mnt = mnt.display(),
            src = src.display()
        );
        Command::new("unshare").args(["-m", "sh", "-c", &script]).output().unwrap()
    };
    let locked = attempt("600", "");
    let stderr = String::from_utf8_lossy(&locked.stderr);
    assert!(stderr.contains("chmod 0666 /dev/fuse"), "the fix is named: {stderr}");
    let open = attempt("666", "--busy-poll");
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert_eq!(String::from_utf8_lossy(&open.stdout), "hello\n", "{stderr}");
    assert!(stderr.contains("--busy-poll is not in effect"), "served without busy polling, and told: {stderr}");
    let default = attempt("666", "");
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert_eq!(String::from_utf8_lossy(&default.stdout), "hello\n", "{stderr}");
    assert!(!stderr.contains("busy-poll"), "the default goes without busy polling, unsaid: {stderr}");
}

#[test]
fn a_session_of_the_store_is_mounted_with_its_workspace_at_its_own_path() {
    let (ws, store, mnt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ws_path = ws.path().canonicalize().unwrap();
    fs::write(ws_path.join("README"), "project\n").unwrap();
    // A run keeps its change in session 'work'.
    let out = Command::new(BIN)
        .args(["--session", "work", "--", "sh", "-c", "echo added > new.txt"])
        .current_dir(&ws_path)
        .env("MIRAGE_STORE", store.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let child = Command::new(BIN)
        .args(["mount", mnt.path().to_str().unwrap(), "--session", "work", "--store", store.path().to_str().unwrap()])
        .current_dir(&ws_path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(mounted(mnt.path()) && alive(mnt.path())) {
        assert!(Instant::now() < deadline, "the mount did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let inside = mnt.path().join(ws_path.strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside.join("new.txt")).unwrap(), "added\n", "the session's change");
    assert_eq!(fs::read_to_string(inside.join("README")).unwrap(), "project\n");
    signal(&child, libc::SIGTERM);
    let (ok, stderr) = stderr_of(child);
    assert!(ok && stderr.contains("kept in session 'work'"), "{stderr}");
    assert!(!ws_path.join("new.txt").exists());
}
