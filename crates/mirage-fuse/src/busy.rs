//! Keeps idle CPUs polling while requests keep coming, where asked for and allowed.
//!
//! A request is a round trip between two threads: the kernel wakes a reading thread for it,
//! and the requesting thread again for the answer. When the CPU either runs on has halted,
//! waking it costs several times the request itself (on a virtual machine above all), while a
//! CPU that polls when idle notices the wake-up at once. So while the mount is busy it holds a
//! CPU latency request of zero through `/dev/cpu_dma_latency` (the kernel's PM QoS interface),
//! which keeps idle CPUs polling instead of halting, and it drops the request again once no
//! request has come for a while. Opening the device needs root; the kernel drops the latency
//! request when the device is closed, however the process ends.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::Thread;
use std::time::Duration;

/// How long the mount must go without a request before idle CPUs may halt again (between one
/// and two of these): far longer than the gaps between a program's requests while it works
/// through files, and short enough that each burst of work costs only a few milliseconds of
/// spinning after it.
const QUIET: Duration = Duration::from_millis(2);

/// The latency the kernel is asked for while the mount is busy: none, so idle CPUs poll.
const POLL: i32 = 0;

/// What withdraws the latency request (the kernel's `PM_QOS_DEFAULT_VALUE`).
const WITHDRAW: i32 = -1;

/// The latency request of one mount, and whether requests are coming.
#[derive(Debug)]
pub(crate) struct BusyPolling {
    device: File,
    /// The latency request is in force.
    held: AtomicBool,
    /// A request came since the watcher last looked.
    active: AtomicBool,
    /// Withdraws the latency request after a quiet period.
    watcher: Thread,
}

impl BusyPolling {
    /// Opens the latency device and starts the thread that withdraws the request when the
    /// mount goes quiet; `None` when the device cannot be opened (it needs root).
    pub(crate) fn start() -> Option<Arc<Self>> {
        let device = std::fs::OpenOptions::new().write(true).open("/dev/cpu_dma_latency").ok()?;
        let (send, receive) = std::sync::mpsc::channel::<Weak<Self>>();
        let watcher = std::thread::Builder::new()
            .name("mirage-fuse-busy".to_owned())
            .spawn(move || {
                if let Ok(busy) = receive.recv() {
                    watch(&busy);
                }
            })
            .ok()?;
        let busy = Arc::new(BusyPolling {
            device,
            held: AtomicBool::new(false),
            active: AtomicBool::new(false),
            watcher: watcher.thread().clone(),
        });
        send.send(Arc::downgrade(&busy)).ok()?;
        Some(busy)
    }

    /// Notes a request; the first after a quiet period makes idle CPUs poll. Costs two
    /// uncontended loads otherwise.
    pub(crate) fn request(&self) {
        if !self.active.load(Ordering::Relaxed) {
            self.active.store(true, Ordering::Relaxed);
        }
        if !self.held.load(Ordering::Relaxed) && !self.held.swap(true, Ordering::AcqRel) {
            self.ask(POLL);
            self.watcher.unpark();
        }
    }

    /// True while idle CPUs are asked to poll.
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    fn ask(&self, latency: i32) {
        // The device takes the value as four bytes; a failed write leaves the last request.
        let _ = (&self.device).write(&latency.to_ne_bytes());
    }
}

impl Drop for BusyPolling {
    fn drop(&mut self) {
        // The watcher finds the mount gone and ends; closing the device withdraws the request.
        self.watcher.unpark();
    }
}

/// Withdraws the latency request whenever a whole quiet period passes without a request,
/// until the mount is gone.
fn watch(busy: &Weak<BusyPolling>) {
    loop {
        match busy.upgrade() {
            Some(b) if b.is_held() => {
                drop(b);
                std::thread::park_timeout(QUIET);
            }
            Some(b) => {
                drop(b);
                std::thread::park();
            }
            None => return,
        }
        let Some(b) = busy.upgrade() else { return };
        if b.is_held() && !b.active.swap(false, Ordering::Relaxed) {
            b.ask(WITHDRAW);
            b.held.store(false, Ordering::Release);
        }
    }
}
