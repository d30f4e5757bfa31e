//! The `@mirage/vfs` Node.js addon: Mirage's mount table, resources and sessions for
//! TypeScript, through napi-rs.
//!
//! This crate is the native half; the package in `npm/vfs` wraps it in a `node:fs/promises`-like
//! API. Every operation that needs no waiting (memory mounts, local files, overlay hits)
//! completes on the calling thread and hands back its value at once, which the wrapper returns
//! as an already-settled promise; only operations that must wait (a resource written in
//! JavaScript, say) hop to a tokio thread. Errors cross as a JSON message that the wrapper
//! turns into an `Error` with `code`, `errno`, `path` and `syscall`, as node:fs does.

/// The addon allocates many small objects per call (paths, nodes, map nodes); mimalloc serves
/// them faster than the system allocator and keeps them out of the way of Node's own heap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_allow_thp` in the `mi_option_t` of the mimalloc.h this crate pins (v3; the Rust
/// bindings name no constant for it).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Keeps the addon's heap on small pages. With transparent huge pages, a small-file write cost
/// about 4 µs in some runs and about 9 µs in others (the heap grows by zeroed 2 MiB pages);
/// without them every run measured about 5 µs.
#[napi_derive::module_init]
fn init() {
    // SAFETY: setting an option is allowed at any time; it only affects later allocations.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
}

mod convert;
mod js_resource;
mod mirage;
mod session;

pub use js_resource::{ReplyError, ResourceCall, ResourceReply};
pub use mirage::{Mirage, Resource, custom, local, memory};
pub use session::Session;
