//! `mirage-run`: Mirage from the command line.
//!
//! ```text
//! mirage-run mount MOUNTPOINT [--source DIR] [--read-only] [--on-exit keep|commit|discard]
//!                             [--store DIR --session NAME]
//! mirage-run unmount MOUNTPOINT [--lazy]
//! ```
//!
//! `mount` serves a copy-on-write session over a host directory (the current one by default)
//! at MOUNTPOINT until Ctrl-C, SIGTERM or an unmount; changes stay in the session, and on exit
//! a summary says what changed and what happened to it.

mod mount;

use lexopt::ValueExt;

use std::process::ExitCode;

const USAGE: &str = "\
usage: mirage-run mount MOUNTPOINT [--source DIR] [--read-only] [--on-exit keep|commit|discard]
                                   [--store DIR --session NAME]
       mirage-run unmount MOUNTPOINT [--lazy]

mount     serves a copy-on-write session over DIR (default: the current directory) at
          MOUNTPOINT until Ctrl-C, SIGTERM or an unmount. Nothing reaches DIR unless the
          session is committed: --on-exit commit writes the changes back when it ends;
          discard (the default without a store) drops them; keep (the default with --store)
          keeps them in the store's session NAME, to mount again later.
unmount   unmounts a session mounted by `mirage-run mount` (--lazy: detach now, finish when
          the last user leaves).";

/// A command-line mistake: reported with the usage.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("mirage-run: {}\n\n{USAGE}", e.0);
            ExitCode::from(2)
        }
        Err(Failure::Run(message)) => {
            eprintln!("mirage-run: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command stopped.
pub(crate) enum Failure {
    /// The command line is wrong.
    Usage(UsageError),
    /// The work failed; the message says what and why.
    Run(String),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure::Usage(e)
    }
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::Usage(e.into())
    }
}

fn run() -> Result<ExitCode, Failure> {
    let mut parser = lexopt::Parser::from_env();
    let command = match parser.next()? {
        Some(lexopt::Arg::Value(command)) => command.string()?,
        Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h')) => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(UsageError(other.unexpected().to_string()).into()),
        None => return Err(UsageError("a command is needed".into()).into()),
    };
    match command.as_str() {
        "mount" => mount::mount(mount::MountArgs::parse(&mut parser)?),
        "unmount" | "umount" => mount::unmount(&mut parser),
        other => Err(UsageError(format!("unknown command '{other}'")).into()),
    }
}
