//! `mirage.toml` and `--mount`: more mounts, and the defaults of a run.
//!
//! The file is read from the workspace (`./mirage.toml`), else from
//! `$XDG_CONFIG_HOME/mirage/mirage.toml` (`~/.config/mirage/mirage.toml`):
//!
//! ```toml
//! net = "none"                 # or "host" (the default), "tcp:443,80"
//! on_exit = "commit"           # or "keep", "discard"
//! system = ["/usr", "/etc"]    # host directories bound read-only (replaces the default list)
//! home = [".npmrc"]            # entries of $HOME bound read-write (replaces the login files)
//! busy_poll = false            # as --no-busy-poll (polling is the default, for root)
//! max_memory = "8G"            # as --max-memory
//!
//! [[mount]]
//! path = "/data"               # where it appears in the sandbox
//! source = "local:/srv/data"   # local:DIR (relative to the workspace), memory:, or a URL
//! read_only = true
//!
//! [[mount]]
//! path = "/bucket"
//! source = "s3://my-bucket/data?region=eu-west-1"   # see mirage_resources::open
//! ```
//!
//! Command-line options win over the file; `--mount PATH=SOURCE` and `--mount-ro` add to its
//! mounts.
//!
//! The file decides what a sandbox may reach, so a session that changes one is not committed
//! by `mirage-run` ([`refuse_policy_changes`]): an agent that wrote it could otherwise widen
//! its next run's sandbox (a mount of `/`, say).

use std::path::{Path, PathBuf};

use mirage_core::Change;
use serde::Deserialize;

use crate::{Failure, UsageError};

/// The configuration file's name, in a workspace or the user's configuration directory.
const FILE_NAME: &str = "mirage.toml";

/// Refuses to commit the session `name` when its `changes` touch a `mirage.toml` (anywhere:
/// a workspace may be any directory below the one committed into). The session keeps its
/// changes.
pub(crate) fn refuse_policy_changes(changes: &[Change], name: &str) -> Result<(), Failure> {
    let touched: Vec<String> = changes
        .iter()
        .filter(|c| c.path.file_name() == Some(FILE_NAME))
        .map(|c| crate::report::escaped(c.path.as_str(), false).into_owned())
        .collect();
    if touched.is_empty() {
        return Ok(());
    }
    Err(Failure::Run(format!(
        "not committing '{name}': it changes {}, which sets what mirage-run's sandbox may reach (an agent \
         could widen its own next sandbox this way). The session keeps all its changes: review them \
         (mirage-run diff {name} --text), make the change yourself if you want it, and take it out of the \
         session (mirage-run mount DIR --session {name}) or abort the session",
        touched.join(", ")
    )))
}

/// The configuration of a run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) net: Option<String>,
    pub(crate) on_exit: Option<String>,
    pub(crate) system: Option<Vec<PathBuf>>,
    pub(crate) home: Option<Vec<String>>,
    pub(crate) busy_poll: Option<bool>,
    pub(crate) max_memory: Option<String>,
    #[serde(default)]
    pub(crate) mount: Vec<MountEntry>,
}

/// One more mount of the session's tree.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MountEntry {
    pub(crate) path: String,
    pub(crate) source: String,
    #[serde(default)]
    pub(crate) read_only: bool,
}

/// What a mount serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A host directory.
    Local(PathBuf),
    /// An empty RAM tree.
    Memory,
    /// A remote resource named by a URL (`s3://bucket/prefix`, ...).
    Remote(String),
}

impl MountEntry {
    /// Reads `PATH=SOURCE` (the value of `--mount` or `--mount-ro`).
    pub(crate) fn from_flag(value: &str, read_only: bool) -> Result<Self, UsageError> {
        let (path, source) = value
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--mount takes PATH=SOURCE (e.g. /data=local:./data), not '{value}'")))?;
        Ok(MountEntry { path: path.to_owned(), source: source.to_owned(), read_only })
    }

    /// The source, with a relative local directory taken from `workspace`.
    pub(crate) fn source(&self, workspace: &Path) -> Result<Source, String> {
        if let Some(dir) = self.source.strip_prefix("local:") {
            let dir = workspace.join(dir);
            let dir = dir.canonicalize().map_err(|e| format!("mount {}: {}: {e}", self.path, dir.display()))?;
            Ok(Source::Local(dir))
        } else if self.source == "memory:" {
            Ok(Source::Memory)
        } else if mirage_resources::schemes().iter().any(|scheme| self.source.starts_with(scheme)) {
            Ok(Source::Remote(self.source.clone()))
        } else {
            Err(format!(
                "mount {}: unknown source '{}' (local:DIR, memory:, or a URL: {})",
                self.path,
                self.source,
                mirage_resources::schemes().join(", ")
            ))
        }
    }
}

/// The configuration file that applies to `workspace`, if any.
pub(crate) fn load(workspace: &Path) -> Result<Config, Failure> {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("mirage").join(FILE_NAME));
    let Some(file) = std::iter::once(workspace.join(FILE_NAME)).chain(user).find(|f| f.is_file()) else {
        return Ok(Config::default());
    };
    let text =
        std::fs::read_to_string(&file).map_err(|e| Failure::Run(format!("cannot read {}: {e}", file.display())))?;
    toml::from_str(&text).map_err(|e| Failure::Run(format!("{}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_and_flags_are_read() {
        let config: Config = toml::from_str(
            "net = \"none\"\nhome = [\".codex\"]\n[[mount]]\npath = \"/data\"\nsource = \"memory:\"\nread_only = true\n",
        )
        .unwrap();
        assert_eq!(config.net.as_deref(), Some("none"));
        assert_eq!(config.mount, [MountEntry { path: "/data".into(), source: "memory:".into(), read_only: true }]);
        assert!(toml::from_str::<Config>("netw = \"none\"").is_err(), "a misspelt key is an error");
        let flag = MountEntry::from_flag("/scratch=memory:", false).unwrap();
        assert_eq!(flag.source(Path::new("/")).unwrap(), Source::Memory);
        assert!(MountEntry::from_flag("/scratch", false).is_err());
        let remote = MountEntry::from_flag("/x=s3://bucket/p?endpoint=http://127.0.0.1:9000", false).unwrap();
        assert_eq!(
            remote.source(Path::new("/")).unwrap(),
            Source::Remote("s3://bucket/p?endpoint=http://127.0.0.1:9000".into())
        );
        let unknown = MountEntry::from_flag("/x=ftp://host/dir", false).unwrap().source(Path::new("/")).unwrap_err();
        assert!(unknown.contains("s3://"), "the message lists what is understood: {unknown}");
    }
}
