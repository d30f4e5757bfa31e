//! Signals taken synchronously by the supervisor.

use std::io::Write;
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

/// How long a process asked to end by a relayed signal has before it is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

impl Signals {
    /// Forwards every signal of the set to process `pid` until the returned relay is dropped;
    /// a process still there [`GRACE`] after the first is killed (a command that ignores
    /// SIGTERM does not keep the supervisor, and the session it holds, forever).
    pub(crate) fn relay_to(&self, pid: u32) -> Relay {
        let (set, stop) = (Signals(self.0), Arc::new(AtomicBool::new(false)));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut asked: Option<std::time::Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                let signal = set.wait(Duration::from_millis(100));
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let send = match signal {
                    Some(signal) => {
                        asked.get_or_insert_with(std::time::Instant::now);
                        signal
                    }
                    None if asked.is_some_and(|at| at.elapsed() >= GRACE) => {
                        let _ = writeln!(
                            std::io::stderr(),
                            "mirage-run: the command still runs {} s after the signal: killing it",
                            GRACE.as_secs()
                        );
                        asked = None;
                        libc::SIGKILL
                    }
                    None => continue,
                };
                // SAFETY: signalling a child of this process, which has not been waited for
                // while the relay runs.
                unsafe { libc::kill(pid as libc::pid_t, send) };
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
