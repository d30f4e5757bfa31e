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

mod config;
mod memory;
mod mount;
mod report;
mod run;
mod sessions;
mod signals;
mod terminal;

use std::process::ExitCode;

const USAGE: &str = "\
usage: mirage-run [--net host|none|tcp:PORTS] [--on-exit keep|commit|discard]
                  [--session NAME | --fork NAME] [--store DIR] [--[no-]busy-poll]
                  [--max-memory SIZE] [--mount PATH=SOURCE]... [--mount-ro PATH=SOURCE]... -- COMMAND [ARGS]
       mirage-run sessions [--store DIR]
       mirage-run diff NAME [--text] [--store DIR]
       mirage-run commit NAME [--message TEXT] [--store DIR]
       mirage-run abort NAME [--store DIR]
       mirage-run mount MOUNTPOINT [--source DIR] [--read-only] [--passthrough] [--on-exit keep|commit|discard]
                                   [--session NAME [--store DIR]] [--[no-]busy-poll] [--max-memory SIZE]
       mirage-run unmount MOUNTPOINT [--lazy]

(run)     runs COMMAND in a sandbox whose root is a copy-on-write session: the current
          directory (the workspace) at its own path, the system directories read-only, the
          agent's configuration in $HOME, nothing else of the host. Each run gets a new
          session (run-N) unless --session NAME (runs in, or creates, that session) or --fork
          NAME (a new fork of it). On exit, a summary of the changes; --on-exit keep (the
          default) keeps them in the session, commit writes them to the workspace (or the
          parent session), discard drops them. --net none: no network at all; --net
          tcp:443,80: TCP connections to those ports only, no listening (Landlock; UDP is
          not filtered). --mount /data=local:DIR (or memory:, or a URL such as
          s3://bucket/prefix) adds a mount to the session's tree (--mount-ro: read-only).
          ./mirage.toml (or ~/.config/mirage/mirage.toml) sets defaults: net, on_exit,
          system, home, busy_poll, max_memory, [[mount]].
sessions  lists the store's sessions; diff shows what one changed (--text: as a patch);
          commit applies it to its parent (the first fork to commit wins; a later one is
          refused, naming the paths, and keeps its changes) or, for a root session, to its
          workspace (--message: the commit message where a mount records commits, such as
          a github:// repository); abort drops it and its forks. The store: --store DIR,
          $MIRAGE_STORE, or ~/.local/state/mirage.
mount     serves a copy-on-write session over DIR (default: the current directory) at
          MOUNTPOINT until Ctrl-C, SIGTERM or an unmount. Nothing reaches DIR unless the
          session is committed: --on-exit commit writes the changes back when it ends;
          discard (the default) drops them. --session NAME serves that session of the
          store instead (created over DIR if new; its workspace at its own path) and keeps
          its changes by default. --passthrough (root): the kernel reads unchanged host files
          of 1 MiB or more directly, at native speed, but every open costs a round trip.
--busy-poll (the default; root; run and mount): while the filesystem is busy, idle CPUs
          poll instead of halting (a zero CPU latency request, withdrawn 2-4 ms after the last
          request), so each request wakes its threads sooner: creating many small files goes
          1.4-2x faster, at the cost of idle CPUs spinning meanwhile. --no-busy-poll (or
          busy_poll = false in mirage.toml) lets them halt. Without root it is not in effect,
          and --busy-poll says so.
--max-memory SIZE (run and mount): the most the sessions may hold in mirage-run's memory
          (content, and 1 KiB or more per file; 512M, 8G, ...; none: no limit). Past it,
          writes fail with ENOSPC as on a full disk, and the run says so at the end.
          Default: half the RAM (or of the control group's memory.max).
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
    if std::env::args_os().nth(1).is_some_and(|a| a == mirage_sandbox::HELPER_ARG) {
        mirage_sandbox::helper_main();
    }
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
    let first = std::env::args().nth(1);
    match first.as_deref() {
        Some("mount") => {
            parser.next()?;
            mount::mount(mount::MountArgs::parse(&mut parser)?)
        }
        Some("unmount" | "umount") => {
            parser.next()?;
            mount::unmount(&mut parser)
        }
        Some(command @ ("sessions" | "diff" | "commit" | "abort")) => {
            parser.next()?;
            sessions::command(command, &mut parser)
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(_) if std::env::args().any(|a| a == "--") => run::run(run::RunArgs::parse(&mut parser)?),
        Some(other) => Err(UsageError(format!(
            "unknown command '{other}' (to run a program in a sandbox: mirage-run [options] -- {other})"
        ))
        .into()),
        None => Err(UsageError("a command is needed".into()).into()),
    }
}

/// Whether the filesystem keeps idle CPUs polling while it is busy (`--[no-]busy-poll`,
/// `busy_poll` in `mirage.toml`; on by default), and whether that was asked for.
#[derive(Clone, Copy, Debug)]
struct BusyPoll {
    on: bool,
    asked: bool,
}

impl BusyPoll {
    /// The command line's choice over the configuration file's, and on when neither chose.
    fn choose(flag: Option<bool>, config: Option<bool>) -> Self {
        let chosen = flag.or(config);
        BusyPoll { on: chosen.unwrap_or(true), asked: chosen == Some(true) }
    }

    /// Says so when busy polling was asked for but is not in effect for `served`: it needs to
    /// open `/dev/cpu_dma_latency` for writing, which takes root (and the device). By default
    /// it goes without saying.
    fn warn_if_not_in_effect(self, served: &mirage_fuse::Mount) {
        if self.asked && !served.busy_polling() {
            eprintln!(
                "mirage-run: --busy-poll is not in effect: /dev/cpu_dma_latency cannot be opened for writing (it needs root)"
            );
        }
    }
}
