//! Runs a command in a Linux sandbox whose root is a FUSE mount served by the caller.
//!
//! The caller (the supervisor) stays outside and owns whatever serves the filesystem. It
//! starts the sandbox with [`Sandbox::start`], which re-executes the current program as a
//! helper (the program's `main` hands control to [`helper_main`] when its first argument is
//! [`HELPER_ARG`]). The helper enters new user, mount, PID, IPC and UTS namespaces (and a
//! network namespace for [`Net::None`]) and forks the sandbox's PID 1, which:
//!
//! 1. opens `/dev/fuse` inside the new user namespace, mounts it, and hands the descriptor
//!    to the supervisor ([`Sandbox::take_fuse_fd`]), which serves it and says so
//!    ([`Sandbox::proceed`]);
//! 2. binds the listed host paths onto the FUSE root (read-only with the mounts below them,
//!    writable, or as copies of their own that end with the sandbox), builds a minimal
//!    `/dev`, mounts a new `/proc` and a private `/tmp`;
//! 3. makes the FUSE root its `/` (`pivot_root`) and detaches the old root: nothing else of
//!    the host is reachable;
//! 4. gives itself a session keyring of its own, restricts writes with Landlock to the
//!    writable paths (no mounts either) and scopes signals and abstract unix sockets to the
//!    sandbox, drops every capability, sets `no_new_privs`, and refuses `TIOCSTI` and
//!    `TIOCLINUX` with seccomp (the command keeps the caller's terminal);
//! 5. runs the command (with no descriptor but the standard three: a `<(...)` or a make
//!    jobserver's descriptors do not reach it), reaps every process that ends in the
//!    sandbox, forwards SIGTERM and SIGHUP, and exits with the command's status, which
//!    [`Sandbox::wait`] returns. The helper and PID 1 die with their parents.

mod fdpass;
mod init;
mod seccomp;

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};

use serde::{Deserialize, Serialize};

/// The first argument that makes a program run as the sandbox helper.
pub const HELPER_ARG: &str = "__mirage-sandbox-helper";

/// The environment variable that carries the [`Spec`] to the helper.
const SPEC_VAR: &str = "MIRAGE_SANDBOX_SPEC";

/// The network a sandbox sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Net {
    /// The host's network (agents call model APIs).
    Host,
    /// The host's network, but TCP connections only to these ports and no listening, with
    /// Landlock (Linux 6.7 and newer; older kernels warn and allow everything).
    TcpPorts(Vec<u16>),
    /// A network namespace of its own, with no interface up: no connectivity at all.
    None,
}

/// A host path made visible at the same path inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// The path, on the host and inside.
    pub path: PathBuf,
    /// What the sandbox may do to it.
    pub access: Access,
}

/// What the sandbox may do to a bound path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Read it.
    ReadOnly,
    /// Change it, on the host (the host's own permissions still apply).
    Writable,
    /// Change it in a copy of its own that ends with the sandbox (an overlay on a private
    /// tmpfs for a directory, a copy there for a file): it reads as the host's, and nothing
    /// written reaches the host.
    Scratch,
}

/// What to run, and in what sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// The working directory inside the sandbox.
    pub workdir: PathBuf,
    /// The command's whole environment.
    pub env: Vec<(String, String)>,
    /// Host paths bound into the FUSE root; each target must exist there (a directory for a
    /// directory, a file for a file).
    pub binds: Vec<Bind>,
    /// Bound files to hide (read as empty): secrets of the host inside bound directories,
    /// such as `/etc/shadow`.
    pub masked: Vec<PathBuf>,
    /// Paths inside the sandbox the command may change (besides writable binds, `/tmp` and
    /// `/dev`); everything else is read-only.
    pub writable: Vec<PathBuf>,
    /// Paths the FUSE root serves that must stay visible where the sandbox mounts its own
    /// `/tmp` (a workspace below `/tmp`, say).
    pub served: Vec<PathBuf>,
    /// The network.
    pub net: Net,
    /// The sandbox's host name.
    pub hostname: String,
    /// The most bytes each of the sandbox's own memory filesystems (`/tmp`, `/dev/shm`, and
    /// the copies of home entries) may hold, with one file per 4 KiB; `None` leaves the
    /// kernel's defaults (half the RAM). The rest of `/dev` holds 1 MiB at most whatever this
    /// says.
    pub tmpfs_size: Option<u64>,
}

/// A started sandbox.
#[derive(Debug)]
pub struct Sandbox {
    helper: Child,
    socket: UnixStream,
    fuse: Option<OwnedFd>,
}

impl Sandbox {
    /// Starts the sandbox and returns once its PID 1 has mounted `/dev/fuse` on the future
    /// root and handed the descriptor over ([`Sandbox::take_fuse_fd`]).
    ///
    /// The sandbox is killed when the calling *thread* ends (the kernel's parent-death signal
    /// follows the thread that started the helper): call it from a thread that lives as long
    /// as the sandbox should, such as the main thread.
    ///
    /// # Errors
    /// The helper could not start, or the sandbox could not be set up; the message says which
    /// step failed and why (e.g. unprivileged user namespaces disabled, `/dev/fuse` not
    /// accessible).
    pub fn start(spec: &Spec) -> io::Result<Sandbox> {
        let (mine, theirs) = UnixStream::pair()?;
        let theirs_fd = theirs.as_raw_fd();
        let json = serde_json::to_string(spec).map_err(io::Error::other)?;
        let mut command = Command::new("/proc/self/exe");
        command.arg(HELPER_ARG).arg(theirs_fd.to_string()).env(SPEC_VAR, json);
        let supervisor = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec: clearing the
        // close-on-exec flag of the helper's end of the socket, and asking for SIGKILL when
        // this process ends (checked against an end that came first), so that the sandbox
        // never outlives its supervisor.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(theirs_fd, libc::F_SETFD, 0) < 0
                    || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != supervisor {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let helper = command.spawn()?;
        drop(theirs);
        let mut sandbox = Sandbox { helper, socket: mine, fuse: None };
        match fdpass::receive(&sandbox.socket) {
            Ok(fd) => {
                sandbox.fuse = Some(fd);
                Ok(sandbox)
            }
            Err(e) => {
                let _ = sandbox.helper.wait();
                Err(e)
            }
        }
    }

    /// The `/dev/fuse` descriptor mounted as the sandbox's root, to serve.
    ///
    /// # Panics
    /// When taken twice.
    pub fn take_fuse_fd(&mut self) -> OwnedFd {
        self.fuse.take().expect("the FUSE descriptor is taken once")
    }

    /// Tells the sandbox that its root is being served: it finishes setting up and runs the
    /// command.
    ///
    /// # Errors
    /// The sandbox is gone.
    pub fn proceed(&mut self) -> io::Result<()> {
        self.socket.write_all(b"go")
    }

    /// The helper's process id (signals sent to it are forwarded to the command).
    pub fn pid(&self) -> u32 {
        self.helper.id()
    }

    /// Waits for the command and returns its exit code (128 + the signal's number when a
    /// signal ended it). A failure to set the sandbox up after [`Sandbox::proceed`] is
    /// returned as an error with its message.
    ///
    /// # Errors
    /// The sandbox could not finish setting up, or the helper could not be waited for.
    pub fn wait(mut self) -> io::Result<i32> {
        let status = self.helper.wait()?;
        let mut report = String::new();
        let _ = self.socket.read_to_string(&mut report);
        if let Some(message) = report.strip_prefix(fdpass::FAILED) {
            return Err(io::Error::other(message.to_owned()));
        }
        use std::os::unix::process::ExitStatusExt;
        Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

/// The helper's entry point: call it from `main` when the first argument is
/// [`HELPER_ARG`]. Never returns.
pub fn helper_main() -> ! {
    init::helper()
}
