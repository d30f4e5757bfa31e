//! Conversions between core types and the plain objects JavaScript sees, and the one place
//! errors cross the boundary.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::FutureExt;
use napi::bindgen_prelude::{
    Either, FromNapiValue, PromiseRaw, ToNapiValue, TypeName, ValidateNapiValue, ValueType, within_runtime_if_available,
};
use napi::{Env, Status};
use napi::{check_status, sys};
use napi_derive::napi;

use mirage_core::{DirEntry, ErrorKind, FileType, Metadata};

/// The prefix that marks an error message as a Mirage error in JSON.
const ERROR_TAG: &str = "MIRAGE_ERROR:";

/// Turns a core error into a JavaScript error whose message the wrapper decodes into `code`,
/// `errno`, `path`, `syscall` and `conflicts`.
pub(crate) fn js_error(e: mirage_core::Error) -> napi::Error {
    let json = serde_json::json!({
        "code": e.kind().code(),
        "errno": e.errno(),
        "syscall": e.op(),
        "path": e.path().map(|p| p.to_string()),
        "mount": e.mount().map(|p| p.to_string()),
        "conflicts": e.conflicts().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "message": e.to_string(),
    });
    napi::Error::new(Status::GenericFailure, format!("{ERROR_TAG}{json}"))
}

/// Bytes to write: a string (as UTF-8) or any `Uint8Array`, told apart by `typeof` so that
/// neither shape pays for a failed conversion to the other.
pub struct Data(pub(crate) Bytes);

impl FromNapiValue for Data {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut kind = 0;
        // SAFETY: `env` and `value` come from the call being converted; the array's bytes
        // are copied before it returns.
        unsafe {
            check_status!(sys::napi_typeof(env, value, &mut kind))?;
            if kind == sys::ValueType::napi_string {
                Ok(Data(Bytes::from(String::from_napi_value(env, value)?.into_bytes())))
            } else {
                Ok(Data(Bytes::copy_from_slice(InPlace::<u8>::from_napi_value(env, value)?.slice())))
            }
        }
    }
}

impl TypeName for Data {
    fn type_name() -> &'static str {
        "string | Uint8Array"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

/// An element type of a typed array [`InPlace`] accepts.
pub trait Element: Copy {
    /// The napi typed array type holding it.
    const KIND: sys::napi_typedarray_type;
    /// The JavaScript class, for messages and declarations.
    const CLASS: &'static str;
}

impl Element for u8 {
    const KIND: sys::napi_typedarray_type = sys::TypedarrayType::uint8_array;
    const CLASS: &'static str = "Uint8Array";
}

impl Element for f64 {
    const KIND: sys::napi_typedarray_type = sys::TypedarrayType::float64_array;
    const CLASS: &'static str = "Float64Array";
}

/// A typed array argument, read or written in place during the call that received it.
///
/// napi-rs's slices record every borrow in a process-wide table behind a lock, which costs
/// about as much as a small read itself. This records nothing, which is sound because no
/// method keeps one past its call, nothing else is borrowed mutably from the same array in one
/// call, and no JavaScript runs while it is in use.
pub struct InPlace<T> {
    ptr: *mut T,
    len: usize,
}

impl<T: Element> InPlace<T> {
    /// The elements.
    pub(crate) fn slice(&mut self) -> &mut [T] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: the array is alive for the whole call (it is one of its arguments), `ptr`
        // points at its `len` elements, and this is the only reference to them (see above).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: Element> FromNapiValue for InPlace<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (mut kind, mut len, mut data, mut buffer, mut offset) =
            (0, 0, std::ptr::null_mut(), std::ptr::null_mut(), 0);
        // SAFETY: `env` and `value` come from the call being converted.
        check_status!(
            unsafe {
                sys::napi_get_typedarray_info(env, value, &mut kind, &mut len, &mut data, &mut buffer, &mut offset)
            },
            "expected a {}",
            T::CLASS
        )?;
        if kind != T::KIND {
            return Err(napi::Error::new(Status::InvalidArg, format!("expected a {}", T::CLASS)));
        }
        // `data` already points at the view's first element.
        Ok(InPlace { ptr: data.cast(), len })
    }
}

impl<T: Element> TypeName for InPlace<T> {
    fn type_name() -> &'static str {
        T::CLASS
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl<T: Element> ValidateNapiValue for InPlace<T> {}

/// A value now, or a promise of it.
pub(crate) type Settled<'env, T> = Either<T, PromiseRaw<'env, T>>;

/// Runs `fut`: when it completes on the first poll (no I/O to wait for), its value is
/// returned at once; otherwise it continues on the tokio runtime and a promise is returned.
pub(crate) fn settle<'env, T, F>(env: &'env Env, fut: F) -> napi::Result<Settled<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = mirage_core::Result<T>> + Send + 'static,
{
    settle_map(env, fut, |_, value| Ok(value), std::convert::identity)
}

/// As [`settle`], but the value is converted with `now` when it is ready at once (where an
/// environment is at hand, e.g. to copy bytes into a JavaScript-owned buffer) and with
/// `later` when it arrives on another thread.
pub(crate) fn settle_map<'env, O, R, T, F>(
    env: &'env Env,
    fut: F,
    now: impl FnOnce(&'env Env, O) -> napi::Result<R>,
    later: fn(O) -> T,
) -> napi::Result<Either<R, PromiseRaw<'env, T>>>
where
    T: ToNapiValue + Send + 'static,
    O: Send + 'static,
    F: Future<Output = mirage_core::Result<O>> + Send + 'static,
{
    let mut fut = Box::pin(fut);
    // Inside the runtime's context: a remote resource may start I/O on the first poll.
    match within_runtime_if_available(|| fut.as_mut().now_or_never()) {
        Some(result) => now(env, result.map_err(js_error)?).map(Either::A),
        None => env.spawn_future(async move { fut.await.map(later).map_err(js_error) }).map(Either::B),
    }
}

/// Numbers [`fill_stat`] writes per entry.
pub(crate) const STAT_SLOTS: usize = 6;

/// Writes the numbers of `meta` into `out` (kind code, size, mode, mtime, atime, overlay
/// stamp) and returns its version, or `None` when the version is the overlay stamp in slot 5
/// (the common case, which then costs no string): a cheaper crossing than an object per call.
pub(crate) fn fill_stat(out: &mut [f64], meta: Metadata) -> napi::Result<Option<String>> {
    if out.len() < STAT_SLOTS {
        return Err(napi::Error::new(Status::InvalidArg, "stat scratch needs 6 slots"));
    }
    out[0] = match meta.file_type {
        FileType::File => 0.0,
        FileType::Dir => 1.0,
        FileType::Symlink => 2.0,
    };
    out[1] = meta.size as f64;
    out[2] = f64::from(meta.mode);
    out[3] = millis(meta.mtime);
    out[4] = millis(meta.atime);
    match meta.version.0.strip_prefix('o').and_then(|stamp| stamp.parse::<u64>().ok()) {
        Some(stamp) if stamp < 1 << 53 => {
            out[5] = stamp as f64;
            Ok(None)
        }
        _ => Ok(Some(meta.version.0)),
    }
}

/// Runs `fut` to completion on the calling thread if it needs no waiting; otherwise fails
/// with `EAGAIN` (a sync call cannot wait for a resource without blocking Node's thread).
pub(crate) fn now<T, F>(fut: F) -> napi::Result<T>
where
    F: Future<Output = mirage_core::Result<T>>,
{
    match within_runtime_if_available(|| fut.now_or_never()) {
        Some(result) => result.map_err(js_error),
        None => Err(must_wait()),
    }
}

/// True when `path`, as JavaScript gave it, is the only string that names the file a write
/// went to, which the wrapper's content cache relies on: absolute and normalised (the path
/// written is the path given, so no link was followed either), and converted without a
/// replacement (every unpaired surrogate becomes U+FFFD, so several strings name that file).
pub(crate) fn names_itself(written: &mirage_core::path::VPath, path: &str) -> bool {
    written.as_str() == path && !path.contains(char::REPLACEMENT_CHARACTER)
}

/// The error of a sync call whose operation would have to wait.
pub(crate) fn must_wait() -> napi::Error {
    js_error(
        mirage_core::Error::new(ErrorKind::Unsupported, "sync call")
            .with_detail("this mount must wait for I/O: use the async call"),
    )
}

/// Milliseconds since the epoch, as JavaScript dates count.
pub(crate) fn millis(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

/// The inverse of [`millis`].
pub(crate) fn from_millis(ms: f64) -> SystemTime {
    if ms >= 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(ms / 1e3)
    } else {
        UNIX_EPOCH - Duration::from_secs_f64(-ms / 1e3)
    }
}

pub(crate) fn type_name(t: FileType) -> String {
    match t {
        FileType::File => "file",
        FileType::Dir => "directory",
        FileType::Symlink => "symlink",
    }
    .to_owned()
}

pub(crate) fn parse_type(name: &str) -> Option<FileType> {
    match name {
        "file" => Some(FileType::File),
        "directory" => Some(FileType::Dir),
        "symlink" => Some(FileType::Symlink),
        _ => None,
    }
}

/// What `stat` reports, as a plain object.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct StatInfo {
    /// `"file"`, `"directory"` or `"symlink"`.
    pub kind: String,
    /// Size in bytes.
    pub size: f64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, in milliseconds since the epoch.
    pub mtime_ms: f64,
    /// Access time, in milliseconds since the epoch.
    pub atime_ms: f64,
    /// The entry's version token (an etag, mtime + size + inode, ...).
    pub version: String,
}

impl From<Metadata> for StatInfo {
    fn from(m: Metadata) -> Self {
        StatInfo {
            kind: type_name(m.file_type),
            size: m.size as f64,
            mode: m.mode,
            mtime_ms: millis(m.mtime),
            atime_ms: millis(m.atime),
            version: m.version.0,
        }
    }
}

/// One directory entry, as a plain object.
#[napi(object)]
#[derive(Clone, Debug)]
pub struct Dirent {
    /// The entry's name.
    pub name: String,
    /// `"file"`, `"directory"` or `"symlink"`.
    pub kind: String,
}

impl From<DirEntry> for Dirent {
    fn from(e: DirEntry) -> Self {
        Dirent { name: e.name, kind: type_name(e.file_type) }
    }
}
