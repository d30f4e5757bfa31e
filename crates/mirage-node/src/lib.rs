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
/// It is built not to ask for transparent huge pages; the package's JavaScript sets its
/// other options through the environment (`npm/vfs/src/allocator.ts`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod convert;
mod fast;
mod js_resource;
mod mirage;
mod session;

pub use js_resource::{ReplyError, ResourceCall, ResourceReply};
pub use mirage::{ContentUsage, Mirage, Resource, content_usage, custom, local, memory, remote, set_content_limit};
pub use session::Session;

/// The hottest session calls as plain functions, for the wrapper (see `fast.rs`): `readFile`,
/// `writeFile`, `stat`, `lstat`, `exists` and their sync variants, each taking a session's
/// `handle()` first.
#[napi_derive::napi(ts_return_type = "Record<string, Function>")]
pub fn fast_calls(env: &napi::Env) -> napi::Result<napi::bindgen_prelude::Object<'_>> {
    fast::functions(env)
}
