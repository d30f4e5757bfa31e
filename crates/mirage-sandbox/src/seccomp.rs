//! A seccomp filter for what Landlock cannot stop: typing into the terminal.
//!
//! The command keeps the terminal it was started from, so that interactive agents work. With
//! `TIOCSTI` it could push characters into that terminal's input, which the user's shell reads
//! once the sandbox has ended: commands run outside. `TIOCLINUX` can do the same on a virtual
//! console. Both are refused with `EPERM` (as kernels built without legacy `TIOCSTI` do);
//! every other call is allowed.
//!
//! The filter checks the architecture a call comes from: the 32-bit entry points of the same
//! machine number `ioctl` differently, and x32 calls (on x86-64) and calls of any other
//! architecture are refused altogether.

use libc::{sock_filter, sock_fprog};

/// `AUDIT_ARCH_*` of the native calls and of the 32-bit compatibility calls, with the
/// number of `ioctl` in each.
#[cfg(target_arch = "x86_64")]
mod arch {
    pub(super) const NATIVE: u32 = 0xC000_003E;
    pub(super) const NATIVE_IOCTL: u32 = 16;
    pub(super) const COMPAT: u32 = 0x4000_0003;
    pub(super) const COMPAT_IOCTL: u32 = 54;
    /// Calls of the x32 ABI carry this bit in their number.
    pub(super) const X32_BIT: u32 = 0x4000_0000;
}

#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
mod arch {
    pub(super) const NATIVE: u32 = 0xC000_00B7;
    pub(super) const NATIVE_IOCTL: u32 = 29;
    pub(super) const COMPAT: u32 = 0x4000_0028;
    pub(super) const COMPAT_IOCTL: u32 = 54;
    /// No such ABI here: no number has this bit.
    pub(super) const X32_BIT: u32 = 0;
}

#[cfg(not(any(target_arch = "x86_64", all(target_arch = "aarch64", target_endian = "little"))))]
compile_error!("the sandbox's seccomp filter knows x86-64 and little-endian aarch64 only");

/// Offset of the call's number in `struct seccomp_data`.
const NR: u32 = 0;
/// Offset of the calling architecture (`AUDIT_ARCH_*`).
const ARCH: u32 = 4;
/// The low half of the second argument (the `ioctl` request, an `unsigned int`).
const REQUEST: u32 = 16 + 8;

/// Loads the 32-bit word at `offset` of `struct seccomp_data`.
const fn load(offset: u32) -> sock_filter {
    sock_filter { code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, jt: 0, jf: 0, k: offset }
}

/// Jumps `jt` instructions ahead when the accumulator equals `k`, else `jf`.
const fn jump_if(k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k }
}

/// Jumps `jt` ahead when the accumulator has any bit of `k`, else `jf`.
const fn jump_if_any(k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code: (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16, jt, jf, k }
}

/// Ends the filter with the verdict `k`.
const fn ret(k: u32) -> sock_filter {
    sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k }
}

/// The filter program.
fn program() -> Vec<sock_filter> {
    let allow = ret(libc::SECCOMP_RET_ALLOW);
    let refuse = ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
    let unsupported = ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
    // Jump offsets count from the next instruction.
    vec![
        /* 0 */ load(ARCH),
        /* 1 */ jump_if(arch::NATIVE, 0, 3),
        /* 2 */ load(NR),
        /* 3 */ jump_if_any(arch::X32_BIT, 10, 0),
        /* 4 */ jump_if(arch::NATIVE_IOCTL, 4, 3),
        /* 5 */ jump_if(arch::COMPAT, 0, 8),
        /* 6 */ load(NR),
        /* 7 */ jump_if(arch::COMPAT_IOCTL, 1, 0),
        /* 8 */ allow,
        /* 9 */ load(REQUEST),
        /* 10 */ jump_if(libc::TIOCSTI as u32, 2, 0),
        /* 11 */ jump_if(libc::TIOCLINUX as u32, 1, 0),
        /* 12 */ allow,
        /* 13 */ refuse,
        /* 14 */ unsupported,
    ]
}

/// Installs the filter on the calling thread, inherited by everything it starts. Needs
/// `no_new_privs` (or `CAP_SYS_ADMIN`).
pub(crate) fn forbid_terminal_input() -> Result<(), String> {
    let program = program();
    let prog = sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
    // SAFETY: `prog` points at a filter that lives across the call; the kernel copies it.
    let done =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const sock_fprog) };
    if done != 0 {
        return Err(format!("cannot install the seccomp filter: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
