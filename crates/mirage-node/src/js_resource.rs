//! Resources written in JavaScript, called from Rust.
//!
//! The wrapper hands over one dispatch function: each primitive becomes a [`ResourceCall`]
//! and comes back as a [`ResourceReply`] (or a reply carrying an error code, which becomes the
//! matching [`ErrorKind`]). Calls run on Node's thread, so a session operation that reaches a
//! JavaScript resource always returns a promise, and sync variants refuse it.

use std::collections::HashSet;
use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use napi::Status;
use napi::bindgen_prelude::{Buffer, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;

use mirage_core::resource::refuse;
use mirage_core::{Capabilities, DirEntry, Error, ErrorKind, Metadata, Resource, Result, VPath, Version};

use crate::convert::{Dirent, StatInfo, from_millis, millis, parse_type};

/// The function the wrapper passes to `custom()`: called on Node's thread, not keeping the
/// process alive.
pub(crate) type Dispatch = ThreadsafeFunction<ResourceCall, Promise<ResourceReply>, ResourceCall, Status, false, true>;

/// One primitive for a JavaScript resource to perform.
#[napi(object)]
#[derive(Default)]
pub struct ResourceCall {
    /// The primitive: `stat`, `read`, `list`, `write`, `create`, `mkdir`, `remove`, `rmdir`,
    /// `rename`, `truncate`, `symlink`, `readlink`, `setMode` or `setTimes`.
    pub op: String,
    /// The path inside the resource (`/` is its root).
    pub path: String,
    /// `rename`: the new path.
    pub to: Option<String>,
    /// `read`, `write`: where.
    pub offset: Option<f64>,
    /// `read`: how much; `truncate`: the new length.
    pub length: Option<f64>,
    /// `write`: the bytes.
    pub data: Option<Buffer>,
    /// `create`, `mkdir`, `setMode`: permission bits.
    pub mode: Option<u32>,
    /// `symlink`: the link's target.
    pub target: Option<String>,
    /// `setTimes`: access time in milliseconds, if it changes.
    pub atime_ms: Option<f64>,
    /// `setTimes`: modification time in milliseconds, if it changes.
    pub mtime_ms: Option<f64>,
}

/// An error a JavaScript resource reports: a node:fs code and a message.
#[napi(object)]
pub struct ReplyError {
    /// `ENOENT`, `EEXIST`, ... (unknown codes become `EIO`).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// The answer to a [`ResourceCall`].
#[napi(object)]
#[derive(Default)]
pub struct ResourceReply {
    /// Set when the primitive failed.
    pub error: Option<ReplyError>,
    /// `stat`: the entry.
    pub stat: Option<StatInfo>,
    /// `read`: the bytes.
    pub data: Option<Buffer>,
    /// `list`: the entries.
    pub entries: Option<Vec<Dirent>>,
    /// `readlink`: the target.
    pub target: Option<String>,
}

/// A [`Resource`] whose primitives run in JavaScript.
pub(crate) struct JsResource {
    dispatch: Dispatch,
    ops: HashSet<String>,
    name: String,
}

impl fmt::Debug for JsResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsResource").field("name", &self.name).field("ops", &self.ops).finish()
    }
}

const WRITES: [&str; 9] = ["write", "create", "mkdir", "remove", "rmdir", "rename", "truncate", "symlink", "setMode"];

impl JsResource {
    pub(crate) fn new(dispatch: Dispatch, ops: Vec<String>, name: String) -> Self {
        JsResource { dispatch, ops: ops.into_iter().collect(), name }
    }

    /// Runs one primitive in JavaScript.
    async fn call(&self, op: &'static str, path: &VPath, call: ResourceCall) -> Result<ResourceReply> {
        if !self.ops.contains(op) {
            return Err(refuse(self, op, path));
        }
        let failed = |e: napi::Error| {
            Error::new(ErrorKind::Io, op)
                .with_path(path.clone())
                .with_detail(format!("resource '{}' failed: {}", self.name, e.reason))
        };
        let call = ResourceCall { op: op.to_owned(), path: path.to_string(), ..call };
        let reply = self.dispatch.call_async(call).await.map_err(failed)?.await.map_err(failed)?;
        match reply.error {
            Some(error) => Err(Error::new(ErrorKind::from_code(&error.code).unwrap_or(ErrorKind::Io), op)
                .with_path(path.clone())
                .with_detail(format!("{} (resource '{}')", error.message, self.name))),
            None => Ok(reply),
        }
    }

    async fn unit(&self, op: &'static str, path: &VPath, call: ResourceCall) -> Result<()> {
        self.call(op, path, call).await.map(drop)
    }
}

fn missing(op: &'static str, path: &VPath, what: &str) -> Error {
    Error::new(ErrorKind::Io, op).with_path(path.clone()).with_detail(format!("the resource's reply has no {what}"))
}

#[async_trait]
impl Resource for JsResource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: !WRITES.iter().any(|op| self.ops.contains(*op)),
            ranged_reads: true,
            atomic_rename: self.ops.contains("rename"),
            symlinks: self.ops.contains("symlink"),
            modes: self.ops.contains("setMode"),
            immediate: false,
        }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        let reply = self.call("stat", path, ResourceCall::default()).await?;
        let stat = reply.stat.ok_or_else(|| missing("stat", path, "stat"))?;
        let file_type = parse_type(&stat.kind).ok_or_else(|| {
            Error::new(ErrorKind::Io, "stat")
                .with_path(path.clone())
                .with_detail(format!("unknown kind {:?}", stat.kind))
        })?;
        Ok(Metadata {
            file_type,
            size: stat.size as u64,
            mode: stat.mode & 0o7777,
            mtime: from_millis(stat.mtime_ms),
            atime: from_millis(stat.atime_ms),
            version: Version(stat.version),
        })
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        let call =
            ResourceCall { offset: Some(offset as f64), length: Some(len.min(1 << 52) as f64), ..Default::default() };
        let reply = self.call("read", path, call).await?;
        let data = reply.data.ok_or_else(|| missing("read", path, "data"))?;
        Ok(Bytes::copy_from_slice(&data))
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let reply = self.call("list", path, ResourceCall::default()).await?;
        let entries = reply.entries.ok_or_else(|| missing("list", path, "entries"))?;
        entries
            .into_iter()
            .map(|e| match parse_type(&e.kind) {
                Some(file_type) => Ok(DirEntry { name: e.name, file_type }),
                None => Err(missing("list", path, "known entry kind")),
            })
            .collect()
    }

    async fn write(&self, path: &VPath, offset: u64, data: &[u8]) -> Result<()> {
        let call = ResourceCall { offset: Some(offset as f64), data: Some(data.to_vec().into()), ..Default::default() };
        self.unit("write", path, call).await
    }

    async fn create(&self, path: &VPath, mode: u32) -> Result<()> {
        self.unit("create", path, ResourceCall { mode: Some(mode), ..Default::default() }).await
    }

    async fn mkdir(&self, path: &VPath, mode: u32) -> Result<()> {
        self.unit("mkdir", path, ResourceCall { mode: Some(mode), ..Default::default() }).await
    }

    async fn remove(&self, path: &VPath) -> Result<()> {
        self.unit("remove", path, ResourceCall::default()).await
    }

    async fn rmdir(&self, path: &VPath) -> Result<()> {
        self.unit("rmdir", path, ResourceCall::default()).await
    }

    async fn rename(&self, from: &VPath, to: &VPath) -> Result<()> {
        self.unit("rename", from, ResourceCall { to: Some(to.to_string()), ..Default::default() }).await
    }

    async fn truncate(&self, path: &VPath, len: u64) -> Result<()> {
        self.unit("truncate", path, ResourceCall { length: Some(len as f64), ..Default::default() }).await
    }

    async fn symlink(&self, target: &str, path: &VPath) -> Result<()> {
        self.unit("symlink", path, ResourceCall { target: Some(target.to_owned()), ..Default::default() }).await
    }

    async fn readlink(&self, path: &VPath) -> Result<String> {
        let reply = self.call("readlink", path, ResourceCall::default()).await?;
        reply.target.ok_or_else(|| missing("readlink", path, "target"))
    }

    async fn set_mode(&self, path: &VPath, mode: u32) -> Result<()> {
        self.unit("setMode", path, ResourceCall { mode: Some(mode), ..Default::default() }).await
    }

    async fn set_times(&self, path: &VPath, atime: Option<SystemTime>, mtime: Option<SystemTime>) -> Result<()> {
        let call = ResourceCall { atime_ms: atime.map(millis), mtime_ms: mtime.map(millis), ..Default::default() };
        self.unit("setTimes", path, call).await
    }
}
