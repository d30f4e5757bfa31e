//! `mirage-run -- COMMAND`: the command's view of the world, its exit code, what happens to
//! its changes, and a hostile command's attempts to get out, each of which must fail while
//! the host stays unchanged.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mirage-run");

/// A workspace and a home directory holding a secret, on the host.
struct Host {
    workspace: tempfile::TempDir,
    home: tempfile::TempDir,
    /// Where the runs keep their sessions (outside the checksummed directories).
    store: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let (workspace, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::write(workspace.path().join("README"), "project\n").unwrap();
        fs::write(home.path().join("secret"), "the host's secret\n").unwrap();
        fs::create_dir(home.path().join(".codex")).unwrap();
        fs::write(home.path().join(".codex/auth.json"), "{\"token\":\"t\"}\n").unwrap();
        fs::write(home.path().join(".gitconfig"), "[user]\n\tname = host\n").unwrap();
        fs::create_dir_all(home.path().join(".cargo/bin")).unwrap();
        fs::write(home.path().join(".cargo/bin/cargo"), "#!/bin/sh\n").unwrap();
        fs::write(home.path().join(".cargo/.package-cache"), "").unwrap();
        fs::create_dir_all(home.path().join(".rustup")).unwrap();
        fs::create_dir_all(home.path().join(".cache/tool")).unwrap();
        fs::write(home.path().join(".cache/tool/entry"), "cached\n").unwrap();
        std::os::unix::fs::symlink(home.path().join("secret"), workspace.path().join("planted-link")).unwrap();
        Host { workspace, home, store: tempfile::tempdir().unwrap() }
    }

    /// `mirage-run`, to start in the workspace with this home and store.
    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.current_dir(self.workspace.path()).env("HOME", self.home.path()).env("MIRAGE_STORE", self.store.path());
        command
    }

    /// Runs `mirage-run [options] -- sh -c SCRIPT` in the workspace.
    fn run(&self, options: &[&str], script: &str) -> Output {
        self.command().args(options).args(["--", "sh", "-c", script]).output().unwrap()
    }

    /// Every file under the workspace and the home directory, with its content.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for root in [self.workspace.path(), self.home.path()] {
            walk(root, &mut out);
        }
        out
    }
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() {
            out.insert(path.clone(), fs::read(&path).unwrap());
        } else {
            out.insert(path.clone(), fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes());
        }
    }
}

/// The Landlock ABI this kernel offers (0: none); scoping signals and abstract sockets needs 6.
fn landlock_abi() -> i64 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with no attributes only asks for the version.
    unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0, 1u32) }.max(0)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_command_sees_its_workspace_and_its_exit_code_is_returned() {
    let host = Host::new();
    let out = host.run(&[], "cat README && pwd && echo $$ && echo new > created.txt && ls ~/.codex && exit 7");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "project");
    assert_eq!(Path::new(lines[1]), host.workspace.path().canonicalize().unwrap(), "the workspace at its own path");
    assert_eq!(lines[2], "2", "the command is the child of the sandbox's PID 1");
    assert_eq!(lines[3], "auth.json", "the agent's configuration is there");
    assert!(text(&out.stderr).contains("1 added"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("kept in session 'run-1'"), "{}", text(&out.stderr));
    assert!(!host.workspace.path().join("created.txt").exists(), "kept in the session, not written");
    let discard = host.run(&["--on-exit", "discard"], "echo gone > gone.txt");
    assert!(discard.status.success() && text(&discard.stderr).contains("discarded"), "{}", text(&discard.stderr));
    assert!(!host.workspace.path().join("gone.txt").exists());
}

#[test]
fn on_exit_commit_writes_the_changes_to_the_workspace() {
    let host = Host::new();
    // With busy polling, which changes only how fast requests are answered (root only).
    let out = host.run(
        &["--on-exit", "commit", "--busy-poll"],
        "echo changed > README && mkdir -p src && echo 'fn main(){}' > src/main.rs",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(host.workspace.path().join("README")).unwrap(), "changed\n");
    assert!(host.workspace.path().join("src/main.rs").exists());
    assert!(text(&out.stderr).contains("committed"), "{}", text(&out.stderr));
    // Busy polling is in effect where this process may open the latency device (root).
    let can_poll = fs::OpenOptions::new().write(true).open("/dev/cpu_dma_latency").is_ok();
    assert_eq!(text(&out.stderr).contains("--busy-poll is not in effect"), !can_poll, "{}", text(&out.stderr));
}

#[test]
fn a_hostile_command_cannot_get_out() {
    let host = Host::new();
    // Types into a terminal that is its own (a new session's), which the kernel allows: the
    // sandbox refuses the call on every terminal (on the caller's, it would run commands in
    // the caller's shell once the sandbox ends).
    fs::write(
        host.workspace.path().join("type-into-terminal.py"),
        "import fcntl, os, sys, termios\n\
         if os.fork() == 0:\n\
         \x20   os.setsid()\n\
         \x20   leader, follower = os.openpty()\n\
         \x20   fcntl.ioctl(follower, termios.TIOCSCTTY, 0)\n\
         \x20   fcntl.ioctl(follower, termios.TIOCSTI, b'x')\n\
         \x20   os._exit(0)\n\
         sys.exit(os.waitstatus_to_exitcode(os.wait()[1]))\n",
    )
    .unwrap();
    let before = host.snapshot();
    let mut outsider = Command::new("sleep").arg("30").spawn().unwrap();
    let home = host.home.path().display().to_string();
    // Each attempt prints "escaped: ..." if it works; the script ends with a marker so that a
    // crash of the script itself is noticed.
    let script = format!(
        r#"
        try() {{ if sh -c "$1" >/dev/null 2>&1; then echo "escaped: $1"; fi; }}
        try 'touch /usr/mirage-escape'
        try 'touch /etc/mirage-escape'
        try 'touch /mirage-escape'
        try 'mkdir /opt/mirage-escape'
        try 'cat {home}/secret'
        try 'cat /root/.bashrc /root/.profile'
        try 'grep -q . /etc/shadow'
        try 'cat planted-link'
        try 'cat ../../../../../../..{home}/secret'
        try 'ls {home} | grep -q secret'
        try 'mount -t tmpfs none /tmp'
        try 'umount /usr'
        try 'umount -l /etc'
        try 'cd / && pivot_root . .'
        try 'kill -0 {pid}'
        try 'test -e /proc/{pid}'
        try 'python3 -c "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); sys.exit(libc.ptrace(16, {pid}, 0, 0))"'
        try 'grep -q "CapBnd:[[:space:]]*0*[1-9a-f]" /proc/self/status'
        try 'grep -q "CapEff:[[:space:]]*0*[1-9a-f]" /proc/self/status'
        try 'grep -q "NoNewPrivs:[[:space:]]*0" /proc/self/status'
        try 'cat ~/.codex/../secret'
        try 'python3 {tiocsti}'
        python3 {tiocsti} 2>&1 | grep -q PermissionError && echo "typing refused with EPERM"
        echo planted >> ~/.cargo/bin/cargo && grep -q planted ~/.cargo/bin/cargo && touch ~/.rustup/settings.toml \
            && rm -r ~/.cache/tool && mkdir ~/.cache/tool && mv ~/.cache/tool ~/.cache/tool2 \
            && echo "caches are copies of their own"
        try 'touch -d 2001-01-01 /dev/full'
        try 'chmod 0666 /dev/full'
        try 'grep -q host ~/.gitconfig && printf "[core]\\n\\tfsmonitor = /tmp/x\\n" >> ~/.gitconfig'
        echo done
        "#,
        pid = outsider.id(),
        tiocsti = host.workspace.path().join("type-into-terminal.py").display(),
    );
    let out = host.run(&[], &script);
    outsider.kill().unwrap();
    outsider.wait().unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.ends_with("done\n"), "the script ran to its end: {stdout}\n{}", text(&out.stderr));
    assert!(!stdout.contains("escaped"), "{stdout}");
    assert!(stdout.contains("caches are copies of their own"), "{stdout}");
    assert!(stdout.contains("typing refused with EPERM"), "by the sandbox, not the kernel: {stdout}");
    assert_eq!(host.snapshot(), before, "the host's files are unchanged");
    assert!(!Path::new("/usr/mirage-escape").exists() && !Path::new("/etc/mirage-escape").exists());
}

#[test]
#[cfg(target_arch = "x86_64")] // keyctl and add_key by number
fn what_the_caller_holds_stays_out_of_its_reach() {
    use std::os::linux::net::SocketAddrExt;
    if landlock_abi() < 6 {
        eprintln!("skipped: abstract sockets are scoped from Landlock ABI 6 (Linux 6.12)");
        return;
    }
    let host = Host::new();
    // An abstract unix socket listening on the host.
    let socket = format!("mirage-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(socket.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    let script = format!(
        r#"
        try() {{ if sh -c "$1" >/dev/null 2>&1; then echo "escaped: $1"; fi; }}
        try 'test -e /proc/self/fd/9'
        try 'python3 -c "import socket; socket.socket(socket.AF_UNIX).connect(\"\\0{socket}\")"'
        try 'python3 -c "import ctypes, sys; libc = ctypes.CDLL(None); sys.exit(libc.syscall(250, 10, ctypes.c_long(-3), b\"user\", b\"mirage-test-key\", 0) < 0)"'
        echo done
        "#
    );
    // The caller holds a key in its session keyring and a descriptor of its home directory.
    let caller = format!(
        "import ctypes, os\n\
         libc = ctypes.CDLL(None)\n\
         libc.syscall(250, 1, None)\n\
         assert libc.syscall(248, b'user', b'mirage-test-key', b'secret', 6, ctypes.c_long(-3)) > 0\n\
         os.dup2(os.open({home:?}, os.O_RDONLY), 9)\n\
         os.execv({BIN:?}, ['mirage-run', '--', 'sh', '-c', {script:?}])\n",
        home = host.home.path().display().to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &caller])
        .current_dir(host.workspace.path())
        .env("HOME", host.home.path())
        .env("MIRAGE_STORE", host.store.path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.ends_with("done\n"), "the script ran to its end: {stdout}\n{}", text(&out.stderr));
    assert!(!stdout.contains("escaped"), "{stdout}");
}

#[test]
fn signals_reach_only_the_sandbox() {
    use std::os::unix::process::CommandExt;
    if landlock_abi() < 6 {
        eprintln!("skipped: signals are scoped from Landlock ABI 6 (Linux 6.12)");
        return;
    }
    let host = Host::new();
    // A process of the caller's in the process group the sandbox starts in.
    let mut outsider = Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
    let out = host
        .command()
        .args(["--on-exit", "discard", "--", "sh", "-c", "kill -KILL 0; sleep 5"])
        .process_group(outsider.id() as i32)
        .output()
        .unwrap();
    let outsider_lived = outsider.try_wait().unwrap().is_none();
    outsider.kill().unwrap();
    outsider.wait().unwrap();
    assert!(outsider_lived, "the caller's process in the same group is untouched");
    assert_eq!(out.status.code(), Some(137), "the command was killed, and the runner lived to say so");
}

#[test]
fn nothing_of_the_sandbox_outlives_the_runner() {
    let host = Host::new();
    let alive = |marker: &str| {
        let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
        !out.stdout.is_empty()
    };
    let wait_until = |what: &dyn Fn() -> bool, seconds: u64| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < end {
            if what() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    };
    // A command `sleep N` whose N only the sandbox's shell computes: the runner's own
    // arguments do not match.
    let sleeper = |n: u32| (format!("sleep {n}"), format!("sleep $(({} + 1))", n - 1));
    // The runner killed: the command, which ignores SIGTERM and SIGHUP, goes with it.
    let (marker, command) = sleeper(30_000 + std::process::id() % 10_000);
    let mut runner = host
        .command()
        .args(["--on-exit", "discard", "--", "sh", "-c", &format!("trap '' TERM HUP; {command}")])
        .spawn()
        .unwrap();
    assert!(wait_until(&|| alive(&marker), 10), "the command started");
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert!(wait_until(&|| !alive(&marker), 5), "the command ended with the runner");
    // SIGTERM to the runner: relayed, and a command that ignores it is killed after the grace.
    let (marker, command) = sleeper(40_000 + std::process::id() % 10_000);
    let mut runner = host
        .command()
        .args(["--on-exit", "discard", "--", "sh", "-c", &format!("trap '' TERM; {command}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(&|| alive(&marker), 10), "the command started");
    Command::new("kill").args(["-TERM", &runner.id().to_string()]).status().unwrap();
    let status = runner.wait().unwrap();
    assert_eq!(status.code(), Some(137), "killed after the grace");
    assert!(wait_until(&|| !alive(&marker), 5), "the command is gone");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut runner.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("killed it") && (stderr.contains("discarded") || stderr.contains("no changes")),
        "{stderr}"
    );
}

#[test]
fn mounts_nested_in_system_directories_are_read_only_too() {
    let host = Host::new();
    let nested = tempfile::tempdir().unwrap();
    let file = nested.path().join("file");
    fs::write(&file, "kept\n").unwrap();
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let before = fs::metadata(&file).unwrap();
    // A host mount below /usr (as Docker puts files below /etc), in a mount namespace of the
    // test's own.
    let script = format!(
        "mount --make-rprivate / && mount --bind {nested} /usr/local && exec {BIN} -- sh -c \
         'chmod 4777 /usr/local/file; touch -d 2001-01-01 /usr/local/file; echo gone > /usr/local/file; echo done'",
        nested = nested.path().display()
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .current_dir(host.workspace.path())
        .env("HOME", host.home.path())
        .env("MIRAGE_STORE", host.store.path())
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stderr));
    let after = fs::metadata(&file).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(after.mode(), before.mode(), "the mode is unchanged");
    assert_eq!(after.mtime(), before.mtime(), "the times are unchanged");
    assert_eq!(fs::read_to_string(&file).unwrap(), "kept\n");
}

#[test]
fn no_network_means_none() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = Host::new();
    let connect = format!("python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\"");
    let open = host.run(&["--net", "host"], &connect);
    assert!(open.status.success(), "the host's network by default: {}", text(&open.stderr));
    let closed = host.run(&["--net", "none"], &connect);
    assert!(!closed.status.success(), "no network under --net none");
    let allowed = host.run(&["--net", &format!("tcp:{port}")], &connect);
    assert!(allowed.status.success(), "the listed port: {}", text(&allowed.stderr));
    let other = host.run(&["--net", "tcp:1"], &connect);
    assert!(!other.status.success(), "another port is refused");
    assert!(text(&other.stderr).contains("Permission denied"), "{}", text(&other.stderr));
    let listen =
        host.run(&["--net", "tcp:443"], "python3 -c \"import socket; socket.socket().bind(('127.0.0.1', 0))\"");
    assert!(!listen.status.success(), "no listening under tcp rules");
    assert!(
        text(&closed.stderr).contains("Network is unreachable") || text(&closed.stderr).contains("refused"),
        "{}",
        text(&closed.stderr)
    );
}

#[test]
fn a_missing_command_and_bad_options_are_explained() {
    let host = Host::new();
    let out = host.run(&[], "exec no-such-program-anywhere");
    assert_eq!(out.status.code(), Some(127));
    let out = Command::new(BIN)
        .args(["--", "no-such-program-anywhere"])
        .current_dir(host.workspace.path())
        .env("MIRAGE_STORE", host.store.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("command not found"), "{}", text(&out.stderr));
    let out = Command::new(BIN).args(["--net", "sometimes", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--net takes host, none or tcp:"), "{}", text(&out.stderr));
}

#[test]
fn an_unprivileged_user_is_told_what_is_missing_or_runs() {
    // A workspace nobody may use, then the same user with and without a usable /dev/fuse.
    let host = Host::new();
    for dir in [host.workspace.path(), host.home.path()] {
        Command::new("chown").args(["-R", "65534:65534"]).arg(dir).status().unwrap();
        fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let nobody = |prelude: &str| {
        let script = format!(
            "{prelude} exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME={home} {BIN} -- sh -c 'echo hi > f; cat f; id -u'",
            home = host.home.path().display()
        );
        Command::new("unshare").args(["-m", "sh", "-c", &script]).current_dir(host.workspace.path()).output().unwrap()
    };
    // A private /dev/fuse node of the given mode, bound over the real one in a mount
    // namespace of the test's own (the machine's node is not touched).
    let nodes = tempfile::tempdir().unwrap();
    let with_fuse_mode = |mode: &str| {
        let node = nodes.path().join(format!("fuse-{mode}"));
        format!(
            "mount --make-rprivate / && mknod {node} c 10 229 && chmod {mode} {node} && mount --bind {node} /dev/fuse &&",
            node = node.display()
        )
    };
    // Mode 0600 (as on some machines): a clear message that names the fix.
    let locked = nobody(&with_fuse_mode("600"));
    assert!(!locked.status.success());
    assert!(text(&locked.stderr).contains("/dev/fuse"), "{}", text(&locked.stderr));
    assert!(text(&locked.stderr).contains("0666"), "the fix is named: {}", text(&locked.stderr));
    // Mode 0666, the usual distribution default: it works.
    let open = nobody(&with_fuse_mode("666"));
    assert!(open.status.success(), "{}", text(&open.stderr));
    assert_eq!(text(&open.stdout), "hi\n0\n", "root inside, the user outside");
}

/// Runs `mirage-run -- COMMAND` under `script`, on a terminal, typing `keys` into it after
/// `delay_ms`.
fn on_a_terminal(host: &Host, command: &str, keys: &str, delay_ms: u64) -> Output {
    let typed = format!("sleep {}; printf '{keys}'; sleep 1", delay_ms as f64 / 1000.0);
    let command = if command.starts_with("--") { command.to_owned() } else { format!("-- {command}") };
    let script = format!("({typed}) | script -qec \"{BIN} {command}\" /dev/null");
    Command::new("sh")
        .args(["-c", &script])
        .current_dir(host.workspace.path())
        .env("HOME", host.home.path())
        .output()
        .unwrap()
}

#[test]
fn interactive_programs_get_the_terminal_and_ctrl_c_works() {
    let host = Host::new();
    let out = on_a_terminal(&host, "sh -c 'tty; read line; echo got:\\$line'", "hello\\r", 800);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("/dev/console"), "the terminal is named: {stdout}");
    assert!(stdout.contains("got:hello"), "typed input arrives: {stdout}");
    // Typing into the caller's terminal is refused: the caller's shell would run it.
    let out = on_a_terminal(
        &host,
        "python3 -c 'import fcntl, termios; fcntl.ioctl(open(\\\"/dev/tty\\\"), termios.TIOCSTI, b\\\"x\\\")'",
        "",
        0,
    );
    assert!(text(&out.stdout).contains("PermissionError"), "{}", text(&out.stdout));
    // Nor can it chmod the caller's terminal (others could read what is typed).
    let out = on_a_terminal(&host, "sh -c 'chmod 0606 /dev/console; stat -c %a \\$(readlink /proc/self/fd/0)'", "", 0);
    assert!(text(&out.stdout).contains("Read-only"), "{}", text(&out.stdout));
    // A command that takes the terminal's front (with TOSTOP) does not stop the report or
    // --on-exit: the terminal is put back first.
    let grab = "import os, signal, termios; signal.signal(signal.SIGTTOU, signal.SIG_IGN); \
                fd = os.open('/dev/tty', os.O_RDWR); os.setpgid(0, 0); os.tcsetpgrp(fd, os.getpgrp()); \
                a = termios.tcgetattr(fd); a[3] |= termios.TOSTOP; termios.tcsetattr(fd, termios.TCSANOW, a); \
                open('grabbed.txt', 'w').write('x')";
    let out = on_a_terminal(&host, &format!("--on-exit commit -- python3 -c \\\"{grab}\\\""), "", 0);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(host.workspace.path().join("grabbed.txt").exists(), "committed: {}", text(&out.stdout));
    let out = on_a_terminal(&host, "sleep 30", "\\003", 800);
    assert_eq!(out.status.code(), Some(130), "Ctrl-C ends the command: {}", text(&out.stdout));
    // A full-screen editor: insert a line, write, quit; the change is committed.
    let out = on_a_terminal(&host, "--on-exit commit -- vim -u NONE edited.txt", "ihello from vim\\033:wq\\r", 1500);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(fs::read_to_string(host.workspace.path().join("edited.txt")).unwrap(), "hello from vim\n");
}

#[test]
fn a_session_that_changes_mirage_toml_is_not_committed() {
    let host = Host::new();
    let before = host.snapshot();
    // An agent widening its next sandbox: the host's root as a mount.
    let widen = "mkdir -p sub && printf '[[mount]]\\npath = \"/hostroot\"\\nsource = \"local:/\"\\n' | tee mirage.toml > sub/mirage.toml";
    let out = host.run(&["--on-exit", "commit"], widen);
    assert!(!out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not committing") && stderr.contains("/sub/mirage.toml"), "{stderr}");
    assert_eq!(host.snapshot(), before, "nothing reached the workspace");
    // The session kept its changes, and committing it by name is refused the same way.
    let commit = host.command().args(["commit", "run-1"]).output().unwrap();
    assert!(!commit.status.success());
    assert!(text(&commit.stderr).contains("not committing 'run-1'"), "{}", text(&commit.stderr));
    assert_eq!(host.snapshot(), before);
    let diff = host.command().args(["diff", "run-1"]).output().unwrap();
    assert!(text(&diff.stdout).contains("mirage.toml"), "{}", text(&diff.stdout));
}

#[test]
fn a_command_writing_without_end_meets_a_full_disk_not_the_oom_killer() {
    let host = Host::new();
    // 8 MiB of content in the session: writes past it fail as on a full disk, a removed file
    // that is still open counts too, and removing files gives the room back. The sandbox's
    // own memory filesystems are bounded too: /tmp and the copies of home entries by an eighth
    // of it (16 MiB at least), /dev to almost nothing.
    let script = r#"
        df -k . | tail -1
        dd if=/dev/zero of=big bs=1M count=32 2>&1 | grep -o 'No space left on device'
        rm big
        exec 3<>orphan; rm orphan
        dd if=/dev/zero bs=1M count=32 >&3 2>/dev/null || echo removed but open: refused
        exec 3>&-
        dd if=/dev/zero of=after bs=1M count=4 2>/dev/null && echo room again
        dd if=/dev/zero of=/tmp/big bs=1M count=32 2>&1 | grep -o 'No space left on device' | sed 's/^/tmp: /'
        dd if=/dev/zero of=/dev/big bs=1M count=32 2>&1 | grep -o 'No space left on device' | sed 's/^/dev: /'
        dd if=/dev/zero of=/dev/shm/fits bs=1M count=4 2>/dev/null && echo shm: 4 MiB fit && rm /dev/shm/fits
        dd if=/dev/zero of=/dev/shm/big bs=1M count=32 2>&1 | grep -o 'No space left on device' | sed 's/^/shm: /'
        dd if=/dev/zero of=$HOME/.cache/big bs=1M count=32 2>&1 | grep -o 'No space left on device' | sed 's/^/cache: /'
        cat > fill.py <<'EOF'
import os, sys
os.mkdir(sys.argv[1])
n = 0
try:
    while n < 100000:
        open(f"{sys.argv[1]}/{n}", "w").close()
        n += 1
except OSError as e:
    print(sys.argv[2], e.strerror, n)
EOF
        python3 fill.py many "empty files:"
        python3 fill.py /tmp/many "empty files in /tmp:"
    "#;
    let out = host.run(&["--max-memory", "8M"], script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let df: Vec<&str> = stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(df.get(1), Some(&"8192"), "df shows the limit as the size: {stdout}");
    for line in [
        "No space left on device",
        "removed but open: refused",
        "room again",
        "tmp: No space",
        "dev: No space",
        "cache: No space",
        "shm: 4 MiB fit",
        "shm: No space",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}\n{stderr}");
    }
    let empty: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("empty files: No space left on device "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("creating empty files meets the limit too: {stdout}"));
    assert!((1000..8192).contains(&empty), "each entry counts about 1 KiB: {empty}");
    let in_tmp: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("empty files in /tmp: No space left on device "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("/tmp has a limit on files too: {stdout}"));
    assert!(in_tmp <= 4096, "one file per 4 KiB of 16 MiB, the least a tmpfs gets: {in_tmp}");
    assert!(stderr.contains("failed with ENOSPC") && stderr.contains("--max-memory"), "{stderr}");
    assert!(stderr.contains("kept in session"), "the run ends as usual: {stderr}");
    // The next run over the same store starts nearly full, and says so.
    let next = host.run(&["--max-memory", "8M", "--session", "run-1"], "true");
    assert!(text(&next.stderr).contains("already hold"), "{}", text(&next.stderr));
    let bad = host.run(&["--max-memory", "lots"], "true");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--max-memory takes a size"), "{}", text(&bad.stderr));
}

#[test]
fn logins_are_the_hosts_and_settings_are_copies() {
    let host = Host::new();
    let claude = host.home.path().join(".claude");
    fs::create_dir_all(&claude).unwrap();
    fs::write(claude.join("settings.json"), "{}\n").unwrap();
    fs::write(claude.join(".credentials.json"), "old token\n").unwrap();
    fs::write(host.home.path().join(".claude.json"), "{}\n").unwrap();
    let out = host.run(
        &[],
        r#"echo '{"hooks":{"SessionStart":[]}}' > ~/.claude/settings.json && echo '{"mcpServers":{}}' > ~/.claude.json \
           && echo "new token" > ~/.claude/.credentials.json && echo "fresh" > ~/.codex/auth.json && cat ~/.claude/settings.json"#,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hooks"), "the command sees its own settings");
    assert_eq!(fs::read_to_string(claude.join("settings.json")).unwrap(), "{}\n", "the host's settings are untouched");
    assert_eq!(fs::read_to_string(host.home.path().join(".claude.json")).unwrap(), "{}\n");
    assert_eq!(fs::read_to_string(claude.join(".credentials.json")).unwrap(), "new token\n", "a refreshed login stays");
    assert_eq!(fs::read_to_string(host.home.path().join(".codex/auth.json")).unwrap(), "fresh\n");
}

#[test]
fn a_workspace_inside_a_cache_is_not_hidden() {
    let host = Host::new();
    let project = host.home.path().join(".cache/project");
    fs::create_dir_all(&project).unwrap();
    let out = host
        .command()
        .args(["--on-exit", "commit", "--", "sh", "-c", "echo made > made.txt"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(project.join("made.txt")).unwrap(), "made\n");
}

#[test]
fn a_home_entry_listed_inside_a_cache_is_the_hosts() {
    let host = Host::new();
    fs::write(host.workspace.path().join("mirage.toml"), "home = [\".cache/tool\"]\n").unwrap();
    let out = host.run(&[], "echo fresh > ~/.cache/tool/entry && cat ~/.cache/tool/entry");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(host.home.path().join(".cache/tool/entry")).unwrap(), "fresh\n", "bound read-write");
}

#[test]
fn mirage_toml_and_mount_flags_add_mounts_and_set_defaults() {
    let host = Host::new();
    let data = tempfile::tempdir().unwrap();
    fs::write(data.path().join("shared.txt"), "shared\n").unwrap();
    fs::write(
        host.workspace.path().join("mirage.toml"),
        "net = \"none\"\non_exit = \"commit\"\nbusy_poll = true\n[[mount]]\npath = \"/scratch\"\nsource = \"memory:\"\n",
    )
    .unwrap();
    let ro = format!("/data=local:{}", data.path().display());
    let out = host.run(
        &["--mount-ro", &ro],
        "cat /data/shared.txt && ! touch /data/new 2>/dev/null && echo s > /scratch/s && cat /scratch/s \
         && ! python3 -c \"import socket; socket.create_connection(('10.0.0.1', 9), timeout=2)\" 2>/dev/null \
         && echo done > result.txt",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "shared\ns\n");
    assert_eq!(
        fs::read_to_string(host.workspace.path().join("result.txt")).unwrap(),
        "done\n",
        "on_exit from the file"
    );
    assert!(!data.path().join("new").exists());
    // Busy polling is in effect where this process may open the latency device (root).
    let can_poll = fs::OpenOptions::new().write(true).open("/dev/cpu_dma_latency").is_ok();
    assert_eq!(text(&out.stderr).contains("--busy-poll is not in effect"), !can_poll, "busy_poll from the file");
    let off = host.run(&["--no-busy-poll"], "true");
    assert!(off.status.success(), "{}", text(&off.stderr));
    assert!(!text(&off.stderr).contains("--busy-poll"), "turned off for this run: {}", text(&off.stderr));
    fs::write(host.workspace.path().join("mirage.toml"), "nett = \"none\"\n").unwrap();
    let bad = host.run(&[], "true");
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("mirage.toml") && text(&bad.stderr).contains("nett"), "{}", text(&bad.stderr));
}

#[test]
fn the_sandbox_init_reaps_orphans_and_relays_sigterm() {
    let host = Host::new();
    // An orphan ends while the command still runs: PID 1 must reap it (no zombie left).
    let out = host.run(&[], "sh -c 'sleep 0.2 &'; sleep 0.8; grep -l 'State:.*Z' /proc/[0-9]*/status | wc -l");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "0", "no zombie in the sandbox");
    // SIGTERM to mirage-run reaches the command, whose exit code comes back.
    let mut child = host
        .command()
        .args(["--on-exit", "discard", "--", "sh", "-c", "trap 'exit 42' TERM; echo ready; sleep 10 & wait"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
    assert_eq!(ready, "ready\n", "the command runs, its trap set");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(42));
}

#[test]
fn without_user_namespaces_the_message_says_what_is_missing() {
    let host = Host::new();
    // A user namespace of the test's own in which no further one may be created.
    let script = format!("echo 0 > /proc/sys/user/max_user_namespaces && exec {BIN} --on-exit discard -- true");
    let out = Command::new("unshare")
        .args(["-Ur", "sh", "-c", &script])
        .current_dir(host.workspace.path())
        .env("HOME", host.home.path())
        .env("MIRAGE_STORE", host.store.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("max_user_namespaces is 0") && stderr.contains("sysctl"), "{stderr}");
}
