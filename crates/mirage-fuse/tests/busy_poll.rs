//! Busy polling, on by default, holds the machine's CPU latency request at zero while the mount
//! is busy and withdraws it once the mount goes quiet. The request is machine-wide and every
//! mount of every test polls where it may, so this test is a file of its own (and runs alone
//! under nextest, see `.config/nextest.toml`).

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::Mounted;

/// The CPU latency the kernel currently honours: the strictest request in force.
fn cpu_latency_target() -> i32 {
    use std::io::Read;
    let mut value = [0u8; 4];
    fs::File::open("/dev/cpu_dma_latency").unwrap().read_exact(&mut value).unwrap();
    i32::from_ne_bytes(value)
}

/// Whether the latency request is zero right after one of five tries of `request`: a test
/// thread stalled past the quiet period after a request could miss one.
fn held_after(mut request: impl FnMut(usize)) -> bool {
    (0..5).any(|i| {
        request(i);
        cpu_latency_target() == 0
    })
}

#[test]
fn busy_polling_asks_for_zero_latency_only_while_requests_come() {
    let mut m = Mounted::with_options(|_| {}, &mirage_fuse::Options::default());
    let polling = m.mount.as_ref().unwrap().busy_polling();
    let can_poll = fs::OpenOptions::new().write(true).open("/dev/cpu_dma_latency").is_ok();
    assert_eq!(polling, can_poll, "on by default, in effect exactly where the latency device opens (root)");
    if !polling {
        return;
    }
    let wait_for_quiet = || {
        let deadline = Instant::now() + Duration::from_secs(2);
        while cpu_latency_target() == 0 {
            assert!(Instant::now() < deadline, "still held 2 s after the last request");
            std::thread::sleep(Duration::from_millis(1));
        }
        cpu_latency_target()
    };
    // Mounting made requests of its own.
    let quiet = wait_for_quiet();
    assert!(held_after(|i| fs::write(m.path(&format!("f{i}")), "x").unwrap()), "idle CPUs poll while requests come");
    assert_eq!(wait_for_quiet(), quiet, "withdrawn when the mount goes quiet");
    assert!(
        held_after(|i| assert_eq!(
            fs::metadata(m.path(&format!("missing{i}"))).map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        )),
        "taken again by the next request"
    );
    m.mount.take().unwrap().unmount().unwrap();
    assert_eq!(cpu_latency_target(), quiet, "withdrawn with the mount");
}

#[test]
fn busy_polling_can_be_turned_off() {
    let options = mirage_fuse::Options { busy_poll: false, ..mirage_fuse::Options::default() };
    let m = Mounted::with_options(|_| {}, &options);
    assert!(!m.mount.as_ref().unwrap().busy_polling());
    fs::write(m.path("f"), "x").unwrap();
    assert_eq!(fs::read_to_string(m.path("f")).unwrap(), "x");
}
