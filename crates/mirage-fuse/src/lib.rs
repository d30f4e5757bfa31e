//! Serves a Mirage session as a real filesystem over `/dev/fuse`.
//!
//! Every path of the session's tree appears below the mount point: reads fall through to
//! the session's resources, writes land in the session (nothing reaches a resource until the
//! session commits), and whatever changes the session by other means (its API, a fork
//! committed into it) is visible through the mount at once, because the kernel's caches are
//! invalidated explicitly rather than switched off.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mirage_core::{LocalResource, Mirage, MountOptions};
//!
//! let mirage = Mirage::new();
//! mirage.mount("/", Arc::new(LocalResource::new("./project")?), MountOptions::default())?;
//! let session = mirage.create_session("inspect")?;
//! let mount = mirage_fuse::mount(&session, "/mnt/inspect", &mirage_fuse::Options::default())?;
//! // ... run programs under /mnt/inspect ...
//! mount.unmount()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What a session cannot hold is refused with the errno a program expects: hard links with
//! `EPERM`, device nodes, FIFOs and sockets with `ENOTSUP`, extended attributes with
//! `ENOTSUP`, a change of owner with `EPERM` (every entry belongs to the mount's owner, and
//! the kernel checks permissions against the mode bits: `default_permissions`). A file
//! removed or replaced while open keeps working through its open handles until they close.

mod attr;
mod busy;
mod fs;
mod inodes;
mod invalidate;
mod sparse;

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use mirage_core::{Session, Watch};

pub use attr::Owner;

use fs::MirageFs;
use inodes::Inodes;

/// How a session is served.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long the kernel may keep entries and attributes without asking again. Changes
    /// behind the mount's back are invalidated explicitly, so this can be long.
    pub ttl: Duration,
    /// Who owns every entry.
    pub owner: Owner,
    /// Threads reading the kernel's requests. They never wait on a resource (a request that
    /// must wait moves to a worker thread, and while any mounted resource does I/O every
    /// request does, before it starts), so a few are enough; with one per CPU this
    /// process may use (the default, up to 16), each is pinned to its CPU, so that a request
    /// is answered on the CPU that sent it.
    pub threads: usize,
    /// Refuse every change (`EROFS`), whatever the session's mounts allow.
    pub read_only: bool,
    /// Let other users (and processes in other user namespaces) use the mount; needs root
    /// or `user_allow_other` in `/etc/fuse.conf`.
    pub allow_other: bool,
    /// The source name shown in `/proc/mounts`.
    pub name: String,
    /// The runtime remote resources wait on; a small one is started when `None`.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Let the kernel read host files of 1 MiB or more that the session has not changed
    /// directly, when they are opened read-only (`FUSE_PASSTHROUGH`: native speed). It needs
    /// CAP_SYS_ADMIN (files are served the usual way otherwise) and costs a round trip per
    /// open, which makes warm work on many small files slower; a file opened this way keeps
    /// showing the host's content until it is closed, even if the session changes it.
    pub passthrough: bool,
    /// Keep idle CPUs polling instead of halting while requests keep coming (the default): a
    /// CPU latency request of zero through `/dev/cpu_dma_latency`, withdrawn once no request
    /// has come for 2-4 ms. Each request wakes a thread on each side, and waking a halted CPU
    /// costs more than most requests themselves (on virtual machines above all), so work made
    /// of many small requests runs faster (creating files: 1.4-2.3x here). Idle CPUs spin
    /// meanwhile, on the whole machine, for as long as the mount is busy and those few
    /// milliseconds after; `false` lets them halt. Needs root; ignored otherwise
    /// ([`Mount::busy_polling`] tells).
    pub busy_poll: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ttl: Duration::from_secs(3600),
            owner: Owner::current(),
            threads: allowed_cpus().len().clamp(1, MAX_DEFAULT_THREADS),
            read_only: false,
            allow_other: false,
            name: "mirage".to_owned(),
            runtime: None,
            passthrough: false,
            busy_poll: true,
        }
    }
}

/// The most reading threads [`Options::default`] starts.
const MAX_DEFAULT_THREADS: usize = 16;

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed set filled in by the kernel, passed with its size.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        set
    };
    // SAFETY: reads bits of an initialised set.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// A session being served. Dropping it unmounts (for [`mount`]) or stops serving.
#[derive(Debug)]
pub struct Mount {
    background: Option<BackgroundSession>,
    watch: Option<Watch>,
    mountpoint: Option<PathBuf>,
    /// Kept alive while the mount serves, when it was started for it.
    runtime: Option<tokio::runtime::Runtime>,
    /// Set when [`Options::busy_poll`] was asked for and allowed.
    busy: Option<Arc<busy::BusyPolling>>,
}

/// Mounts `session` at `mountpoint` and serves it on background threads until the returned
/// [`Mount`] is unmounted or dropped.
///
/// # Errors
/// The mount point does not exist or is not a directory, `/dev/fuse` cannot be opened, or
/// the mount is not permitted (an unprivileged user without `fusermount3`).
pub fn mount(session: &Session, mountpoint: impl AsRef<Path>, options: &Options) -> io::Result<Mount> {
    let mountpoint = mountpoint.as_ref();
    let (fs, inodes, runtime, busy) = filesystem(session, options)?;
    let background = fuser::spawn_mount(fs, mountpoint, &config(options, true))?;
    raise_read_ahead(mountpoint);
    let watch = invalidate::start(session, inodes, background.notifier())?;
    Ok(Mount {
        background: Some(background),
        watch: Some(watch),
        mountpoint: Some(mountpoint.to_owned()),
        runtime,
        busy,
    })
}

/// Serves `session` on an already mounted `/dev/fuse` descriptor (a sandbox mounts it in its
/// own namespace and hands the descriptor over), until the filesystem is unmounted.
///
/// # Errors
/// The descriptor is not a FUSE connection, or the handshake with the kernel fails.
pub fn serve_fd(session: &Session, fd: OwnedFd, options: &Options) -> io::Result<Mount> {
    let (fs, inodes, runtime, busy) = filesystem(session, options)?;
    let acl = if options.allow_other { SessionACL::All } else { SessionACL::Owner };
    let served = fuser::Session::from_fd(fs, fd, acl, config(options, false))?;
    let notifier = served.notifier();
    let background = served.spawn()?;
    let watch = invalidate::start(session, inodes, notifier)?;
    Ok(Mount { background: Some(background), watch: Some(watch), mountpoint: None, runtime, busy })
}

/// What serving a session takes: the filesystem, its inode table, the runtime started for it
/// (if any) and its latency request (if asked for and allowed).
type Serving = (MirageFs, Arc<Inodes>, Option<tokio::runtime::Runtime>, Option<Arc<busy::BusyPolling>>);

fn filesystem(session: &Session, options: &Options) -> io::Result<Serving> {
    let (handle, runtime) = match &options.runtime {
        Some(handle) => (handle.clone(), None),
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("mirage-fuse-io")
                .enable_all()
                .build()?;
            (runtime.handle().clone(), Some(runtime))
        }
    };
    let inodes = Arc::new(Inodes::new());
    // One reading thread per CPU: each is pinned to its own.
    let cpus = allowed_cpus();
    let cpus = if cpus.len() > 1 && cpus.len() == options.threads { cpus } else { Vec::new() };
    let busy = if options.busy_poll { busy::BusyPolling::start() } else { None };
    let fs = MirageFs::new(session.clone(), handle, inodes.clone(), options, cpus, busy.clone());
    Ok((fs, inodes, runtime, busy))
}

/// Lets the kernel read ahead 1 MiB instead of its default 128 KiB: a sequential read
/// through the mount then runs about twice as fast. Only root may; others keep the default.
fn raise_read_ahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(mountpoint) {
        let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
        let _ = std::fs::write(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb"), "1024");
    }
}

fn config(options: &Options, mounting: bool) -> Config {
    let mut config = Config::default();
    if mounting {
        config.mount_options = vec![
            MountOption::FSName(options.name.clone()),
            MountOption::Subtype("mirage".to_owned()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        if options.read_only {
            config.mount_options.push(MountOption::RO);
        }
        config.acl = if options.allow_other { SessionACL::All } else { SessionACL::Owner };
    }
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    config
}

impl Mount {
    /// Where the session is mounted (`None` when serving a descriptor).
    pub fn mountpoint(&self) -> Option<&Path> {
        self.mountpoint.as_deref()
    }

    /// Whether [`Options::busy_poll`] is in effect: asked for, and the latency device could be
    /// opened (root).
    pub fn busy_polling(&self) -> bool {
        self.busy.is_some()
    }

    /// True while the kernel still sends this mount requests (not unmounted by anyone yet).
    pub fn is_serving(&self) -> bool {
        self.background.as_ref().is_some_and(|b| !b.guard.is_finished())
    }

    /// Unmounts and waits for the workers to stop.
    ///
    /// # Errors
    /// The kernel refused to unmount (a process still uses the mount: `EBUSY`).
    pub fn unmount(mut self) -> io::Result<()> {
        let background = self.background.take();
        self.stop_watching();
        background.map_or(Ok(()), BackgroundSession::umount_and_join)
    }

    /// Waits until the filesystem is unmounted by someone else (`umount`, `fusermount3 -u`,
    /// the end of the sandbox's mount namespace).
    ///
    /// # Errors
    /// The worker threads failed.
    pub fn wait(mut self) -> io::Result<()> {
        let background = self.background.take();
        let result = background.map_or(Ok(()), BackgroundSession::join);
        self.stop_watching();
        result
    }

    fn stop_watching(&mut self) {
        drop(self.watch.take());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            let _ = background.umount_and_join();
        }
        self.stop_watching();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Checks that `mountpoint` can be mounted on. A FUSE mount left behind by a process that
/// died (every access fails with `ENOTCONN`) is detached first; returns whether one was.
///
/// # Errors
/// `mountpoint` is missing or not a directory, or a stale mount could not be detached (an
/// unprivileged user needs `fusermount3`).
pub fn clear_stale_mount(mountpoint: impl AsRef<Path>) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let mountpoint = mountpoint.as_ref();
    // statfs always asks the server (nothing caches it), so it tells a dead one apart even
    // where the kernel still answers lookups and listings from its caches.
    let c_path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())?;
    // SAFETY: a valid path and a zeroed out-structure.
    let dead = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut st) != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTCONN)
    };
    if dead {
        detach(mountpoint)?;
        return Ok(true);
    }
    match std::fs::metadata(mountpoint) {
        Ok(meta) if meta.is_dir() => Ok(false),
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", mountpoint.display())))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            detach(mountpoint)?;
            Ok(true)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", mountpoint.display()))),
    }
}

/// Detaches the mount at `mountpoint` now; it goes once nothing uses it.
///
/// # Errors
/// Neither `umount2` (root) nor `fusermount3 -uz` (unprivileged) succeeded.
pub fn detach(mountpoint: &Path) -> io::Result<()> {
    unmount_path(mountpoint, true)
}

/// Unmounts the filesystem at `mountpoint`.
///
/// # Errors
/// `EBUSY` while a process uses it; otherwise neither `umount2` (root) nor `fusermount3 -u`
/// (unprivileged) succeeded.
pub fn unmount(mountpoint: &Path) -> io::Result<()> {
    unmount_path(mountpoint, false)
}

fn unmount_path(mountpoint: &Path, lazy: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: a valid NUL-terminated path; umount2 touches nothing else.
    if unsafe { libc::umount2(c_path.as_ptr(), flags) } == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() != Some(libc::EPERM) {
        return Err(error);
    }
    // Unprivileged: the setuid helper may unmount what this user mounted.
    let flag = if lazy { "-uz" } else { "-u" };
    match std::process::Command::new("fusermount3").arg(flag).arg(mountpoint).status() {
        Ok(status) if status.success() => Ok(()),
        Ok(_) | Err(_) => Err(io::Error::new(error.kind(), format!("{error} (and fusermount3 {flag} failed)"))),
    }
}
