//! The terminal a sandboxed command shares with `mirage-run`, put back as it was once the
//! command ends.
//!
//! The command keeps the caller's terminal (interactive agents need it), so it may leave it
//! changed: raw mode and no echo after a crash, or its own process group in front with
//! `TOSTOP` set, which would stop `mirage-run` (or fail its writes) as it reports the changes
//! and applies `--on-exit`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// The terminal's state before the command ran.
pub(crate) struct Terminal {
    tty: OwnedFd,
    settings: libc::termios,
    /// Whether `mirage-run` was in front: then it takes the front back.
    in_front: bool,
}

impl Terminal {
    /// The controlling terminal's state, if there is one.
    pub(crate) fn save() -> Option<Terminal> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open("/dev/tty")
            .ok()?;
        let tty = OwnedFd::from(tty);
        // SAFETY: a zeroed termios filled in by the kernel for a descriptor this owns.
        let settings = unsafe {
            let mut settings: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(tty.as_raw_fd(), &mut settings) == 0).then_some(settings)?
        };
        // SAFETY: plain queries of this process and its terminal.
        let in_front = unsafe { libc::tcgetpgrp(tty.as_raw_fd()) == libc::getpgrp() };
        Some(Terminal { tty, settings, in_front })
    }

    /// If `mirage-run` was in front, takes the front back and puts the settings back (a
    /// `mirage-run` started in the background leaves the terminal to whoever is in front).
    pub(crate) fn restore(&self) {
        if !self.in_front {
            return;
        }
        let fd = self.tty.as_raw_fd();
        // SAFETY: SIGTTOU is ignored around calls that a process not in front may make only
        // then; the disposition is put back after.
        unsafe {
            let previous = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            if libc::tcgetpgrp(fd) != libc::getpgrp() {
                libc::tcsetpgrp(fd, libc::getpgrp());
            }
            libc::tcsetattr(fd, libc::TCSADRAIN, &self.settings);
            libc::signal(libc::SIGTTOU, previous);
        }
    }
}
