//! The hottest calls (`readFile`, `writeFile`, `stat`, `lstat`, `exists`, and their sync
//! variants) as plain Node-API functions, without napi-rs's per-call bookkeeping.
//!
//! For every method call napi-rs checks a type tag on `this` and records the borrow of the
//! instance, and of each typed array argument, in a process-wide table behind a lock. On a
//! small read from memory that bookkeeping costs more than the read. The functions here take
//! the session as an external value that the wrapper keeps in a private field, read their
//! arguments with raw Node-API calls, and run the operation on the calling thread.
//!
//! The async variants run here only where the operation cannot start I/O: the path is plain
//! and its mount answers at once (memory, host files). Elsewhere they return `undefined` and
//! the wrapper calls the promise-returning method, which runs the operation once. Should an
//! operation here still have to wait (for another writer of the session), it has changed
//! nothing at that point (each changes the session, if at all, after its last wait): it is
//! dropped, and the promise path runs it again. The sync variants always try, and throw when
//! the operation would have to wait.

use std::ffi::c_void;
use std::future::Future;
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use futures::FutureExt;
use napi::bindgen_prelude::{FromNapiValue, JsObjectValue, Object, ToNapiValue, Unknown, within_runtime_if_available};
use napi::{Env, JsError, Status, check_status, sys};

use crate::convert::{Data, InPlace, fill_stat, js_error, must_wait, names_itself};

/// What the external value a session hands to JavaScript points at.
pub(crate) struct Handle(mirage_core::Session);

/// Wraps `session` in an external value for the functions here; it is freed when JavaScript
/// collects the value.
pub(crate) fn handle(env: &Env, session: mirage_core::Session) -> napi::Result<Unknown<'_>> {
    unsafe extern "C" fn free(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
        // SAFETY: `data` is the box made below, and Node calls this once.
        drop(unsafe { Box::from_raw(data.cast::<Handle>()) });
    }
    let data = Box::into_raw(Box::new(Handle(session))).cast::<c_void>();
    let mut value = ptr::null_mut();
    // SAFETY: `env` is live for this call; on failure the box is freed here.
    unsafe {
        if let Err(e) =
            check_status!(sys::napi_create_external(env.raw(), data, Some(free), ptr::null_mut(), &mut value))
        {
            free(env.raw(), data, ptr::null_mut());
            return Err(e);
        }
        Ok(Unknown::from_raw_unchecked(env.raw(), value))
    }
}

/// The body of one function: its environment and arguments in, its result out.
type Body = fn(sys::napi_env, &[sys::napi_value]) -> napi::Result<sys::napi_value>;

/// The functions, by the names the wrapper calls them by.
const FUNCTIONS: [(&str, Body); 10] = [
    ("readFile", |env, args| read_file(env, args, false)),
    ("readFileSync", |env, args| read_file(env, args, true)),
    ("writeFile", |env, args| write_file(env, args, false)),
    ("writeFileSync", |env, args| write_file(env, args, true)),
    ("stat", |env, args| stat(env, args, true, false)),
    ("statSync", |env, args| stat(env, args, true, true)),
    ("lstat", |env, args| stat(env, args, false, false)),
    ("lstatSync", |env, args| stat(env, args, false, true)),
    ("exists", |env, args| exists(env, args, false)),
    ("existsSync", |env, args| exists(env, args, true)),
];

/// An object holding every function of this module.
pub(crate) fn functions(env: &Env) -> napi::Result<Object<'_>> {
    let mut object = Object::new(env)?;
    for (name, body) in FUNCTIONS {
        let mut function = ptr::null_mut();
        // SAFETY: `env` is live; the name is passed with its length; `body` is a plain function
        // pointer, which `trampoline` turns back into one.
        unsafe {
            check_status!(sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(trampoline),
                body as *mut c_void,
                &mut function,
            ))?;
            object.set_named_property(name, Unknown::from_raw_unchecked(env.raw(), function))?;
        }
    }
    Ok(object)
}

/// Most arguments any function here takes.
const MAX_ARGS: usize = 4;

/// Calls the [`Body`] a function was created with, and throws what it fails with.
unsafe extern "C" fn trampoline(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = MAX_ARGS;
    let mut argv = [ptr::null_mut(); MAX_ARGS];
    let mut data = ptr::null_mut();
    // SAFETY: Node calls this with a live environment and callback info.
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), &mut data) };
    let result = if status != sys::Status::napi_ok {
        Err(napi::Error::new(Status::from(status), "cannot read the call's arguments"))
    } else {
        // SAFETY: `data` is the `Body` this function was created with in `functions`.
        let body = unsafe { std::mem::transmute::<*mut c_void, Body>(data) };
        // Only the arguments passed: a missing one fails in `arg`.
        catch_unwind(AssertUnwindSafe(|| body(env, &argv[..argc.min(MAX_ARGS)])))
            .unwrap_or_else(|_| Err(napi::Error::new(Status::GenericFailure, "internal error: a native call panicked")))
    };
    match result {
        Ok(value) => value,
        Err(e) => {
            // SAFETY: `env` is live, and no exception is pending (nothing above threw).
            unsafe { JsError::from(e).throw_into(env) };
            ptr::null_mut()
        }
    }
}

/// Argument `i`, or an error naming it.
fn arg(args: &[sys::napi_value], i: usize) -> napi::Result<sys::napi_value> {
    args.get(i).copied().ok_or_else(|| napi::Error::new(Status::InvalidArg, format!("argument {i} is missing")))
}

/// The session behind argument 0.
fn session(env: sys::napi_env, args: &[sys::napi_value]) -> napi::Result<&mirage_core::Session> {
    let mut data = ptr::null_mut();
    // SAFETY: the wrapper passes the external made by `handle` here, which stays alive while the
    // call runs (it is an argument); Node checks that the value is an external at all.
    unsafe {
        check_status!(sys::napi_get_value_external(env, arg(args, 0)?, &mut data), "expected a session handle")?;
        Ok(&(*data.cast::<Handle>()).0)
    }
}

/// Paths up to this many UTF-16 units are read without a heap allocation.
const INLINE_PATH: usize = 512;

/// Runs `f` on argument `i` as UTF-8 text.
///
/// The string is read as UTF-16 and converted here: V8's own UTF-8 conversion costs several
/// times more than a copy of the units, and paths are mostly ASCII, which converts by
/// narrowing. Unpaired surrogates become U+FFFD, as in Node-API's UTF-8 conversion.
fn with_str<T>(env: sys::napi_env, args: &[sys::napi_value], i: usize, f: impl FnOnce(&str) -> T) -> napi::Result<T> {
    let value = arg(args, i)?;
    let mut units = [MaybeUninit::<u16>::uninit(); INLINE_PATH];
    let mut len = 0;
    // SAFETY: `units` has room for INLINE_PATH units, the terminating NUL included.
    unsafe {
        check_status!(
            sys::napi_get_value_string_utf16(env, value, units.as_mut_ptr().cast(), INLINE_PATH, &mut len),
            "expected a string"
        )?;
    }
    if len + 1 >= INLINE_PATH {
        // Possibly cut: convert the whole string.
        // SAFETY: `env` and `value` come from the call.
        return Ok(f(&unsafe { String::from_napi_value(env, value) }?));
    }
    // SAFETY: Node wrote the first `len` units.
    let units = unsafe { std::slice::from_raw_parts(units.as_ptr().cast::<u16>(), len) };
    if units.iter().all(|&unit| unit < 0x80) {
        let mut ascii = [MaybeUninit::<u8>::uninit(); INLINE_PATH];
        for (byte, &unit) in ascii.iter_mut().zip(units) {
            byte.write(unit as u8);
        }
        // SAFETY: the first `len` bytes were written above, each below 0x80.
        let ascii = unsafe { std::slice::from_raw_parts(ascii.as_ptr().cast::<u8>(), len) };
        return Ok(f(std::str::from_utf8(ascii).expect("ASCII is UTF-8")));
    }
    let text: String =
        char::decode_utf16(units.iter().copied()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    Ok(f(&text))
}

/// Runs the operation `op` makes on `path` on this thread, when a sync call asks or when it
/// cannot start I/O (see the module's documentation): its result, or `None` when it is to be
/// handed over or would have to wait. An operation that may start I/O (a sync call on such a
/// mount) is polled inside the runtime's context, as a remote resource may start it on the
/// first poll.
fn attempt<T, F>(
    session: &mirage_core::Session,
    path: &str,
    sync: bool,
    op: impl FnOnce() -> F,
) -> Option<napi::Result<T>>
where
    F: Future<Output = mirage_core::Result<T>>,
{
    let result = if session.is_immediate(path) {
        op().now_or_never()
    } else if sync {
        within_runtime_if_available(|| op().now_or_never())
    } else {
        return None;
    };
    result.map(|result| result.map_err(js_error))
}

/// What a call returns when its operation would have to wait: `undefined` for the async
/// variant (the wrapper takes the promise path), an error for the sync one.
fn waiting(env: sys::napi_env, sync: bool) -> napi::Result<sys::napi_value> {
    if sync {
        return Err(must_wait());
    }
    // SAFETY: `env` is live.
    unsafe { <()>::to_napi_value(env, ()) }
}

/// `(handle, path, pool, offset)`: copies the file into `pool` at `offset` when it fits and
/// returns its length, or returns a new buffer.
fn read_file(env: sys::napi_env, args: &[sys::napi_value], sync: bool) -> napi::Result<sys::napi_value> {
    let session = session(env, args)?;
    // SAFETY: the pool and offset are arguments of this call.
    let (mut pool, offset) =
        unsafe { (InPlace::<u8>::from_napi_value(env, arg(args, 2)?)?, u32::from_napi_value(env, arg(args, 3)?)?) };
    let room = pool.slice().get_mut(offset as usize..).unwrap_or_default();
    let read = with_str(env, args, 1, |path| match session.read_held_into(path, room) {
        Some(len) => Some(Ok(Read::Copied(len))),
        None => attempt(session, path, sync, || session.read_file(path)).map(|bytes| bytes.map(Read::Bytes)),
    })?;
    let bytes = match read {
        None => return waiting(env, sync),
        Some(read) => match read? {
            // SAFETY: `env` is live.
            Read::Copied(len) => return unsafe { u32::to_napi_value(env, len as u32) },
            Read::Bytes(bytes) => bytes,
        },
    };
    let start = offset as usize;
    if let Some(target) = pool.slice().get_mut(start..start + bytes.len()) {
        target.copy_from_slice(&bytes);
        // SAFETY: `env` is live.
        return unsafe { u32::to_napi_value(env, bytes.len() as u32) };
    }
    let (mut value, mut data) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: Node copies `bytes.len()` bytes from a live slice.
    unsafe {
        check_status!(sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut value))?
    };
    Ok(value)
}

/// What a read produced: its length, copied into the pool already, or its content.
enum Read {
    Copied(usize),
    Bytes(bytes::Bytes),
}

/// `(handle, path, data)`: creates or replaces the file; true when the path written is the
/// path given (absolute, normalised, no link followed), which the wrapper's cache relies on.
fn write_file(env: sys::napi_env, args: &[sys::napi_value], sync: bool) -> napi::Result<sys::napi_value> {
    let session = session(env, args)?;
    // SAFETY: the data is an argument of this call, copied before it returns.
    let data = unsafe { Data::from_napi_value(env, arg(args, 2)?)? };
    let written = with_str(env, args, 1, |path| {
        attempt(session, path, sync, || session.write_file(path, data.0))
            .map(|result| result.map(|written| names_itself(&written, path)))
    })?;
    match written {
        // SAFETY: `env` is live.
        Some(plain) => unsafe { bool::to_napi_value(env, plain?) },
        None => waiting(env, sync),
    }
}

/// `(handle, path, scratch)`: fills `scratch` as the napi-rs `stat` does and returns the
/// version, or `null` when it is the overlay stamp in the scratch.
fn stat(env: sys::napi_env, args: &[sys::napi_value], follow: bool, sync: bool) -> napi::Result<sys::napi_value> {
    let session = session(env, args)?;
    let found = with_str(env, args, 1, |path| {
        if follow {
            attempt(session, path, sync, || session.stat(path))
        } else {
            attempt(session, path, sync, || session.lstat(path))
        }
    })?;
    let Some(meta) = found else { return waiting(env, sync) };
    // SAFETY: the scratch array is an argument of this call.
    let mut scratch = unsafe { InPlace::<f64>::from_napi_value(env, arg(args, 2)?)? };
    let version = fill_stat(scratch.slice(), meta?)?;
    // SAFETY: `env` is live.
    unsafe { Option::<String>::to_napi_value(env, version) }
}

/// `(handle, path)`: true when `path` exists.
fn exists(env: sys::napi_env, args: &[sys::napi_value], sync: bool) -> napi::Result<sys::napi_value> {
    let session = session(env, args)?;
    match with_str(env, args, 1, |path| attempt(session, path, sync, || session.exists(path)))? {
        // SAFETY: `env` is live.
        Some(found) => unsafe { bool::to_napi_value(env, found?) },
        None => waiting(env, sync),
    }
}
