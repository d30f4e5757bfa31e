//! Signals taken synchronously by the supervisor.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Signals taken synchronously, blocked for every thread started afterwards.
pub(crate) struct Signals(libc::sigset_t);

impl Signals {
    pub(crate) fn block(signals: &[i32]) -> Self {
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
    pub(crate) fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos().into() };
        // SAFETY: valid set and timeout; no siginfo wanted.
        let signal = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        (signal > 0).then_some(signal)
    }
}

/// How long a process asked to end by a relayed SIGTERM has before it is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

impl Signals {
    /// Forwards every signal of the set to process `pid` until the returned relay is dropped;
    /// a process still there [`GRACE`] after a SIGTERM is killed (a command that ignores it
    /// does not keep the supervisor, and the session it holds, forever; one that ignores
    /// SIGHUP, as under `nohup`, is left alone). Signals go through a pidfd where the kernel
    /// has them, so a recycled process id is never hit.
    pub(crate) fn relay_to(&self, pid: u32) -> Relay {
        let (set, stop) = (Signals(self.0), Arc::new(AtomicBool::new(false)));
        let flag = stop.clone();
        // SAFETY: pidfd_open on a child of this process; the descriptor is owned below.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: a fresh descriptor, owned from here.
        let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });
        let send = move |signal: i32| match &pidfd {
            // SAFETY: a pidfd this thread owns, and no siginfo.
            Some(fd) => unsafe {
                libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), signal, std::ptr::null::<u8>(), 0);
            },
            // SAFETY: signalling a child of this process (without pidfds, as kernels before
            // 5.3 have none).
            None => unsafe {
                libc::kill(pid as libc::pid_t, signal);
            },
        };
        let thread = std::thread::spawn(move || {
            let mut asked: Option<std::time::Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                let signal = set.wait(Duration::from_millis(100));
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                match signal {
                    Some(signal) => {
                        send(signal);
                        if signal == libc::SIGTERM {
                            asked.get_or_insert_with(std::time::Instant::now);
                        }
                    }
                    None if asked.is_some_and(|at| at.elapsed() >= GRACE) => {
                        send(libc::SIGKILL);
                        asked = None;
                        let _ = writeln!(
                            std::io::stderr(),
                            "mirage-run: the command still ran {} s after SIGTERM: killed it",
                            GRACE.as_secs()
                        );
                    }
                    None => {}
                }
            }
        });
        drop(thread);
        Relay { stop }
    }
}

/// Forwards signals while it lives. Dropping it stops the forwarding at once; the thread
/// itself ends at its next wake-up (not waited for: that would cost up to its period).
pub(crate) struct Relay {
    stop: Arc<AtomicBool>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Ignores the terminal's Ctrl-C and Ctrl-\ (they reach the command directly, as in a shell).
pub(crate) fn ignore_terminal() {
    // SAFETY: installing SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}
