//! What a session changed, told when it ends, and what happens to the changes then.

use std::borrow::Cow;
use std::path::Path;
use std::process::ExitCode;

use mirage_core::{ChangeKind, CommitOptions, Session};

use crate::{Failure, UsageError};

/// What happens to the session's changes when the mount ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnExit {
    /// Kept in the store, to mount again later.
    Keep,
    /// Written back to the source directory.
    Commit,
    /// Dropped.
    Discard,
}

impl OnExit {
    /// Reads the value of `--on-exit`.
    pub(crate) fn parse(value: &str) -> Result<Self, UsageError> {
        match value {
            "keep" => Ok(OnExit::Keep),
            "commit" => Ok(OnExit::Commit),
            "discard" => Ok(OnExit::Discard),
            other => Err(UsageError(format!("--on-exit takes keep, commit or discard, not '{other}'"))),
        }
    }
}

/// Reports what the session changed and applies `on_exit`; a session made for this run
/// (`created`) is dropped once its changes are committed or discarded. A session of the
/// store (`stored`: an agent may have written it) that changes a `mirage.toml` is kept
/// instead of committed.
pub(crate) fn finish(
    runtime: &tokio::runtime::Runtime,
    session: &Session,
    source: &Path,
    on_exit: OnExit,
    created: bool,
    stored: bool,
) -> Result<ExitCode, Failure> {
    if let Some(refusals) = crate::memory::refusals_report() {
        eprintln!("mirage-run: {refusals}");
    }
    let changes =
        runtime.block_on(session.diff()).map_err(|e| Failure::Run(format!("cannot list the changes: {e}")))?;
    let count = |kind: ChangeKind| changes.iter().filter(|c| c.kind == kind).count();
    let bytes = changes.iter().filter_map(|c| c.new_size).fold(0u64, u64::saturating_add);
    let summary = format!(
        "{} added, {} modified, {} deleted ({bytes} bytes written)",
        count(ChangeKind::Added),
        count(ChangeKind::Modified),
        count(ChangeKind::Deleted)
    );
    match on_exit {
        _ if changes.is_empty() => eprintln!("mirage-run: no changes"),
        OnExit::Discard => {
            eprintln!("mirage-run: {summary}: discarded (--on-exit commit writes them to {})", source.display())
        }
        OnExit::Keep => {
            session.flush().map_err(|e| Failure::Run(format!("cannot save the session: {e}")))?;
            let name = session.name().unwrap_or_default();
            eprintln!(
                "mirage-run: {summary}: kept in session '{name}' (next: mirage-run diff {name}, commit {name} or abort {name})"
            );
        }
        OnExit::Commit => {
            let into = match session.parent().ok().flatten().and_then(|p| p.name().ok()) {
                Some(parent) => format!("session '{parent}'"),
                None => source.display().to_string(),
            };
            if stored
                && let Err(refused) =
                    crate::config::refuse_policy_changes(&changes, &session.name().unwrap_or_default())
            {
                session.flush().map_err(|e| Failure::Run(format!("cannot save the session: {e}")))?;
                return Err(refused);
            }
            eprintln!("mirage-run: {summary}: committing to {into} ...");
            let report = runtime.block_on(session.commit(CommitOptions::default())).map_err(|e| {
                Failure::Run(format!(
                    "commit failed (the session keeps its changes): {}",
                    escaped(&e.to_string(), false)
                ))
            })?;
            eprintln!("mirage-run: committed {} changes to {into}", report.applied.len());
        }
    }
    if created && on_exit != OnExit::Keep {
        session.abort().map_err(|e| Failure::Run(format!("cannot drop the finished session: {e}")))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` as it is safe to print for someone reviewing an agent's work: control characters
/// (escape sequences could rewrite or hide what the terminal shows) and bidirectional
/// overrides (which reorder it) are written as escapes, such as `\x1b` and `\u{202e}`.
/// Line breaks and tabs stay when `lines` (a diff's text), not in a name.
pub(crate) fn escaped(text: &str, lines: bool) -> Cow<'_, str> {
    let hidden = |c: char| {
        let kept = lines && (c == '\n' || c == '\t');
        (c.is_control() && !kept)
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn names_and_diffs_print_without_terminal_controls() {
        assert_eq!(escaped("plain/name.txt", false), "plain/name.txt");
        assert_eq!(escaped("a\x1b[2K\rM README", false), "a\\x1b[2K\\x0dM README");
        assert_eq!(escaped("line\nnext", false), "line\\x0anext");
        assert_eq!(escaped("+ok\tx\n-\u{202e}gnp.exe\n", true), "+ok\tx\n-\\u{202e}gnp.exe\n");
        assert_eq!(escaped("\u{9b}31m", false), "\\u{009b}31m");
    }
}
