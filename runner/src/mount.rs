//! `mirage-run mount` and `mirage-run unmount`: a session over a host directory, served with
//! FUSE for people and programs to look at and work in.

use std::ffi::OsString;

use lexopt::ValueExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mirage_core::{ChangeKind, CommitOptions, LocalResource, Mirage, MountOptions, Session};

use crate::{Failure, UsageError};

/// What happens to the session's changes when the mount ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnExit {
    /// Kept in the store, to mount again later.
    Keep,
    /// Written back to the source directory.
    Commit,
    /// Dropped.
    Discard,
}

/// The arguments of `mirage-run mount`.
#[derive(Debug)]
pub(crate) struct MountArgs {
    mountpoint: PathBuf,
    source: PathBuf,
    read_only: bool,
    on_exit: Option<OnExit>,
    store: Option<PathBuf>,
    session: Option<String>,
}

impl MountArgs {
    /// Reads the arguments after `mount`.
    pub(crate) fn parse(parser: &mut lexopt::Parser) -> Result<Self, UsageError> {
        use lexopt::Arg::{Long, Value};
        let (mut mountpoint, mut source, mut read_only, mut on_exit, mut store, mut session) =
            (None, None, false, None, None, None);
        while let Some(arg) = parser.next()? {
            match arg {
                Long("source") => source = Some(PathBuf::from(parser.value()?)),
                Long("read-only") => read_only = true,
                Long("on-exit") => {
                    on_exit = Some(match parser.value()?.string()?.as_str() {
                        "keep" => OnExit::Keep,
                        "commit" => OnExit::Commit,
                        "discard" => OnExit::Discard,
                        other => {
                            return Err(UsageError(format!("--on-exit takes keep, commit or discard, not '{other}'")));
                        }
                    })
                }
                Long("store") => store = Some(PathBuf::from(parser.value()?)),
                Long("session") => session = Some(parser.value()?.string()?),
                Value(path) if mountpoint.is_none() => mountpoint = Some(PathBuf::from(path)),
                other => return Err(other.unexpected().into()),
            }
        }
        let mountpoint = mountpoint.ok_or_else(|| UsageError("mount needs a MOUNTPOINT".into()))?;
        if on_exit == Some(OnExit::Keep) && store.is_none() {
            return Err(UsageError(
                "--on-exit keep needs --store DIR (a session without a store ends with the process)".into(),
            ));
        }
        if session.is_some() && store.is_none() {
            return Err(UsageError("--session NAME needs --store DIR".into()));
        }
        let source = match source {
            Some(source) => source,
            None => {
                std::env::current_dir().map_err(|e| UsageError(format!("cannot read the current directory: {e}")))?
            }
        };
        Ok(MountArgs { mountpoint, source, read_only, on_exit, store, session })
    }
}

/// Serves the session until a signal or an unmount, then reports what changed and applies
/// `--on-exit`.
pub(crate) fn mount(args: MountArgs) -> Result<ExitCode, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::Run(format!("{what}: {e}"));
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
    let on_exit = args.on_exit.unwrap_or(if args.store.is_some() { OnExit::Keep } else { OnExit::Discard });

    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail("cannot start", &e))?;
    let mirage = match &args.store {
        Some(store) => {
            Mirage::open(store).map_err(|e| fail(&format!("cannot open the store {}", store.display()), &e))?
        }
        None => Mirage::new(),
    };
    let resource = LocalResource::new(&source).map_err(|e| fail("cannot open the source", &e))?;
    mirage
        .mount("/", Arc::new(resource), MountOptions { read_only: args.read_only })
        .map_err(|e| fail("cannot mount the source", &e))?;
    let name = args.session.clone().unwrap_or_else(|| "mount".to_owned());
    let session = match mirage.session(&name) {
        Ok(session) => session,
        Err(_) => mirage.create_session(&name).map_err(|e| fail("cannot create the session", &e))?,
    };

    // Signals are taken synchronously below: block them before any thread starts, so that
    // every thread inherits the mask.
    let signals = Signals::block(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    let options = mirage_fuse::Options {
        read_only: args.read_only,
        name: format!("mirage:{name}"),
        runtime: Some(runtime.handle().clone()),
        ..mirage_fuse::Options::default()
    };
    let served = mirage_fuse::mount(&session, &mountpoint, &options).map_err(|e| fail("cannot mount", &e))?;
    eprintln!(
        "mirage-run: session '{name}' over {} is mounted at {}\nmirage-run: stop with Ctrl-C or `mirage-run unmount {1}`",
        source.display(),
        mountpoint.display()
    );
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
    finish(&runtime, &session, &source, on_exit)
}

/// Reports what the session changed and applies `on_exit`.
fn finish(
    runtime: &tokio::runtime::Runtime,
    session: &Session,
    source: &Path,
    on_exit: OnExit,
) -> Result<ExitCode, Failure> {
    let changes =
        runtime.block_on(session.diff()).map_err(|e| Failure::Run(format!("cannot list the changes: {e}")))?;
    let count = |kind: ChangeKind| changes.iter().filter(|c| c.kind == kind).count();
    let bytes: u64 = changes.iter().filter_map(|c| c.new_size).sum();
    let summary = format!(
        "{} added, {} modified, {} deleted ({bytes} bytes written)",
        count(ChangeKind::Added),
        count(ChangeKind::Modified),
        count(ChangeKind::Deleted)
    );
    match on_exit {
        _ if changes.is_empty() => eprintln!("mirage-run: no changes"),
        OnExit::Discard => {
            eprintln!("mirage-run: {summary}: discarded (--on-exit commit writes them to {})", source.display())
        }
        OnExit::Keep => {
            session.flush().map_err(|e| Failure::Run(format!("cannot save the session: {e}")))?;
            eprintln!("mirage-run: {summary}: kept in the store (mount it again, or --on-exit commit)");
        }
        OnExit::Commit => {
            eprintln!("mirage-run: {summary}: committing to {} ...", source.display());
            let report = runtime
                .block_on(session.commit(CommitOptions::default()))
                .map_err(|e| Failure::Run(format!("commit failed (the session keeps its changes): {e}")))?;
            eprintln!("mirage-run: committed {} changes to {}", report.applied.len(), source.display());
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// Signals taken synchronously, blocked for every thread started afterwards.
struct Signals(libc::sigset_t);

impl Signals {
    fn block(signals: &[i32]) -> Self {
        // SAFETY: the set is initialised by sigemptyset before use; the calls only change
        // this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals(set)
        }
    }

    /// The next pending signal of the set, waiting at most `timeout`.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos().into() };
        // SAFETY: valid set and timeout; no siginfo wanted.
        let signal = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (signal > 0).then_some(signal)
    }
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
