//! `mirage-run mount` and `mirage-run unmount`: a session over a host directory, served with
//! FUSE for people and programs to look at and work in.

use std::ffi::OsString;

use lexopt::ValueExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mirage_core::{LocalResource, Mirage, MountOptions};

use crate::report::{OnExit, finish};
use crate::sessions::Store;
use crate::{Failure, UsageError};

/// The arguments of `mirage-run mount`.
#[derive(Debug)]
pub(crate) struct MountArgs {
    mountpoint: PathBuf,
    source: PathBuf,
    read_only: bool,
    on_exit: Option<OnExit>,
    store: Option<PathBuf>,
    session: Option<String>,
    passthrough: bool,
    /// `--busy-poll` or `--no-busy-poll`.
    busy_poll: Option<bool>,
    max_memory: Option<Option<u64>>,
}

impl MountArgs {
    /// Reads the arguments after `mount`.
    pub(crate) fn parse(parser: &mut lexopt::Parser) -> Result<Self, UsageError> {
        use lexopt::Arg::{Long, Value};
        let (mut mountpoint, mut source, mut read_only, mut on_exit, mut store, mut session) =
            (None, None, false, None, None, None);
        let (mut passthrough, mut busy_poll, mut max_memory) = (false, None, None);
        while let Some(arg) = parser.next()? {
            match arg {
                Long("source") => source = Some(PathBuf::from(parser.value()?)),
                Long("read-only") => read_only = true,
                Long("passthrough") => passthrough = true,
                Long("busy-poll") => busy_poll = Some(true),
                Long("no-busy-poll") => busy_poll = Some(false),
                Long("max-memory") => max_memory = Some(crate::memory::parse(&parser.value()?.string()?)?),
                Long("on-exit") => on_exit = Some(OnExit::parse(&parser.value()?.string()?)?),
                Long("store") => store = Some(PathBuf::from(parser.value()?)),
                Long("session") => session = Some(parser.value()?.string()?),
                Value(path) if mountpoint.is_none() => mountpoint = Some(PathBuf::from(path)),
                other => return Err(other.unexpected().into()),
            }
        }
        let mountpoint = mountpoint.ok_or_else(|| UsageError("mount needs a MOUNTPOINT".into()))?;
        if on_exit == Some(OnExit::Keep) && session.is_none() {
            return Err(UsageError(
                "--on-exit keep needs --session NAME (a session of the store; without one, it ends with the process)"
                    .into(),
            ));
        }
        if store.is_some() && session.is_none() {
            return Err(UsageError("--store DIR goes with --session NAME".into()));
        }
        let source = match source {
            Some(source) => source,
            None => {
                std::env::current_dir().map_err(|e| UsageError(format!("cannot read the current directory: {e}")))?
            }
        };
        Ok(MountArgs { mountpoint, source, read_only, on_exit, store, session, passthrough, busy_poll, max_memory })
    }
}

/// Serves the session until a signal or an unmount, then reports what changed and applies
/// `--on-exit`.
pub(crate) fn mount(args: MountArgs) -> Result<ExitCode, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::Run(format!("{what}: {e}"));
    // Signals are taken synchronously below: block them before any thread starts, so that
    // every thread inherits the mask.
    let signals = crate::signals::Signals::block(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    let source = args
        .source
        .canonicalize()
        .map_err(|e| fail(&format!("cannot use {} as the source", args.source.display()), &e))?;
    let mountpoint = &args.mountpoint;
    if mirage_fuse::clear_stale_mount(mountpoint).map_err(|e| fail("cannot mount there", &e))? {
        eprintln!(
            "mirage-run: {} held a stale mount left by a process that died; it was detached",
            mountpoint.display()
        );
    }
    let mountpoint =
        mountpoint.canonicalize().map_err(|e| fail(&format!("cannot mount on {}", mountpoint.display()), &e))?;
    if mountpoint.starts_with(&source) {
        return Err(Failure::Run(format!(
            "the mount point {} lies inside the source {}: choose one outside it",
            mountpoint.display(),
            source.display()
        )));
    }
    if is_mount_point(&mountpoint) {
        return Err(Failure::Run(format!(
            "{} is already a mount point; unmount it first (mirage-run unmount {0})",
            mountpoint.display()
        )));
    }
    let on_exit = args.on_exit.unwrap_or(if args.session.is_some() { OnExit::Keep } else { OnExit::Discard });
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail("cannot start", &e))?;
    // Before the store is read back, so that the content it holds counts.
    crate::memory::apply(args.max_memory);
    let (session, workspace, claim) = match &args.session {
        // A session of the store (as `mirage-run --session` makes them): its whole tree, with
        // its workspace at its own path.
        Some(name) => {
            let dir = match &args.store {
                Some(dir) => dir.clone(),
                None => Store::default_dir()?,
            };
            let mut store = Store::open(&dir)?;
            let session = match store.mirage.session(name) {
                Ok(session) => session,
                Err(_) => store.create(name, &source)?,
            };
            let workspace = store.workspace_of(name).map_or_else(|| source.clone(), Path::to_path_buf);
            (session, workspace, Some(store.claim(name)?))
        }
        // A session of its own, over the source as its root.
        None => {
            let mirage = Mirage::new();
            let resource = LocalResource::new(&source).map_err(|e| fail("cannot open the source", &e))?;
            mirage
                .mount("/", Arc::new(resource), MountOptions { read_only: args.read_only })
                .map_err(|e| fail("cannot mount the source", &e))?;
            let session = mirage.create_session("mount").map_err(|e| fail("cannot create the session", &e))?;
            (session, source.clone(), None)
        }
    };
    crate::memory::warn_if_nearly_full();
    let name = session.name().map_err(|e| fail("the session is gone", &e))?;
    let busy_poll = crate::BusyPoll::choose(args.busy_poll, None);
    let options = mirage_fuse::Options {
        read_only: args.read_only,
        passthrough: args.passthrough,
        busy_poll: busy_poll.on,
        name: format!("mirage:{name}"),
        runtime: Some(runtime.handle().clone()),
        ..mirage_fuse::Options::default()
    };
    let served = mirage_fuse::mount(&session, &mountpoint, &options).map_err(|e| {
        Failure::Run(match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => format!("cannot mount: {e}. {}", unprivileged_hint()),
            _ => format!("cannot mount: {e}"),
        })
    })?;
    eprintln!(
        "mirage-run: session '{name}' over {} is mounted at {}\nmirage-run: stop with Ctrl-C or `mirage-run unmount {1}`",
        source.display(),
        mountpoint.display()
    );
    busy_poll.warn_if_not_in_effect(&served);
    while served.is_serving() {
        if let Some(signal) = signals.wait(Duration::from_millis(200)) {
            eprintln!("mirage-run: {}: unmounting", signal_name(signal));
            break;
        }
    }
    if served.is_serving() {
        if let Err(e) = served.unmount() {
            eprintln!("mirage-run: {} is busy ({e}); detaching it: it goes once nothing uses it", mountpoint.display());
            mirage_fuse::detach(&mountpoint).map_err(|e| fail("cannot unmount", &e))?;
        }
    } else {
        drop(served);
    }
    let stored = claim.is_some();
    finish(&runtime, &session, &workspace, on_exit, false, stored)
}

/// What an unprivileged user needs to mount, as this machine stands.
fn unprivileged_hint() -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/fuse").map(|m| m.permissions().mode() & 0o777).ok();
    let helper = ["/usr/bin/fusermount3", "/bin/fusermount3"].iter().any(|p| Path::new(p).exists());
    let mut needs = Vec::new();
    if mode.is_some_and(|m| m & 0o006 != 0o006) {
        needs.push(format!(
            "/dev/fuse readable and writable by everyone (its mode is {:o}: `sudo chmod 0666 /dev/fuse`, the usual default)",
            mode.unwrap_or(0)
        ));
    }
    if !helper {
        needs.push("fusermount3 (Debian and Ubuntu: `sudo apt install fuse3`)".to_owned());
    }
    if needs.is_empty() {
        "Mounting needs root, or fusermount3 and a /dev/fuse everyone may use".to_owned()
    } else {
        format!("A user other than root needs {}", needs.join(" and "))
    }
}

/// `mirage-run unmount MOUNTPOINT [--lazy]`.
pub(crate) fn unmount(parser: &mut lexopt::Parser) -> Result<ExitCode, Failure> {
    use lexopt::Arg::{Long, Value};
    let (mut mountpoint, mut lazy): (Option<OsString>, bool) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("lazy") => lazy = true,
            Value(path) if mountpoint.is_none() => mountpoint = Some(path),
            other => return Err(other.unexpected().into()),
        }
    }
    let mountpoint = PathBuf::from(mountpoint.ok_or_else(|| UsageError("unmount needs a MOUNTPOINT".into()))?);
    if lazy {
        mirage_fuse::detach(&mountpoint).map_err(|e| Failure::Run(e.to_string()))?;
        return Ok(ExitCode::SUCCESS);
    }
    mirage_fuse::unmount(&mountpoint).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EBUSY) {
            " (a process has a file open or its working directory inside; close it, or use --lazy)"
        } else {
            ""
        };
        Failure::Run(format!("cannot unmount {}: {e}{hint}", mountpoint.display()))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// True when `path` is the mount point of some filesystem (per `/proc/self/mountinfo`).
fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| unescape(point) == path.as_os_str().to_string_lossy())
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 4).and_then(|oct| u8::from_str_radix(oct, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "interrupted",
        libc::SIGTERM => "terminated",
        libc::SIGHUP => "hung up",
        _ => "signalled",
    }
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/tmp/with\040space\011tab"), "/tmp/with space\ttab");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\x"), r"/odd\x");
    }
}
