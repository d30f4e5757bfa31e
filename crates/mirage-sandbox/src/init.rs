//! The helper (outside the new PID namespace) and the sandbox's PID 1.
//!
//! Failures are reported to the supervisor as text over the socket (see
//! [`crate::fdpass::FAILED`]), each naming the step that failed and what to do about it.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access as _, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    path_beneath_rules,
};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::{Access, Net, SPEC_VAR, Spec, fdpass};

/// Where the private tmpfs holding the future root is mounted (in the new mount namespace).
/// It hides what lies below, so it must be a directory every system has and no bound path
/// lives under: `/tmp` or `/home` would hide workspaces and home directories.
const STAGING: &str = "/sys";
/// Where the FUSE root is mounted before it becomes `/`.
const ROOT: &str = "/sys/mirage-root";

/// Reports `message` to the supervisor and exits.
fn fail(socket: RawFd, message: &str) -> ! {
    // SAFETY: writing to a descriptor this process owns; nothing else uses it any more.
    let mut stream = unsafe { UnixStream::from_raw_fd(socket) };
    let _ = std::io::Write::write_all(&mut stream, format!("{}{message}", fdpass::FAILED).as_bytes());
    std::process::exit(125);
}

/// The helper: enters the namespaces, forks PID 1, relays signals to it and its exit code.
pub(crate) fn helper() -> ! {
    let socket: RawFd = match std::env::args().nth(2).and_then(|s| s.parse().ok()) {
        Some(fd) => fd,
        None => {
            eprintln!("mirage-sandbox: the helper is started by the supervisor, not by hand");
            std::process::exit(125);
        }
    };
    let spec: Spec = match std::env::var(SPEC_VAR).ok().and_then(|j| serde_json::from_str(&j).ok()) {
        Some(spec) => spec,
        None => fail(socket, "the helper got no sandbox description"),
    };
    // If the supervisor dies, so does the helper, and with it the sandbox (asked again here
    // in case a change of credentials cleared what the supervisor asked before the exec).
    die_with_parent();
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if spec.net == Net::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = unshare(flags) {
        fail(socket, &format!("cannot create the sandbox's namespaces ({e}). {}", userns_hint()));
    }
    let maps = [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("0 {uid} 1")),
        ("/proc/self/gid_map", format!("0 {gid} 1")),
    ];
    for (file, content) in maps {
        if let Err(e) = std::fs::write(file, content) {
            fail(socket, &format!("cannot write {file}: {e}"));
        }
    }
    // Signals to relay are taken synchronously; blocking them first loses none.
    let relayed = signal_set(&[Signal::SIGTERM, Signal::SIGHUP, Signal::SIGCHLD]);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&relayed), None);
    ignore_terminal_signals();
    // SAFETY: the helper is single-threaded (nothing has started a thread since exec).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => pid1(socket, &spec),
        Ok(ForkResult::Parent { child }) => relay(child, &relayed),
        Err(e) => fail(socket, &format!("cannot start the sandbox's first process: {e}")),
    }
}

/// Asks the kernel to kill this process when its parent ends: nothing of the sandbox
/// outlives the supervisor (whose end also ends the filesystem it serves).
fn die_with_parent() {
    // SAFETY: a prctl on this process's own attributes.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}

/// What to tell a user whose kernel refused a user namespace.
fn userns_hint() -> String {
    let restricted = std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .is_ok_and(|v| v.trim() == "1");
    let disabled = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone").is_ok_and(|v| v.trim() == "0");
    let limit = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").ok();
    if limit.as_deref().map(str::trim) == Some("0") {
        "User namespaces are turned off here (/proc/sys/user/max_user_namespaces is 0): raise it with \
         `sudo sysctl user.max_user_namespaces=10000`, or ask whoever runs this container"
            .to_owned()
    } else if restricted {
        "This system restricts unprivileged user namespaces with AppArmor: allow them with \
         `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` (or an AppArmor profile for mirage-run)"
            .to_owned()
    } else if disabled {
        "Unprivileged user namespaces are disabled: enable them with `sudo sysctl kernel.unprivileged_userns_clone=1`"
            .to_owned()
    } else {
        "The sandbox needs user namespaces (check /proc/sys/user/max_user_namespaces and any container limits)"
            .to_owned()
    }
}

fn signal_set(signals: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for s in signals {
        set.add(*s);
    }
    set
}

/// The terminal's Ctrl-C and Ctrl-\ reach the command directly (same process group); the
/// helper and PID 1 ignore them.
fn ignore_terminal_signals() {
    // SAFETY: installing SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

/// Forwards SIGTERM and SIGHUP to `child` and exits as it does.
fn relay(child: Pid, set: &SigSet) -> ! {
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap(child) {
                    std::process::exit(code);
                }
            }
            Ok(signal) => {
                let _ = kill(child, signal);
            }
            Err(_) => {}
        }
    }
}

/// Reaps every ended child; the exit code of `watched` once it has ended.
fn reap(watched: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == watched => code = Some(c),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == watched => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

/// The sandbox's PID 1: sets the sandbox up, runs the command, reaps, exits with its code.
fn pid1(socket: RawFd, spec: &Spec) -> ! {
    // If the helper dies, so does the sandbox (its PID 1 taking every process with it).
    die_with_parent();
    if let Err(message) = setup(socket, spec) {
        fail(socket, &message);
    }
    // SAFETY: closing our end: the supervisor's reads see the end of the stream.
    unsafe { libc::close(socket) };
    let relayed = signal_set(&[Signal::SIGTERM, Signal::SIGHUP, Signal::SIGCHLD]);
    // SAFETY: PID 1 is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => exec(spec),
        Ok(ForkResult::Parent { child }) => relay(child, &relayed),
        Err(e) => {
            eprintln!("mirage-run: cannot start the command: {e}");
            std::process::exit(125);
        }
    }
}

/// Replaces the process with the command (its signal mask and dispositions restored).
fn exec(spec: &Spec) -> ! {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: restoring default dispositions is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGQUIT, libc::SIG_DFL);
    }
    let name = spec.command.first().map_or("", String::as_str);
    if let Err(e) = std::env::set_current_dir(&spec.workdir) {
        eprintln!("mirage-run: cannot enter {}: {e}", spec.workdir.display());
        std::process::exit(126);
    }
    let path = spec.env.iter().find(|(k, _)| k == "PATH").map_or("/usr/bin:/bin", |(_, v)| v.as_str());
    let Some(program) = find_program(name, path) else {
        eprintln!("mirage-run: {name}: command not found");
        std::process::exit(127);
    };
    let cstr = |s: &[u8]| CString::new(s).unwrap_or_default();
    let argv: Vec<CString> = spec.command.iter().map(|a| cstr(a.as_bytes())).collect();
    let envp: Vec<CString> = spec.env.iter().map(|(k, v)| cstr(format!("{k}={v}").as_bytes())).collect();
    let program = cstr(program.as_os_str().as_bytes());
    close_inherited();
    let error = nix::unistd::execve(&program, &argv, &envp).unwrap_err();
    eprintln!("mirage-run: cannot run {name}: {error}");
    std::process::exit(if error == nix::errno::Errno::ENOENT { 127 } else { 126 });
}

/// Closes every descriptor but the standard three: one the caller left open (its current
/// directory's, say) would reach the host's files around the sandbox's root.
fn close_inherited() {
    // SAFETY: closing descriptors of this process, which uses none of them any more.
    if unsafe { libc::syscall(libc::SYS_close_range, 3, libc::c_uint::MAX, 0) } != 0 {
        let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        for fd in open.into_iter().filter(|&fd| fd > 2) {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// `name` itself if it has a slash, else the first executable of that name on `path`.
fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    path.split(':').map(|dir| Path::new(dir).join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn step<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

fn inside(path: &Path) -> PathBuf {
    Path::new(ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

/// Everything between the namespaces and the command: the root, the binds, `/dev`, `/proc`,
/// `/tmp`, the switch of root, Landlock, and the end of privileges.
fn setup(socket: RawFd, spec: &Spec) -> Result<(), String> {
    let none: Option<&str> = None;
    step("cannot make the mounts private", mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none))?;
    step("cannot set the host name", nix::unistd::sethostname(&spec.hostname))?;
    step(
        "cannot mount the staging tmpfs",
        mount_tmpfs(Path::new(STAGING), MsFlags::MS_NODEV, "mode=0755", spec.tmpfs_size),
    )?;
    step("cannot create the root's mount point", std::fs::create_dir(ROOT))?;
    let fuse = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").map_err(|e| {
        let mode = std::fs::metadata("/dev/fuse").map(|m| format!("{:o}", m.permissions().mode() & 0o777));
        match (e.raw_os_error(), mode) {
            (Some(libc::EACCES | libc::EPERM), Ok(mode)) => format!(
                "cannot open /dev/fuse: {e} (its mode is {mode}; a user other than root needs it readable and \
                 writable by everyone: `sudo chmod 0666 /dev/fuse`, the usual distribution default)"
            ),
            (Some(libc::ENOENT), _) => {
                "cannot open /dev/fuse: there is none (load the fuse module: `sudo modprobe fuse`)".to_owned()
            }
            _ => format!("cannot open /dev/fuse: {e}"),
        }
    })?;
    let options =
        format!("fd={},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", fuse.as_raw_fd());
    step(
        "cannot mount the session as the sandbox's root",
        mount(
            Some("mirage"),
            ROOT,
            Some("fuse.mirage"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        ),
    )?;
    step("cannot hand the root over to the supervisor", fdpass::send(socket, fuse.as_raw_fd()))?;
    drop(fuse);
    // SAFETY: a descriptor this process owns, borrowed for one read.
    let mut stream = unsafe { UnixStream::from_raw_fd(socket) };
    let mut go = [0u8; 2];
    let answered = stream.read_exact(&mut go).is_ok();
    let _ = stream.into_raw_fd();
    if !answered {
        // The supervisor is gone: nothing to run for.
        std::process::exit(125);
    }

    // /tmp first: binds below it (a home directory in /tmp) then land on the tmpfs.
    private_tmp(spec)?;
    for (i, bind) in spec.binds.iter().enumerate() {
        match bind.access {
            Access::Scratch => scratch_into(&bind.path, i)?,
            access => bind_into(&bind.path, access == Access::Writable)?,
        }
    }
    for secret in &spec.masked {
        mask(secret)?;
    }
    make_dev(spec.tmpfs_size)?;
    step(
        "cannot mount /proc",
        mount(
            Some("proc"),
            &inside(Path::new("/proc")),
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        ),
    )?;
    step("cannot enter the new root", std::env::set_current_dir(ROOT))?;
    step("cannot switch to the new root", nix::unistd::pivot_root(".", "."))?;
    step("cannot detach the old root", umount2(".", MntFlags::MNT_DETACH))?;
    step("cannot enter the new root", std::env::set_current_dir("/"))?;
    own_keyring()?;
    restrict(spec)?;
    drop_privileges()?;
    crate::seccomp::forbid_terminal_input()
}

/// A session keyring of the sandbox's own: the one inherited from the caller may hold its
/// secrets (tokens added with `keyctl`), which the command could otherwise read.
fn own_keyring() -> Result<(), String> {
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING with a null name creates and joins a new, anonymous
    // session keyring for this process; nothing is passed by reference.
    let joined =
        unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<libc::c_char>()) };
    match std::io::Error::last_os_error().raw_os_error() {
        _ if joined >= 0 => Ok(()),
        // Keyrings are not available here at all (a container's seccomp policy, say): the
        // command cannot reach the caller's either.
        Some(libc::ENOSYS | libc::EPERM) => Ok(()),
        _ => Err(format!("cannot give the sandbox a keyring of its own: {}", std::io::Error::last_os_error())),
    }
}

/// A private `/tmp`, through which workspaces that live below `/tmp` stay visible: each is
/// held aside, the tmpfs goes on, and it is moved back to its path.
fn private_tmp(spec: &Spec) -> Result<(), String> {
    let none: Option<&str> = None;
    let tmp = Path::new("/tmp");
    let kept: Vec<&PathBuf> = spec.served.iter().filter(|p| p.starts_with(tmp) && *p != tmp).collect();
    let hold = |i: usize| Path::new(STAGING).join(format!("hold-{i}"));
    for (i, path) in kept.iter().enumerate() {
        step("cannot hold a workspace aside", std::fs::create_dir(hold(i)))?;
        step(
            "cannot hold a workspace aside",
            mount(Some(&inside(path)), &hold(i), none, MsFlags::MS_BIND | MsFlags::MS_REC, none),
        )?;
    }
    step("cannot mount /tmp", mount_tmpfs(&inside(tmp), MsFlags::MS_NODEV, "mode=1777", spec.tmpfs_size))?;
    for (i, path) in kept.iter().enumerate() {
        step("cannot recreate a workspace's path in /tmp", std::fs::create_dir_all(inside(path)))?;
        step("cannot put a workspace back", mount(Some(&hold(i)), &inside(path), none, MsFlags::MS_MOVE, none))?;
    }
    Ok(())
}

/// Binds the host's `path` onto the same path in the new root, with every mount below it;
/// read-only unless `writable`, the mounts below included (a host mount nested in `/etc`
/// would otherwise stay writable: Landlock does not cover chmod or utimes). The flags the
/// kernel locks (nosuid, nodev, noexec) stay as they are on the host.
fn bind_into(path: &Path, writable: bool) -> Result<(), String> {
    let target = mount_point(path)?;
    let none: Option<&str> = None;
    step(
        &format!("cannot bind {}", path.display()),
        mount(Some(path), &target, none, MsFlags::MS_BIND | MsFlags::MS_REC, none),
    )?;
    if writable {
        return Ok(());
    }
    make_read_only(&target, path)
}

/// Where `path` goes in the new root, made (a directory or an empty file, as `path` is) where
/// nothing is there yet: below the private /tmp.
fn mount_point(path: &Path) -> Result<PathBuf, String> {
    let target = inside(path);
    if std::fs::symlink_metadata(&target).is_err() {
        let made = match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => std::fs::create_dir_all(&target),
            _ => target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(&target).map(drop)),
        };
        step(&format!("cannot make a mount point for {}", path.display()), made)?;
    }
    Ok(target)
}

/// Puts a copy of the host directory (or file) `path` of its own at the same path in the new
/// root: an overlay whose upper layer (the `n`th) lives on the staging tmpfs (a file: a copy
/// there), so writes never reach the host, and end with the sandbox. Where the kernel cannot make one (overlays in a user
/// namespace need Linux 5.11), the directory is bound read-only instead, with a warning.
fn scratch_into(path: &Path, n: usize) -> Result<(), String> {
    let target = mount_point(path)?;
    let layer = Path::new(STAGING).join(format!("scratch-{n}"));
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file()) {
        // A file: a copy on the staging tmpfs, bound over it.
        step(&format!("cannot make a copy of {}", path.display()), std::fs::copy(path, &layer))?;
        let none: Option<&str> = None;
        return step(
            &format!("cannot bind a copy of {}", path.display()),
            mount(Some(&layer), &target, none, MsFlags::MS_BIND, none),
        );
    }
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    for dir in [&target, &upper, &work] {
        step(&format!("cannot make a copy of {}", path.display()), std::fs::create_dir_all(dir))?;
    }
    // Option values escape the characters that separate options and layers.
    let escape = |p: &Path| {
        p.as_os_str().as_bytes().iter().fold(Vec::new(), |mut out, &b| {
            if matches!(b, b'\\' | b',' | b':') {
                out.push(b'\\');
            }
            out.push(b);
            out
        })
    };
    let layers =
        [b"lowerdir=".as_slice(), &escape(path), b",upperdir=", &escape(&upper), b",workdir=", &escape(&work)].concat();
    // `userxattr`: in a user namespace the overlay keeps its own records in user.* extended
    // attributes; without them, replacing a directory of the host's copy fails (Linux 5.11
    // and newer; older kernels refuse the option).
    let mounted = [b",userxattr".as_slice(), b""].iter().any(|extra| {
        let options = std::ffi::OsStr::from_bytes(&[layers.as_slice(), extra].concat()).to_owned();
        mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_os_str()),
        )
        .is_ok()
    });
    if mounted {
        return Ok(());
    }
    eprintln!(
        "mirage-run: warning: cannot give the sandbox a copy of {} of its own (no overlays here); it is read-only",
        path.display()
    );
    bind_into(path, false)
}

/// Makes the mount at `target` (the bind of `what`) and every mount below it read-only.
fn make_read_only(target: &Path, what: &Path) -> Result<(), String> {
    let attr = libc::mount_attr { attr_set: libc::MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let c_target = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| format!("cannot make {} read-only: a NUL in its path", what.display()))?;
    // SAFETY: a NUL-terminated path and an attribute struct that live across the call, with
    // the struct's size.
    let done = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c_target.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if done != 0 {
        return Err(format!("cannot make {} read-only: {}", what.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Hides the bound file `path` behind an empty, read-only one.
fn mask(path: &Path) -> Result<(), String> {
    let target = inside(path);
    if !target.is_file() {
        return Ok(());
    }
    let none: Option<&str> = None;
    step(&format!("cannot hide {}", path.display()), mount(Some("/dev/null"), &target, none, MsFlags::MS_BIND, none))?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    step(&format!("cannot hide {}", path.display()), mount(none, &target, none, flags, none))
}

/// Mounts a tmpfs (never setuid) on `target` with `flags` and `mode` (`mode=0755`, ...);
/// when a `size` is given, it holds that many bytes and one inode per 4 KiB of them (empty
/// files take kernel memory that `size` does not count).
fn mount_tmpfs(target: &Path, flags: MsFlags, mode: &str, size: Option<u64>) -> nix::Result<()> {
    let options = match size {
        Some(size) => format!("{mode},size={size},nr_inodes={}", (size / 4096).max(64)),
        None => mode.to_owned(),
    };
    mount(Some("tmpfs"), target, Some("tmpfs"), flags | MsFlags::MS_NOSUID, Some(options.as_str()))
}

/// A minimal `/dev`: a tmpfs with the host's harmless nodes bound in, a private devpts for
/// terminals, a `/dev/shm` for POSIX shared memory (a tmpfs of `shm_size`, as `/tmp`), and
/// the usual links.
fn make_dev(shm_size: Option<u64>) -> Result<(), String> {
    let dev = inside(Path::new("/dev"));
    let none: Option<&str> = None;
    step(
        "cannot mount /dev",
        // Nothing but nodes and links belongs here: files written here would hold memory.
        mount_tmpfs(&dev, MsFlags::MS_NOEXEC, "mode=0755", Some(1 << 20)),
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        step(&format!("cannot create /dev/{node}"), std::fs::File::create(&target))?;
        let source = Path::new("/dev").join(node);
        step(&format!("cannot bind /dev/{node}"), mount(Some(&source), &target, none, MsFlags::MS_BIND, none))?;
        // Reads and writes still reach the device; chmod and utimes would reach the host's node.
        make_read_only(&target, &source)?;
    }
    step("cannot create /dev/pts", std::fs::create_dir(dev.join("pts")))?;
    step(
        "cannot mount /dev/pts",
        mount(
            Some("devpts"),
            &dev.join("pts"),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ),
    )?;
    step("cannot create /dev/shm", std::fs::create_dir(dev.join("shm")))?;
    step("cannot mount /dev/shm", mount_tmpfs(&dev.join("shm"), MsFlags::MS_NODEV, "mode=1777", shm_size))?;
    // The terminal the command was started from lives in the host's devpts: bound as
    // /dev/console, where ttyname() finds it.
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } == 1
        && let Ok(terminal) = std::fs::read_link("/proc/self/fd/0")
    {
        let console = dev.join("console");
        step("cannot create /dev/console", std::fs::File::create(&console))?;
        step("cannot bind the terminal", mount(Some(&terminal), &console, none, MsFlags::MS_BIND, none))?;
        // A chmod of it would let other users of the host read what is typed into it.
        make_read_only(&console, &terminal)?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        step(&format!("cannot create /dev/{link}"), std::os::unix::fs::symlink(target, dev.join(link)))?;
    }
    Ok(())
}

/// Landlock: everything may be read and run; only the writable places may change. (Landlock
/// also denies every mount and `pivot_root` from here on.)
fn restrict(spec: &Spec) -> Result<(), String> {
    let abi = ABI::V5;
    let mut writable: Vec<PathBuf> = vec!["/tmp".into(), "/dev".into()];
    writable.extend(spec.writable.iter().cloned());
    writable.extend(spec.binds.iter().filter(|b| b.access != Access::ReadOnly).map(|b| b.path.clone()));
    let ports: &[u16] = match &spec.net {
        Net::TcpPorts(ports) => ports,
        Net::Host | Net::None => &[],
    };
    let tcp = matches!(spec.net, Net::TcpPorts(_));
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        // Signals reach only the sandbox's own processes (not the runner, nor the caller's
        // shell in the same process group), and abstract unix sockets only its own.
        .and_then(|r| r.scope(Scope::Signal | Scope::AbstractUnixSocket))
        .and_then(|r| if tcp { r.handle_access(AccessNet::from_all(ABI::V4)) } else { Ok(r) })
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&writable, AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(ports.iter().map(|&p| Ok(NetPort::new(p, AccessNet::ConnectTcp)))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("cannot apply Landlock: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => {}
        RulesetStatus::PartiallyEnforced => eprintln!(
            "mirage-run: warning: this kernel enforces only part of the Landlock rules (an older ABI{})",
            if tcp { "; TCP port rules need Linux 6.7" } else { "" }
        ),
        RulesetStatus::NotEnforced => {
            eprintln!("mirage-run: warning: this kernel does not enforce Landlock; only read-only mounts limit writes")
        }
    }
    Ok(())
}

/// No capability survives into the command, even as root of the sandbox's user namespace,
/// and nothing can gain any (setuid binaries included).
fn drop_privileges() -> Result<(), String> {
    // SAFETY: prctl calls on this process's own credentials.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!("cannot set no_new_privs: {}", std::io::Error::last_os_error()));
        }
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        // Root in the namespace gets no capabilities back on exec.
        const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
        const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
        if libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0) != 0 {
            return Err(format!("cannot lock out root's capabilities: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn programs_are_found_on_the_path_or_by_path() {
        assert_eq!(find_program("/x/y", ""), Some(PathBuf::from("/x/y")));
        assert_eq!(
            find_program("sh", "/nonexistent:/bin:/usr/bin").map(|p| p.file_name().unwrap().to_owned()),
            Some(OsStr::new("sh").to_owned())
        );
        assert_eq!(find_program("no-such-program-here", "/bin:/usr/bin"), None);
    }
}
