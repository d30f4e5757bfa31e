//! Fork, diff, commit and abort.
//!
//! A fork commits into its parent: first winner wins, by comparing node stamps (see
//! [`crate::state::State::commit_conflicts`]). A root session commits into the resources, in
//! three phases (removals deepest first, creations shallowest first, then attributes), each
//! write conditional on the version the session saw; any path changed behind the session's
//! back makes the whole commit fail before anything is written.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use crate::error::{Error, ErrorKind, Result};
use crate::mount::{Mount, Route};
use crate::overlay::{FileData, Node, NodeKind, Origin};
use crate::path::VPath;
use crate::resource::{ByteStream, FileType, Metadata, Precondition, Staged, Update, once_stream};
use crate::session::{CommitOptions, CommitReport, Found, Session};
use crate::state::Record;

/// How much of a file one read of a commit's content stream fetches.
const STREAM_PIECE: u64 = crate::resource::HOLE_PIECE as u64;

/// `path` named for one side of a diff (`a/...`), quoted with escapes (as git does) when it
/// holds a line break or another control character, which would forge lines of the diff.
fn side(prefix: &str, path: &VPath) -> String {
    let name = format!("{prefix}{path}");
    if name.chars().any(char::is_control) { format!("{name:?}") } else { name }
}

/// The largest side [`Session::diff_text`] shows.
pub const TEXT_DIFF_LIMIT: u64 = 8 << 20;

/// Whether a path was added, modified or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// It did not exist where the session started.
    Added,
    /// Its content, kind or attributes changed.
    Modified,
    /// It existed and is gone.
    Deleted,
}

/// One entry of [`Session::diff`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The virtual path.
    pub path: VPath,
    /// Added, modified or deleted.
    pub kind: ChangeKind,
    /// The entry's type now (or before, for a deletion).
    pub file_type: FileType,
    /// Size where the session started, if it existed.
    pub old_size: Option<u64>,
    /// Size now, if it exists.
    pub new_size: Option<u64>,
}

/// One path a root commit writes, with what the resource holds now.
struct Step {
    path: VPath,
    node: Arc<Node>,
    mount: Mount,
    inner: VPath,
    current: Option<Metadata>,
    content: Option<Bytes>,
}

/// Gives a committed entry the times the session recorded (resources that cannot store
/// times are fine).
async fn set_times(resource: &dyn crate::resource::Resource, step: &Step) -> Result<()> {
    match resource.set_times(&step.inner, Some(step.node.attr.atime), Some(step.node.attr.mtime)).await {
        Err(e) if e.kind() != ErrorKind::Unsupported => Err(e),
        _ => Ok(()),
    }
}

fn err(kind: ErrorKind, op: &'static str, path: &VPath) -> Error {
    Error::new(kind, op).with_path(path.clone())
}

impl Session {
    /// Forks this session in O(1): the fork sees everything this session sees, and from now
    /// on neither sees the other's changes until one commits.
    ///
    /// # Errors
    /// `NotFound` once the session has been aborted.
    pub fn fork(&self) -> Result<Session> {
        self.hub.open_session(Some(self.id), None)
    }

    /// Forks this session under a chosen name.
    ///
    /// # Errors
    /// `AlreadyExists` when the name is taken; `NotFound` once the session has been aborted.
    pub fn fork_named(&self, name: &str) -> Result<Session> {
        self.hub.open_session(Some(self.id), Some(name))
    }

    /// Discards this session and every fork below it. Its handles fail with `NotFound`
    /// afterwards.
    ///
    /// # Errors
    /// `NotFound` when it was already aborted; I/O errors from the store.
    pub fn abort(&self) -> Result<()> {
        let result = {
            let mut inner = self.hub.lock();
            inner.state.session(self.id)?;
            self.hub.record_locked(&mut inner, &[Record::Abort { session: self.id }])?;
            self.hub.sync(&mut inner)
        };
        self.hub.deliver();
        result
    }

    /// Makes this session's recorded changes durable in the store (a no-op without one).
    ///
    /// # Errors
    /// I/O errors from the store.
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.hub.lock();
        self.hub.sync(&mut inner)
    }

    /// What this session changed relative to its starting point (its parent, or the
    /// resources for a root session), sorted by path.
    ///
    /// # Errors
    /// `NotFound` once aborted; a resource's error while sizing an old entry.
    pub async fn diff(&self) -> Result<Vec<Change>> {
        let touched = self.hub.lock().state.session(self.id)?.touched.clone();
        let view = self.view()?;
        let mut changes = Vec::new();
        for (path, base) in touched.iter() {
            let old = self.old_entry(path, base.as_ref(), view.get(path)).await?;
            let old_meta = old.as_ref().map(|(t, size, _)| (*t, *size));
            let new = view.get(path).and_then(|n| Some((n.file_type()?, n.size())));
            let kind = match (old_meta, new) {
                (None, None) => continue,
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Deleted,
                (Some(_), Some(_))
                    if old.as_ref().is_some_and(|(_, _, stamp)| *stamp == view.get(path).map(|n| n.stamp)) =>
                {
                    continue;
                }
                (Some(_), Some(_)) => ChangeKind::Modified,
            };
            let file_type = new.or(old_meta).map(|(t, _)| t).expect("one side exists");
            changes.push(Change {
                path: path.clone(),
                kind,
                file_type,
                old_size: old_meta.map(|(_, s)| s),
                new_size: new.map(|(_, s)| s),
            });
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// The entry at `path` where the session started: type, size and overlay stamp.
    async fn old_entry(
        &self,
        path: &VPath,
        base: Option<&Arc<Node>>,
        now: Option<&Arc<Node>>,
    ) -> Result<Option<(FileType, u64, Option<u64>)>> {
        if let Some(base) = base
            && !base.is_clean()
        {
            return Ok(base.file_type().map(|t| (t, base.size(), Some(base.stamp))));
        }
        if !matches!(now.map(|n| &n.origin), Some(Origin::Present(..))) {
            return Ok(None);
        }
        match self.hub.route(path) {
            Route::Resource(mount, inner) => match mount.resource().stat(&inner).await {
                Ok(meta) => Ok(Some((meta.file_type, meta.size, None))),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.in_mount(mount.point())),
            },
            _ => Ok(None),
        }
    }

    /// A unified diff of the file at `path` between the session's starting point and now
    /// (`Binary files differ` for content that is not UTF-8 text; a note instead for a side
    /// larger than [`TEXT_DIFF_LIMIT`]).
    ///
    /// # Errors
    /// `NotFound` once aborted; a resource's error while reading old content.
    pub async fn diff_text(&self, path: &str) -> Result<String> {
        let path = self.abs(path)?;
        let base = self.hub.lock().state.session(self.id)?.touched.get(&path).cloned();
        let view = self.view()?;
        // One byte past the limit tells a side that is too large, without reading it all.
        let most = TEXT_DIFF_LIMIT + 1;
        let old = match base {
            Some(Some(node)) if !node.is_clean() => self.read_found(&path, &Found::Node(node), 0, most).await.ok(),
            _ => match self.hub.route(&path) {
                Route::Resource(mount, inner) => mount.resource().read(&inner, 0, most).await.ok(),
                _ => None,
            },
        };
        let new = match view.get(&path) {
            Some(node) => self.read_found(&path, &Found::Node(node.clone()), 0, most).await.ok(),
            None => old.clone(),
        };
        let (old, new) = (old.unwrap_or_default(), new.unwrap_or_default());
        if old.len() as u64 > TEXT_DIFF_LIMIT || new.len() as u64 > TEXT_DIFF_LIMIT {
            return Ok(format!(
                "Files {} and {}: larger than {} MiB, not shown\n",
                side("a", &path),
                side("b", &path),
                TEXT_DIFF_LIMIT >> 20
            ));
        }
        match (std::str::from_utf8(&old), std::str::from_utf8(&new)) {
            (Ok(a), Ok(b)) if !a.contains('\0') && !b.contains('\0') => Ok(similar::TextDiff::from_lines(a, b)
                .unified_diff()
                .header(&side("a", &path), &side("b", &path))
                .to_string()),
            _ if old == new => Ok(String::new()),
            _ => Ok(format!("Binary files {} and {} differ\n", side("a", &path), side("b", &path))),
        }
    }

    /// Commits this session: a fork into its parent, a root session into the resources.
    ///
    /// A fork's commit is atomic and first-winner: if the parent changed any path this
    /// session changed since the fork (a sibling committed first), it fails with `Conflict`
    /// naming those paths and keeps every change of this session. With
    /// `winner_takes_all`, the siblings are aborted in the same step.
    ///
    /// A root session's commit writes to the resources with conditional writes against the
    /// versions it saw; an entry changed behind its back fails the commit with `Conflict`
    /// before anything is written. What was applied leaves the overlay.
    ///
    /// # Errors
    /// `Conflict`; `NotFound` once aborted; resource errors (the report in the error detail
    /// says how much was applied; the rest stays in the session, and a retry continues from
    /// there).
    ///
    /// # Cancel safety
    /// A fork's commit happens in one step after its locks are taken: dropping the future
    /// before that leaves nothing changed. A root commit records each path as soon as it is
    /// written: dropping it midway leaves at most the path in flight written but unrecorded
    /// (a later commit reports it as a conflict); the session's content is never lost.
    pub async fn commit(&self, options: CommitOptions) -> Result<CommitReport> {
        let result = self.commit_locked(options).await;
        self.hub.deliver();
        result
    }

    async fn commit_locked(&self, options: CommitOptions) -> Result<CommitReport> {
        let _guard = self.write_lock().lock().await;
        let parent = self.hub.lock().state.session(self.id)?.parent;
        match parent {
            Some(parent) => {
                let parent_lock = self.hub.session_lock(parent);
                let _parent_guard = parent_lock.lock().await;
                self.commit_to_parent(options)
            }
            None => self.commit_to_resources(options).await,
        }
    }

    fn commit_to_parent(&self, options: CommitOptions) -> Result<CommitReport> {
        let mut inner = self.hub.lock();
        let conflicts = inner.state.commit_conflicts(self.id)?;
        if !conflicts.is_empty() {
            let list = conflicts.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
            return Err(Error::conflict(
                "commit",
                conflicts,
                format!("changed in the parent since the fork: {list} (this session keeps its changes)"),
            ));
        }
        let me = inner.state.session(self.id)?;
        let mut applied: Vec<VPath> = me.touched.keys().cloned().collect();
        applied.sort();
        let parent = me.parent.expect("a fork has a parent");
        let aborted = if options.winner_takes_all {
            inner
                .state
                .children(parent)
                .into_iter()
                .filter(|c| *c != self.id)
                .flat_map(|c| inner.state.subtree(c))
                .filter_map(|id| inner.state.sessions.get(&id).map(|s| s.name.clone()))
                .collect()
        } else {
            Vec::new()
        };
        self.hub.record_locked(
            &mut inner,
            &[Record::Commit { child: self.id, winner_takes_all: options.winner_takes_all }],
        )?;
        self.hub.sync(&mut inner)?;
        Ok(CommitReport { applied, aborted })
    }

    async fn commit_to_resources(&self, options: CommitOptions) -> Result<CommitReport> {
        let (view, touched) = {
            let inner = self.hub.lock();
            let s = inner.state.session(self.id)?;
            (s.view.clone(), s.touched.clone())
        };
        let mut steps = Vec::new();
        let mut conflicts = Vec::new();
        for (path, _) in touched.iter() {
            let Some(node) = view.get(path).cloned() else { continue };
            let (mount, inner) = match self.hub.route(path) {
                Route::Resource(mount, inner) => (mount, inner),
                _ if node.file_type().is_none() => continue,
                _ => return Err(err(ErrorKind::ReadOnly, "commit", path).with_detail("no mount covers this path")),
            };
            if mount.is_read_only() {
                return Err(err(ErrorKind::ReadOnly, "commit", path).with_mount(mount.point().clone()));
            }
            let current = match mount.resource().stat(&inner).await {
                Ok(meta) => Some(meta),
                // Below a file there is nothing (this commit replaces that file first).
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => None,
                Err(e) => return Err(e.in_mount(mount.point()).with_op("commit")),
            };
            let expected = match (&node.origin, &current) {
                (Origin::Absent, None) => true,
                (Origin::Present(_, version), Some(meta)) => &meta.version == version,
                _ => false,
            };
            let already = match (&node.kind, &current) {
                (NodeKind::Whiteout, None) => true,
                (NodeKind::Dir { .. }, Some(meta)) => meta.is_dir(),
                _ => false,
            };
            if !expected && !already {
                conflicts.push(path.clone());
            }
            if let NodeKind::File(FileData { base: Some(base), .. }) = &node.kind {
                let source = self.hub.mounts().get(&base.mount).cloned();
                let source_version = match &source {
                    Some(m) => m.resource().stat(&base.inner).await.ok().map(|meta| meta.version),
                    None => None,
                };
                if source_version.as_ref() != Some(&base.version) && base.len > 0 {
                    conflicts.push(path.clone());
                }
            }
            steps.push(Step { path: path.clone(), node, mount, inner, current, content: None });
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            conflicts.dedup();
            let list = conflicts.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
            return Err(Error::conflict(
                "commit",
                conflicts,
                format!("changed behind the session's back: {list} (nothing was written)"),
            ));
        }
        // Content read from a path this commit also rewrites or removes is read up front.
        let targets: std::collections::HashSet<(VPath, VPath)> =
            steps.iter().map(|s| (s.mount.point().clone(), s.inner.clone())).collect();
        for step in &mut steps {
            if let NodeKind::File(file) = &step.node.kind
                && file.base.as_ref().is_some_and(|b| targets.contains(&(b.mount.clone(), b.inner.clone())))
            {
                step.content = Some(self.read_file_data(&step.path, file, 0, u64::MAX).await?);
            }
        }
        let mut applied: Vec<VPath> = Vec::new();
        // Resources that take a commit whole get their part at once; the rest path by path.
        let (whole, by_path): (Vec<&Step>, Vec<&Step>) = steps.iter().partition(|s| s.mount.resource().whole_commits());
        let result = match self.apply_steps(&by_path, &mut applied).await {
            Ok(()) => self.apply_whole(&whole, options.message, &mut applied).await,
            Err(e) => Err(e),
        };
        // A path created and removed again within the session leaves the overlay without
        // touching the resource, so it is not reported.
        let noops: std::collections::HashSet<&VPath> =
            steps.iter().filter(|s| s.node.file_type().is_none() && s.current.is_none()).map(|s| &s.path).collect();
        let report =
            CommitReport { applied: applied.into_iter().filter(|p| !noops.contains(p)).collect(), aborted: Vec::new() };
        {
            let mut inner = self.hub.lock();
            self.hub.sync(&mut inner)?;
        }
        match result {
            Ok(()) => Ok(report),
            Err(e) => Err(e.add_detail(format!(
                "commit stopped after applying {} of {} changes; the rest stays in the session",
                report.applied.len(),
                steps.len()
            ))),
        }
    }

    /// Records that `step` is on the resource as `origin` says: the session's entry becomes a
    /// clean marker. Done path by path, as soon as each is written, so that an error or a
    /// dropped commit leaves at most the path in flight unrecorded.
    fn record_applied(&self, step: &Step, origin: Origin) -> Result<()> {
        let entries = vec![(step.path.clone(), step.node.stamp, origin)];
        self.hub.record(&[Record::Flushed { session: self.id, entries }])
    }

    async fn apply_steps(&self, steps: &[&Step], applied: &mut Vec<VPath>) -> Result<()> {
        let mut removed = vec![false; steps.len()];
        let mut order: Vec<usize> = (0..steps.len()).collect();
        order.sort_by(|a, b| steps[*b].path.cmp(&steps[*a].path));
        for &i in &order {
            let step = &steps[i];
            if let Some(current) = &step.current {
                let replace = match step.node.file_type() {
                    None | Some(FileType::Symlink) => true,
                    Some(t) => t != current.file_type,
                };
                if replace {
                    let resource = step.mount.resource();
                    let done = if current.is_dir() {
                        resource.rmdir(&step.inner).await
                    } else {
                        resource.remove(&step.inner).await
                    };
                    done.map_err(|e| e.in_mount(step.mount.point()).with_op("commit"))?;
                    removed[i] = true;
                    if step.node.file_type().is_some() {
                        // Half done: the old entry is gone, the new one not there yet. Say so,
                        // so that a retry after a failure creates it instead of conflicting.
                        let record = Record::Origin {
                            session: self.id,
                            path: step.path.clone(),
                            stamp: step.node.stamp,
                            origin: Origin::Absent,
                        };
                        self.hub.record(&[record])?;
                    }
                }
            }
            if step.node.file_type().is_none() {
                self.record_applied(step, Origin::Absent)?;
                applied.push(step.path.clone());
            }
        }
        for i in order.iter().rev().copied() {
            let step = &steps[i];
            let resource = step.mount.resource();
            let exists = step.current.is_some() && !removed[i];
            let wrap = |e: Error| e.in_mount(step.mount.point()).with_op("commit");
            match &step.node.kind {
                NodeKind::Whiteout | NodeKind::Clean => continue,
                NodeKind::Dir { .. } if !exists => {
                    resource.mkdir(&step.inner, step.node.attr.mode).await.map_err(wrap)?
                }
                NodeKind::Dir { .. } => {}
                NodeKind::Symlink(target) => resource.symlink(target, &step.inner).await.map_err(wrap)?,
                NodeKind::File(file) => {
                    let expect = match &step.current {
                        Some(meta) if exists => Precondition::Version(meta.version.clone()),
                        _ => Precondition::Absent,
                    };
                    let content = match &step.content {
                        Some(bytes) => once_stream(bytes.clone()),
                        None => self.content_stream(step.path.clone(), file.clone()),
                    };
                    resource.put(&step.inner, content, expect).await.map_err(wrap)?;
                }
            }
            // Attributes go with the entry (a directory's times wait until its children exist),
            // and the entry is recorded as soon as it is complete on the resource.
            if step.node.file_type() != Some(FileType::Symlink) && resource.capabilities().modes {
                resource.set_mode(&step.inner, step.node.attr.mode).await.map_err(wrap)?;
            }
            if step.node.file_type() == Some(FileType::File) {
                set_times(resource.as_ref(), step).await.map_err(wrap)?;
            }
            let meta = resource.stat(&step.inner).await.map_err(wrap)?;
            self.record_applied(step, Origin::Present(meta.file_type, meta.version))?;
            applied.push(step.path.clone());
        }
        for &i in &order {
            let step = &steps[i];
            if step.node.file_type() != Some(FileType::Dir) {
                continue;
            }
            let resource = step.mount.resource();
            let wrap = |e: Error| e.in_mount(step.mount.point()).with_op("commit");
            set_times(resource.as_ref(), step).await.map_err(wrap)?;
            let meta = resource.stat(&step.inner).await.map_err(wrap)?;
            self.record_applied(step, Origin::Present(meta.file_type, meta.version))?;
        }
        Ok(())
    }

    /// Hands each whole-commit resource its steps as one [`Resource::commit_whole`], and
    /// records every path it applied.
    async fn apply_whole(&self, steps: &[&Step], message: Option<String>, applied: &mut Vec<VPath>) -> Result<()> {
        let mut by_mount: std::collections::BTreeMap<&VPath, Vec<&Step>> = std::collections::BTreeMap::new();
        for step in steps {
            by_mount.entry(step.mount.point()).or_default().push(step);
        }
        let message = match message {
            Some(message) => message,
            None => format!("Changes from Mirage session '{}'", self.name()?),
        };
        for (point, steps) in by_mount {
            // A path made and removed again within the session has nothing to tell.
            let (steps, noops): (Vec<&Step>, Vec<&Step>) = steps
                .into_iter()
                .filter(|step| !matches!(step.node.kind, NodeKind::Clean))
                .partition(|step| step.node.file_type().is_some() || step.current.is_some());
            for step in noops {
                self.record_applied(step, Origin::Absent)?;
                applied.push(step.path.clone());
            }
            if steps.is_empty() {
                continue;
            }
            let staged: Vec<Staged> = steps
                .iter()
                .map(|step| {
                    let update = match &step.node.kind {
                        NodeKind::Whiteout | NodeKind::Clean => Update::Remove,
                        NodeKind::Dir { .. } => Update::Dir { mode: step.node.attr.mode },
                        NodeKind::Symlink(target) => Update::Symlink { target: target.clone() },
                        NodeKind::File(file) => Update::File {
                            content: match &step.content {
                                Some(bytes) => once_stream(bytes.clone()),
                                None => self.content_stream(step.path.clone(), file.clone()),
                            },
                            mode: step.node.attr.mode,
                        },
                    };
                    Staged { path: step.inner.clone(), update, seen: step.current.as_ref().map(|m| m.version.clone()) }
                })
                .collect();
            let resource = steps[0].mount.resource();
            let now = resource.commit_whole(staged, &message).await.map_err(|e| e.in_mount(point).with_op("commit"))?;
            for (step, meta) in steps.iter().zip(now) {
                let origin = meta.map_or(Origin::Absent, |m| Origin::Present(m.file_type, m.version));
                self.record_applied(step, origin)?;
                applied.push(step.path.clone());
            }
        }
        Ok(())
    }

    /// The content of an overlay file as a stream of pieces read on demand, so that large
    /// files are never held whole in memory.
    fn content_stream(&self, path: VPath, file: FileData) -> ByteStream {
        let session = self.clone();
        let size = file.size;
        futures::stream::unfold(0u64, move |offset| {
            let (session, path, file) = (session.clone(), path.clone(), file.clone());
            async move {
                if offset >= size {
                    return None;
                }
                let next = offset + STREAM_PIECE;
                // A stretch of a sparse file never written is handed on as a hole.
                if let [crate::overlay::Segment::Zero(n)] = file.plan_read(offset, STREAM_PIECE)[..] {
                    return Some((Ok(crate::resource::hole(n as usize)), next));
                }
                let piece = session.read_file_data(&path, &file, offset, STREAM_PIECE).await;
                Some((piece, next))
            }
        })
        .boxed()
    }
}
