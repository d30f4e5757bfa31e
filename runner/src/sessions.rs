//! Named sessions kept in a store, and the subcommands that list, diff, commit and abort
//! them.
//!
//! The store is a directory (`--store DIR`, else `$MIRAGE_STORE`, else
//! `$XDG_STATE_HOME/mirage`, else `~/.local/state/mirage`) holding the sessions' journal and
//! `workspaces.json`, which records the workspace each root session was started over (forks
//! share their root's). Several `mirage-run`s may use a store at once (two agents on two
//! forks, say); a session is used by one at a time (`running/NAME.lock`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use lexopt::ValueExt;
use mirage_core::{ChangeKind, CommitOptions, ErrorKind, LocalResource, Mirage, MountOptions, Session};

use crate::report::escaped;
use crate::{Failure, UsageError};

/// The file naming each root session's workspace.
const WORKSPACES: &str = "workspaces.json";

/// An open store.
pub(crate) struct Store {
    pub(crate) mirage: Mirage,
    dir: PathBuf,
    workspaces: BTreeMap<String, PathBuf>,
}

impl Store {
    /// Where sessions are kept when `--store` is not given.
    pub(crate) fn default_dir() -> Result<PathBuf, Failure> {
        if let Some(dir) = std::env::var_os("MIRAGE_STORE") {
            return Ok(PathBuf::from(dir));
        }
        if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
            return Ok(PathBuf::from(state).join("mirage"));
        }
        match std::env::var_os("HOME") {
            Some(home) => Ok(PathBuf::from(home).join(".local/state/mirage")),
            None => Err(Failure::Run("no place for the session store: set --store DIR or MIRAGE_STORE".into())),
        }
    }

    /// Opens (or creates) the store in `dir` and mounts every workspace it knows.
    pub(crate) fn open(dir: &Path) -> Result<Store, Failure> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Run(format!("cannot create the store {}: {e}", dir.display())))?;
        let mirage = Mirage::open(dir)
            .map_err(|e| Failure::Run(format!("cannot open the session store {}: {e}", dir.display())))?;
        let workspaces = match std::fs::read_to_string(dir.join(WORKSPACES)) {
            Ok(json) => {
                serde_json::from_str(&json).map_err(|e| Failure::Run(format!("{WORKSPACES} is damaged: {e}")))?
            }
            Err(_) => BTreeMap::new(),
        };
        let mut store = Store { mirage, dir: dir.to_owned(), workspaces };
        // Forget the workspaces of sessions that are gone; mount the others (one that has
        // vanished from the disk only makes its own sessions unusable).
        let live: Vec<String> =
            store.mirage.sessions().into_iter().filter(|s| s.parent.is_none()).map(|s| s.name).collect();
        let before = store.workspaces.len();
        store.workspaces.retain(|name, _| live.contains(name));
        if store.workspaces.len() != before {
            store.save()?;
        }
        for (name, workspace) in &store.workspaces {
            if let Err(Failure::Run(why)) = store.mount_workspace(workspace) {
                eprintln!("mirage-run: warning: session '{name}' cannot be used: {why}");
            }
        }
        Ok(store)
    }

    /// Writes `workspaces.json` (atomically).
    fn save(&self) -> Result<(), Failure> {
        let json = serde_json::to_string_pretty(&self.workspaces).map_err(|e| Failure::Run(e.to_string()))?;
        let temp = self.dir.join(format!("{WORKSPACES}.tmp"));
        std::fs::write(&temp, json)
            .and_then(|()| std::fs::rename(&temp, self.dir.join(WORKSPACES)))
            .map_err(|e| Failure::Run(format!("cannot record the sessions' workspaces: {e}")))
    }

    /// Mounts `workspace` at its own path (once).
    pub(crate) fn mount_workspace(&self, workspace: &Path) -> Result<(), Failure> {
        let point = workspace.to_str().ok_or_else(|| Failure::Run("the workspace path is not UTF-8".into()))?;
        if self.mirage.mounts().iter().any(|m| m.point().as_str() == point) {
            return Ok(());
        }
        let resource = LocalResource::new(workspace)
            .map_err(|e| Failure::Run(format!("cannot open the workspace {}: {e}", workspace.display())))?;
        self.mirage
            .mount(point, Arc::new(resource), MountOptions::default())
            .map_err(|e| Failure::Run(format!("cannot mount the workspace {}: {e}", workspace.display())))
    }

    /// Claims session `name` for this process until the claim is dropped.
    ///
    /// # Errors
    /// Another `mirage-run` is using it (running in it, committing it or into it).
    pub(crate) fn claim(&self, name: &str) -> Result<Claim, Failure> {
        use std::os::fd::AsRawFd;
        let dir = self.dir.join("running");
        let file = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(format!("{name}.lock")))
            })
            .map_err(|e| Failure::Run(format!("cannot claim session '{name}': {e}")))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Failure::Run(format!(
                "session '{name}' is in use by another mirage-run (wait for it, or work in a fork: --fork {name})"
            )));
        }
        Ok(Claim { _file: file })
    }

    /// The root session `name` descends from.
    fn root_of(&self, name: &str) -> String {
        let sessions = self.mirage.sessions();
        let mut current = name.to_owned();
        while let Some(parent) = sessions.iter().find(|s| s.name == current).and_then(|s| s.parent.clone()) {
            current = parent;
        }
        current
    }

    /// The workspace session `name` works on.
    pub(crate) fn workspace_of(&self, name: &str) -> Option<&Path> {
        self.workspaces.get(&self.root_of(name)).map(PathBuf::as_path)
    }

    /// The session `name`, which must exist.
    pub(crate) fn session(&self, name: &str) -> Result<Session, Failure> {
        self.mirage.session(name).map_err(|_| {
            Failure::Run(format!("there is no session '{name}' in {} (see: mirage-run sessions)", self.dir.display()))
        })
    }

    /// Creates the root session `name` over `workspace`.
    pub(crate) fn create(&mut self, name: &str, workspace: &Path) -> Result<Session, Failure> {
        self.mount_workspace(workspace)?;
        let session = self
            .mirage
            .create_session(name)
            .map_err(|e| Failure::Run(format!("cannot create session '{name}': {e}")))?;
        self.workspaces.insert(name.to_owned(), workspace.to_owned());
        self.save()?;
        Ok(session)
    }
}

/// A session in use by this process (released when dropped).
pub(crate) struct Claim {
    _file: std::fs::File,
}

/// `mirage-run sessions|diff|commit|abort ...`.
pub(crate) fn command(name: &str, parser: &mut lexopt::Parser) -> Result<ExitCode, Failure> {
    use lexopt::Arg::{Long, Short, Value};
    let (mut store, mut target, mut text, mut message) = (None, None, false, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("store") => store = Some(PathBuf::from(parser.value()?)),
            Long("text") if name == "diff" => text = true,
            Long("message") | Short('m') if name == "commit" => message = Some(parser.value()?.string()?),
            Value(v) if target.is_none() && name != "sessions" => target = Some(v.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let dir = match store {
        Some(dir) => dir,
        None => Store::default_dir()?,
    };
    let store = Store::open(&dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start: {e}")))?;
    if name == "sessions" {
        return list(&runtime, &store);
    }
    let target = target.ok_or_else(|| UsageError(format!("{name} needs a session NAME")))?;
    let session = store.session(&target)?;
    // Changing a session (or committing into its parent) waits for nobody: it is refused
    // while another mirage-run uses either.
    let mut claims = Vec::new();
    if name != "diff" {
        claims.push(store.claim(&target)?);
        if name == "commit"
            && let Some(parent) = session.parent().ok().flatten().and_then(|p| p.name().ok())
        {
            claims.push(store.claim(&parent)?);
        }
    }
    match name {
        "diff" => diff(&runtime, &session, text),
        "commit" => commit(&runtime, &store, &session, &target, message),
        "abort" => {
            session.abort().map_err(|e| Failure::Run(format!("cannot abort '{target}': {e}")))?;
            println!("aborted '{target}' (and its forks)");
            Ok(ExitCode::SUCCESS)
        }
        _ => unreachable!("only session commands are routed here"),
    }
}

fn list(runtime: &tokio::runtime::Runtime, store: &Store) -> Result<ExitCode, Failure> {
    let sessions = store.mirage.sessions();
    if sessions.is_empty() {
        println!("no sessions");
    }
    for s in sessions {
        let parent = s.parent.map_or_else(String::new, |p| format!(" (fork of {p})"));
        let workspace = store.workspace_of(&s.name).map_or_else(String::new, |w| format!(" over {}", w.display()));
        // What differs, not what was touched: a temporary file created and removed again is
        // no change.
        let changed = match store.session(&s.name).map(|session| runtime.block_on(session.diff())) {
            Ok(Ok(changes)) => format!("{} changed", changes.len()),
            _ => "changes unknown (its workspace is gone)".to_owned(),
        };
        println!("{}{parent}{workspace}: {changed}", s.name);
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(runtime: &tokio::runtime::Runtime, session: &Session, text: bool) -> Result<ExitCode, Failure> {
    let changes = runtime.block_on(session.diff()).map_err(|e| Failure::Run(format!("cannot diff: {e}")))?;
    for c in &changes {
        let mark = match c.kind {
            ChangeKind::Added => "A",
            ChangeKind::Modified => "M",
            ChangeKind::Deleted => "D",
        };
        println!("{mark} {}", escaped(c.path.as_str(), false));
    }
    if text {
        for c in changes.iter().filter(|c| c.file_type == mirage_core::FileType::File) {
            match runtime.block_on(session.diff_text(c.path.as_str())) {
                Ok(patch) => print!("{}", escaped(&patch, true)),
                Err(e) => eprintln!(
                    "mirage-run: no text diff of {}: {}",
                    escaped(c.path.as_str(), false),
                    escaped(&e.to_string(), false)
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn commit(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    session: &Session,
    name: &str,
    message: Option<String>,
) -> Result<ExitCode, Failure> {
    let parent = session.parent().ok().flatten().and_then(|p| p.name().ok());
    let into = match (&parent, store.workspace_of(name)) {
        (Some(parent), _) => format!("session '{parent}'"),
        (None, Some(workspace)) => workspace.display().to_string(),
        (None, None) => "its resources".to_owned(),
    };
    let changes = runtime
        .block_on(session.diff())
        .map_err(|e| Failure::Run(format!("cannot list the changes of '{name}': {e}")))?;
    crate::config::refuse_policy_changes(&changes, name)?;
    let options = CommitOptions { message, ..CommitOptions::default() };
    let report = runtime.block_on(session.commit(options)).map_err(|e| {
        if e.kind() == ErrorKind::Conflict {
            let paths: Vec<String> = e.conflicts().iter().map(|p| escaped(p.as_str(), false).into_owned()).collect();
            Failure::Run(format!(
                "'{name}' lost: {into} changed since it forked, at {} (the session keeps all its changes)",
                paths.join(", ")
            ))
        } else {
            Failure::Run(format!("cannot commit '{name}' (it keeps its changes): {}", escaped(&e.to_string(), false)))
        }
    })?;
    println!("committed {} changes of '{name}' to {into}", report.applied.len());
    Ok(ExitCode::SUCCESS)
}
