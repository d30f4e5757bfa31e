//! A GitHub repository at a branch, tag or commit, as a [`Resource`].
//!
//! `github://OWNER/REPO[@REF][/PATH]` mounts the repository (or the directory PATH of it) as
//! its tree stands at REF: a branch, a tag or a commit sha, the default branch when omitted.
//! Options go in the query string ([`GitHubOptions`]); the token comes from `GITHUB_TOKEN`
//! (or `GH_TOKEN`) unless the `token` option gives one, and `base_url` points at a GitHub
//! Enterprise Server (`https://HOST/api/v3`).
//!
//! - **Listing** costs one call for the whole repository: the recursive git tree of the
//!   commit. When GitHub truncates that answer (very large repositories), the tree is walked
//!   directory by directory instead. Modes come from the tree: the exec bit, symbolic links
//!   (mode `120000`, whose target is the blob's content), and submodules, shown as empty
//!   directories.
//! - **Contents** are fetched when first read, by blob sha, at most
//!   [`GitHubOptions::concurrency`] at once, and kept on disk under
//!   [`GitHubOptions::cache_dir`] by sha, so every session, fork and later mount shares them
//!   and never fetches a blob twice.
//! - **A branch that moves** stays where the mount first read it, unless
//!   [`GitHubOptions::refresh`] says to follow it: then the ref is asked again after that
//!   long, with the ETag of the last answer, which costs no rate limit when nothing changed,
//!   and when the branch did move, the new commit's tree replaces the old one. Versions are
//!   git shas, so a session that read a file sees exactly which files changed.
//! - **Rate limits**: a `403` or `429` that says to retry later is waited out, with a message,
//!   up to [`GitHubOptions::rate_limit_wait`]; a longer wait fails at once saying when to try
//!   again. `401` (a refused token) and `404` (no such repository, or a private one without a
//!   token) say so.
//! - **Committing** a session (the root session's commit) makes ONE git commit of all its
//!   changes to the repository, through the Git Data API: a blob per new or changed file, one
//!   tree (and its parents, for a directory mount), one commit with the session's message, and
//!   a fast-forward of the mounted branch. A branch that moved since the session read it
//!   refuses the fast-forward: the commit fails with a `Conflict` and nothing is lost (the new
//!   commit is left unreferenced). With the `branch` option the commit goes onto that new
//!   branch instead, ready for a pull request, and the mount follows it. A mount of a tag or a
//!   commit needs `branch`. Git keeps no empty directories; `read_only` refuses every change.

mod api;
mod config;

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use mirage_core::{
    Capabilities, DirEntry, Error, ErrorKind, FileType, Metadata, Resource, Result, Staged, Update, VPath, Version,
};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use api::{Api, Commit, Created, Repository, Tree, TreeEntry};
pub use config::GitHubOptions;
use config::Location;

/// A repository (or a directory of it) at a ref.
pub struct GitHubResource {
    api: Api,
    location: Location,
    options: GitHubOptions,
    /// The ref the mount follows: the option's, until a commit onto a new branch.
    reference: std::sync::Mutex<Option<String>>,
    /// `owner/repo@ref/path`, for messages.
    describe: String,
    /// The tree in use, and when the ref was last confirmed to point at its commit.
    snapshot: Mutex<Option<(Arc<Snapshot>, Instant)>>,
    fetches: Semaphore,
    /// Blobs being fetched, so that two readers of one blob wait for one download.
    in_flight: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl fmt::Debug for GitHubResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubResource").field("repository", &self.describe).finish_non_exhaustive()
    }
}

/// What a kind of tree entry is in the virtual tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File { exec: bool },
    Dir,
    Symlink,
}

#[derive(Clone, Debug)]
struct Entry {
    kind: Kind,
    sha: String,
    size: u64,
}

/// The tree of one commit, indexed by path below the mounted directory.
struct Snapshot {
    commit: String,
    /// The shas of the trees from the repository's root down to the mounted directory.
    trees: Vec<String>,
    /// The commit's time: what every entry reports as modified.
    time: SystemTime,
    entries: HashMap<VPath, Entry>,
    children: HashMap<VPath, Vec<DirEntry>>,
}

impl GitHubResource {
    /// Opens the repository `url` names (`github://OWNER/REPO[@REF][/PATH][?OPTIONS]`), with
    /// `options` and then the URL's query string applied. Nothing is fetched until the first
    /// operation.
    ///
    /// # Errors
    /// `InvalidInput` for a URL or option that does not parse, or a base URL the client
    /// cannot use.
    pub fn open(url: &str, options: GitHubOptions) -> Result<Self> {
        let (options, location) = options.apply_url(url)?;
        let mut describe = format!("{}/{}", location.owner, location.repo);
        if let Some(reference) = &options.reference {
            describe.push_str(&format!("@{reference}"));
        }
        for part in &location.subdir {
            describe.push_str(&format!("/{part}"));
        }
        Ok(GitHubResource {
            api: Api::new(&options)?,
            fetches: Semaphore::new(options.concurrency),
            reference: std::sync::Mutex::new(options.reference.clone()),
            location,
            options,
            describe,
            snapshot: Mutex::new(None),
            in_flight: std::sync::Mutex::default(),
        })
    }

    fn route(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.location.owner, self.location.repo)
    }

    fn fail(&self, e: Error, op: &'static str, path: &VPath) -> Error {
        let detail = e.detail().unwrap_or_default().to_owned();
        Error::new(e.kind(), op).with_path(path.clone()).with_detail(format!("{}: {detail}", self.describe))
    }

    /// The tree in use: fetched on first use, and again when the ref has moved (asked at
    /// most every [`GitHubOptions::refresh`]).
    async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let mut current = self.snapshot.lock().await;
        if let Some((snapshot, checked)) = current.as_ref()
            && checked.elapsed() < self.options.refresh
        {
            return Ok(snapshot.clone());
        }
        let reference = self.reference().await?;
        let commit: Commit = self.api.json(&self.route(&format!("/commits/{reference}"))).await?;
        let snapshot = match current.take() {
            Some((old, _)) if old.commit == commit.sha => old,
            _ => Arc::new(self.read_tree(&commit).await?),
        };
        *current = Some((snapshot.clone(), Instant::now()));
        Ok(snapshot)
    }

    /// The ref the mount follows: the one it was given, or the default branch.
    async fn reference(&self) -> Result<String> {
        let given = self.reference.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match given {
            Some(reference) => Ok(reference),
            None => Ok(self.api.json::<Repository>(&self.route("")).await?.default_branch),
        }
    }

    /// Reads the tree of `commit` below the mounted directory.
    async fn read_tree(&self, commit: &Commit) -> Result<Snapshot> {
        let mut root = commit.commit.tree.sha.clone();
        let mut trees = vec![root.clone()];
        for (depth, part) in self.location.subdir.iter().enumerate() {
            let tree: Tree = self.api.json(&self.route(&format!("/git/trees/{root}"))).await?;
            let found = tree.tree.into_iter().find(|e| &e.path == part && e.kind == "tree");
            root = found.map(|e| e.sha).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, "mount").with_detail(format!(
                    "{}: no directory '{}' at commit {}",
                    self.describe,
                    self.location.subdir[..=depth].join("/"),
                    commit.sha
                ))
            })?;
            trees.push(root.clone());
        }
        let whole: Tree = self.api.json(&self.route(&format!("/git/trees/{root}?recursive=1"))).await?;
        let listed = if whole.truncated { self.walk(&root).await? } else { whole.tree };
        let time = commit
            .commit
            .committer
            .as_ref()
            .and_then(|c| c.date.as_deref())
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
        let mut entries = HashMap::with_capacity(listed.len() + 1);
        let mut children: HashMap<VPath, Vec<DirEntry>> = HashMap::new();
        entries.insert(VPath::root(), Entry { kind: Kind::Dir, sha: root, size: 0 });
        children.insert(VPath::root(), Vec::new());
        for item in listed {
            let kind = match (item.kind.as_str(), item.mode.as_str()) {
                ("tree" | "commit", _) => Kind::Dir,
                (_, "120000") => Kind::Symlink,
                (_, mode) => Kind::File { exec: mode == "100755" },
            };
            let Ok(path) = VPath::root().join(&item.path) else { continue };
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { continue };
            let file_type = match kind {
                Kind::Dir => FileType::Dir,
                Kind::Symlink => FileType::Symlink,
                Kind::File { .. } => FileType::File,
            };
            children.entry(parent).or_default().push(DirEntry { name: name.to_owned(), file_type });
            if kind == Kind::Dir {
                children.entry(path.clone()).or_default();
            }
            entries.insert(path, Entry { kind, sha: item.sha, size: item.size.unwrap_or(0) });
        }
        Ok(Snapshot { commit: commit.sha.clone(), trees, time, entries, children })
    }

    /// Lists the tree `root` directory by directory (when the recursive answer was cut
    /// short), a level's directories at most [`GitHubOptions::concurrency`] at once.
    async fn walk(&self, root: &str) -> Result<Vec<TreeEntry>> {
        let mut all = Vec::new();
        let mut level = vec![(String::new(), root.to_owned())];
        while !level.is_empty() {
            let trees: Vec<Result<(String, Tree)>> = futures::stream::iter(level)
                .map(|(prefix, sha)| async move {
                    let tree: Tree = self.api.json(&self.route(&format!("/git/trees/{sha}"))).await?;
                    Ok((prefix, tree))
                })
                .buffer_unordered(self.options.concurrency)
                .collect()
                .await;
            let mut next = Vec::new();
            for listed in trees {
                let (prefix, tree) = listed?;
                for mut entry in tree.tree {
                    entry.path = format!("{prefix}{}", entry.path);
                    if entry.kind == "tree" {
                        next.push((format!("{}/", entry.path), entry.sha.clone()));
                    }
                    all.push(entry);
                }
            }
            level = next;
        }
        Ok(all)
    }

    /// What `path` holds, refusing paths that pass through a file or a link.
    async fn find(&self, op: &'static str, path: &VPath) -> Result<(Arc<Snapshot>, Entry)> {
        let snapshot = self.snapshot().await.map_err(|e| self.fail(e, op, path))?;
        for ancestor in path.ancestors() {
            match snapshot.entries.get(&ancestor).map(|e| e.kind) {
                Some(Kind::Symlink) => return Err(Error::new(ErrorKind::FilesystemLoop, op).with_path(path.clone())),
                Some(Kind::File { .. }) => return Err(Error::new(ErrorKind::NotADirectory, op).with_path(path.clone())),
                _ => {}
            }
        }
        let entry = snapshot.entries.get(path).cloned();
        let entry = entry.ok_or_else(|| Error::new(ErrorKind::NotFound, op).with_path(path.clone()))?;
        Ok((snapshot, entry))
    }

    /// The file holding blob `sha` in the cache, fetched first if needed.
    async fn blob_file(&self, op: &'static str, path: &VPath, sha: &str) -> Result<PathBuf> {
        if sha.len() < 3 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::new(ErrorKind::Io, op)
                .with_path(path.clone())
                .with_detail(format!("bad blob sha '{sha}'")));
        }
        let file = self.options.cache_dir.join("blobs").join(&sha[..2]).join(&sha[2..]);
        if file.exists() {
            return Ok(file);
        }
        let gate = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            in_flight.entry(sha.to_owned()).or_default().clone()
        };
        let _one = gate.lock().await;
        if !file.exists() {
            let _permit = self.fetches.acquire().await.map_err(|_| Error::new(ErrorKind::Io, op))?;
            let content =
                self.api.blob(&self.route(&format!("/git/blobs/{sha}"))).await.map_err(|e| self.fail(e, op, path))?;
            store(&file, &content).map_err(|e| Error::io(op, e).with_path(path.clone()))?;
        }
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(sha);
        Ok(file)
    }

    /// The whole content of blob `sha` (a link's target).
    async fn blob(&self, op: &'static str, path: &VPath, sha: &str) -> Result<Bytes> {
        let file = self.blob_file(op, path, sha).await?;
        std::fs::read(&file).map(Bytes::from).map_err(|e| Error::io(op, e).with_path(path.clone()))
    }
}

impl GitHubResource {
    /// The tree entry that makes `change` of a commit, uploading its content as a blob.
    async fn tree_entry(&self, snapshot: &Snapshot, change: Staged) -> Result<Option<serde_json::Value>> {
        let path = change.path.as_str().trim_start_matches('/').to_owned();
        let blob = |content: Vec<u8>| async move {
            use base64::Engine;
            let body =
                json!({ "content": base64::engine::general_purpose::STANDARD.encode(content), "encoding": "base64" });
            Ok::<_, Error>(self.api.send::<Created>(http::Method::POST, &self.route("/git/blobs"), &body).await?.sha)
        };
        Ok(Some(match change.update {
            Update::Remove => {
                let (mode, kind) = match snapshot.entries.get(&change.path).map(|e| e.kind) {
                    Some(Kind::Dir) => ("040000", "tree"),
                    _ => ("100644", "blob"),
                };
                json!({ "path": path, "mode": mode, "type": kind, "sha": null })
            }
            Update::Dir { .. } => return Ok(None),
            Update::Symlink { target } => {
                json!({ "path": path, "mode": "120000", "type": "blob", "sha": blob(target.into_bytes()).await? })
            }
            Update::File { mut content, mode } => {
                let mut bytes = Vec::new();
                while let Some(chunk) = content.next().await {
                    bytes.extend_from_slice(&chunk?);
                }
                let mode = if mode & 0o111 != 0 { "100755" } else { "100644" };
                json!({ "path": path, "mode": mode, "type": "blob", "sha": blob(bytes).await? })
            }
        }))
    }

    /// Makes one commit of `changes` on top of `snapshot`'s and returns its sha.
    async fn make_commit(&self, snapshot: &Snapshot, changes: Vec<Staged>, message: &str) -> Result<String> {
        let mut entries = Vec::new();
        for change in changes {
            entries.extend(self.tree_entry(snapshot, change).await?);
        }
        let trees = self.route("/git/trees");
        let base = snapshot.trees.last().expect("a snapshot knows its root");
        let mut tree = self
            .api
            .send::<Created>(http::Method::POST, &trees, &json!({ "base_tree": base, "tree": entries }))
            .await?
            .sha;
        // A directory mount: the new tree replaces its directory in each tree above it.
        for (depth, parent) in snapshot.trees.iter().enumerate().rev().skip(1) {
            let name = &self.location.subdir[depth];
            let entry = json!({ "path": name, "mode": "040000", "type": "tree", "sha": tree });
            tree = self
                .api
                .send::<Created>(http::Method::POST, &trees, &json!({ "base_tree": parent, "tree": [entry] }))
                .await?
                .sha;
        }
        let body = json!({ "message": message, "tree": tree, "parents": [snapshot.commit] });
        Ok(self.api.send::<Created>(http::Method::POST, &self.route("/git/commits"), &body).await?.sha)
    }

    /// Points the branch the commit goes to at `commit`: a fast-forward of the mounted branch,
    /// or a new branch.
    async fn advance(&self, commit: &str) -> Result<()> {
        if let Some(branch) = &self.options.branch
            && self.reference.lock().unwrap_or_else(|e| e.into_inner()).as_deref() != Some(branch)
        {
            let body = json!({ "ref": format!("refs/heads/{branch}"), "sha": commit });
            return match self.api.send::<serde_json::Value>(http::Method::POST, &self.route("/git/refs"), &body).await {
                Ok(_) => {
                    *self.reference.lock().unwrap_or_else(|e| e.into_inner()) = Some(branch.clone());
                    Ok(())
                }
                Err(e) if e.kind() == ErrorKind::InvalidInput => Err(Error::conflict(
                    "commit",
                    Vec::new(),
                    format!("{}: branch '{branch}' exists already: choose another name", self.describe),
                )),
                Err(e) => Err(e),
            };
        }
        let branch = self.reference().await?;
        let route = self.route(&format!("/git/refs/heads/{branch}"));
        match self.api.send::<serde_json::Value>(http::Method::PATCH, &route, &json!({ "sha": commit, "force": false })).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::InvalidInput && e.to_string().contains("fast forward") => Err(Error::conflict(
                "commit",
                Vec::new(),
                format!(
                    "{}: branch '{branch}' moved since the session read it; nothing was written (the session keeps its changes)",
                    self.describe
                ),
            )),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => Err(Error::new(ErrorKind::InvalidInput, "commit")
                .with_detail(format!(
                    "{}: '{branch}' is not a branch (a tag or a commit): give the branch option to commit onto a new branch",
                    self.describe
                ))),
            Err(e) => Err(e),
        }
    }
}

/// Writes `content` to `file` whole or not at all (a temporary file renamed into place), so
/// that a reader never sees part of a blob.
fn store(file: &std::path::Path, content: &[u8]) -> std::io::Result<()> {
    let dir = file.parent().expect("a blob file has a directory");
    std::fs::create_dir_all(dir)?;
    let temporary = tempfile_in(dir)?;
    std::fs::write(&temporary, content)?;
    std::fs::rename(&temporary, file)
}

/// A fresh name in `dir` for a file being written.
fn tempfile_in(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(dir.join(format!(".partial-{}-{n}", std::process::id())))
}

fn metadata(snapshot: &Snapshot, entry: &Entry) -> Metadata {
    let (file_type, mode) = match entry.kind {
        Kind::Dir => (FileType::Dir, 0o755),
        Kind::Symlink => (FileType::Symlink, 0o777),
        Kind::File { exec: true } => (FileType::File, 0o755),
        Kind::File { exec: false } => (FileType::File, 0o644),
    };
    Metadata {
        file_type,
        size: entry.size,
        mode,
        mtime: snapshot.time,
        atime: snapshot.time,
        version: Version(entry.sha.clone()),
    }
}

#[async_trait]
impl Resource for GitHubResource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_only: self.options.read_only,
            ranged_reads: true,
            atomic_rename: false,
            symlinks: true,
            modes: true,
            immediate: false,
        }
    }

    fn whole_commits(&self) -> bool {
        true
    }

    async fn commit_whole(&self, changes: Vec<Staged>, message: &str) -> Result<Vec<Option<Metadata>>> {
        let fail = |e: Error| {
            let detail = e.detail().unwrap_or_default().to_owned();
            match e.kind() {
                ErrorKind::Conflict => e,
                kind => Error::new(kind, "commit").with_detail(format!("{}: {detail}", self.describe)),
            }
        };
        if self.options.read_only {
            return Err(Error::new(ErrorKind::ReadOnly, "commit")
                .with_detail(format!("{} is mounted read-only", self.describe)));
        }
        let paths: Vec<VPath> = changes.iter().map(|c| c.path.clone()).collect();
        let snapshot = self.snapshot().await.map_err(fail)?;
        let commit = self.make_commit(&snapshot, changes, message).await.map_err(fail)?;
        self.advance(&commit).await.map_err(fail)?;
        let made: Commit = self.api.json(&self.route(&format!("/commits/{commit}"))).await.map_err(fail)?;
        let snapshot = Arc::new(self.read_tree(&made).await.map_err(fail)?);
        *self.snapshot.lock().await = Some((snapshot.clone(), Instant::now()));
        Ok(paths.iter().map(|path| snapshot.entries.get(path).map(|entry| metadata(&snapshot, entry))).collect())
    }

    async fn stat(&self, path: &VPath) -> Result<Metadata> {
        let (snapshot, entry) = self.find("stat", path).await?;
        Ok(metadata(&snapshot, &entry))
    }

    async fn read(&self, path: &VPath, offset: u64, len: u64) -> Result<Bytes> {
        let (_, entry) = self.find("read", path).await?;
        match entry.kind {
            Kind::Dir => return Err(Error::new(ErrorKind::IsADirectory, "read").with_path(path.clone())),
            Kind::Symlink => {
                return Err(Error::new(ErrorKind::InvalidInput, "read")
                    .with_path(path.clone())
                    .with_detail("a symbolic link"));
            }
            Kind::File { .. } => {}
        }
        let end = offset.saturating_add(len).min(entry.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let file = self.blob_file("read", path, &entry.sha).await?;
        let file = std::fs::File::open(&file).map_err(|e| Error::io("read", e).with_path(path.clone()))?;
        let mut buffer = vec![0; usize::try_from(end - offset).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read_at(&mut buffer[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", e).with_path(path.clone())),
            }
        }
        buffer.truncate(filled);
        Ok(Bytes::from(buffer))
    }

    async fn list(&self, path: &VPath) -> Result<Vec<DirEntry>> {
        let (snapshot, entry) = self.find("readdir", path).await?;
        if entry.kind != Kind::Dir {
            return Err(Error::new(ErrorKind::NotADirectory, "readdir").with_path(path.clone()));
        }
        Ok(snapshot.children.get(path).cloned().unwrap_or_default())
    }

    async fn readlink(&self, path: &VPath) -> Result<String> {
        let (_, entry) = self.find("readlink", path).await?;
        if entry.kind != Kind::Symlink {
            return Err(Error::new(ErrorKind::InvalidInput, "readlink")
                .with_path(path.clone())
                .with_detail("not a symbolic link"));
        }
        let target = self.blob("readlink", path, &entry.sha).await?;
        String::from_utf8(target.to_vec()).map_err(|_| {
            Error::new(ErrorKind::Io, "readlink").with_path(path.clone()).with_detail("the link's target is not UTF-8")
        })
    }
}
