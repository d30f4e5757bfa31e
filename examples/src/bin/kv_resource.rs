//! A resource written outside Mirage: a flat key-value store (each key a file in the root
//! directory), mounted beside RAM and used through a session like any other mount.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use mirage_core::{
    ByteStream, Capabilities, CommitOptions, DirEntry, Error, ErrorKind, FileType, Metadata, Mirage, MountOptions,
    Precondition, Resource, Result, VPath, Version,
};

/// Keys map to values and a version counter bumped on every change.
#[derive(Debug, Default)]
struct KeyValue {
    entries: Mutex<BTreeMap<String, (Bytes, u64)>>,
}

impl KeyValue {
    fn key(op: &'static str, path: &VPath) -> Result<String> {
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if parent.is_root() => Ok(name.to_owned()),
            _ => Err(Error::new(ErrorKind::NotFound, op).with_path(path.clone())),
        }
    }

    fn missing(op: &'static str, path: &VPath) -> Error {
        Error::new(ErrorKind::NotFound, op).with_path(path.clone())
    }

    fn meta(file_type: FileType, size: u64, version: u64) -> Metadata {
        let now = SystemTime::UNIX_EPOCH;
        Metadata { file_type, size, mode: 0o644, mtime: now, atime: now, version: Version(version.to_string()) }
    }
}

#[async_trait]
impl Resource for KeyValue {
    fn capabilities(&self) -> Capabilities {
        Capabilities { symlinks: false, modes: false, atomic_rename: false, ..Capabilities::FULL }
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        if path.is_root() {
            return Ok(Self::meta(FileType::Dir, 0, 0));
        }
        let entries = self.entries.lock().expect("not poisoned");
        let (value, version) = entries
            .get(&Self::key("stat", path)?)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "stat").with_path(path.clone()))?;
        Ok(Self::meta(FileType::File, value.len() as u64, *version))
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        let entries = self.entries.lock().expect("not poisoned");
        let (value, _) = entries
            .get(&Self::key("read", path)?)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "read").with_path(path.clone()))?;
        let start = offset.min(value.len() as u64) as usize;
        Ok(value.slice(start..start + len.min((value.len() - start) as u64) as usize))
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        if !path.is_root() {
            return Err(Error::new(ErrorKind::NotADirectory, "list").with_path(path.clone()));
        }
        let entries = self.entries.lock().expect("not poisoned");
        Ok(entries.keys().map(|name| DirEntry { name: name.clone(), file_type: FileType::File }).collect())
    }

    /// Whole-value replacement is all a key-value store needs: sessions keep partial
    /// writes in their overlay and hand over whole files on commit.
    async fn put(&self, path: &VPath, mut content: ByteStream, expect: Precondition) -> Result<Metadata> {
        let mut value = Vec::new();
        while let Some(chunk) = content.next().await {
            value.extend_from_slice(&chunk?);
        }
        let key = Self::key("put", path)?;
        let mut entries = self.entries.lock().expect("not poisoned");
        let current = entries.get(&key).map(|(v, ver)| Self::meta(FileType::File, v.len() as u64, *ver));
        mirage_core::resource::check_precondition(path, current.as_ref(), &expect)?;
        let version = current.map_or(1, |m| m.version.0.parse::<u64>().unwrap_or(0) + 1);
        let size = value.len() as u64;
        entries.insert(key, (Bytes::from(value), version));
        Ok(Self::meta(FileType::File, size, version))
    }

    async fn remove(&self, path: &VPath) -> Result<()> {
        let key = Self::key("remove", path)?;
        let removed = self.entries.lock().expect("not poisoned").remove(&key);
        removed.map(drop).ok_or_else(|| Self::missing("remove", path))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let kv = Arc::new(KeyValue::default());
    let mirage = Mirage::new();
    mirage.mount("/kv", kv.clone(), MountOptions::default())?;
    let session = mirage.create_session("main")?;
    session.write_file("/kv/greeting", "hello").await?;
    session.append("/kv/greeting", ", world").await?;
    println!("in the session: {}", session.read_to_string("/kv/greeting").await?);
    println!("in the store before commit: {:?}", kv.list(&VPath::root()).await?);
    let report = session.commit(CommitOptions::default()).await?;
    println!("committed {:?}", report.applied);
    println!("in the store now: {:?}", kv.read(&VPath::parse("/greeting")?, 0, u64::MAX).await?);
    Ok(())
}
