//! `mirage-run [options] -- COMMAND`: the command runs in a sandbox whose root is the FUSE
//! mount of a session over the current directory.
//!
//! The session's tree: a read-only skeleton at `/` (the system directories' mount points,
//! `/dev`, `/proc`, `/tmp`, the home directory and the agent configuration entries that
//! exist), and the workspace (the current directory) at its own absolute path. Inside the
//! sandbox the system directories and the configuration entries are the host's, bound in;
//! everything else of the host is out of reach.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use lexopt::ValueExt;
use mirage_core::{LocalResource, MemoryResource, Mirage, MountOptions, Resource, VPath};
use mirage_sandbox::{Access, Bind, Net, Sandbox, Spec};

use crate::config::{self, Config, MountEntry, Source};
use crate::report::{OnExit, finish};
use crate::sessions::{Claim, Store};
use crate::{Failure, UsageError};

/// Top-level host directories bound read-only (when they exist; links are recreated).
const SYSTEM: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt"];

/// Files of the home directory that hold agents' logins, bound read-write when they exist (a
/// refreshed login must outlive the run); `home` in `mirage.toml` replaces the list.
const HOME_ENTRIES: &[&str] = &[".codex/auth.json", ".claude/.credentials.json", ".config/gh/hosts.yml"];

/// Entries of the home directory that hold agents' settings, caches and toolchains (unless
/// `home` lists them): the sandbox gets a copy of each of its own when it exists, and what it
/// writes there ends with the run, as the host's own tools later run what they hold (hooks,
/// aliases, MCP servers, cargo configuration, toolchains).
const HOME_SCRATCH: &[&str] =
    &[".codex", ".claude", ".claude.json", ".config/gh", ".npm", ".cache", ".cargo", ".rustup"];

/// Entries of the home directory bound read-only when they exist (unless `home` lists
/// them): settings the host's own tools take commands from, which agents only read.
const HOME_READ_ONLY: &[&str] = &[".gitconfig"];

/// The arguments of `mirage-run [options] -- COMMAND`.
#[derive(Debug)]
pub(crate) struct RunArgs {
    command: Vec<String>,
    net: Option<Net>,
    on_exit: Option<OnExit>,
    store: Option<PathBuf>,
    session: Option<String>,
    fork: Option<String>,
    mounts: Vec<MountEntry>,
    /// `--busy-poll` or `--no-busy-poll`, over `mirage.toml`'s `busy_poll`.
    busy_poll: Option<bool>,
    /// `--max-memory`, over `mirage.toml`'s `max_memory`.
    max_memory: Option<Option<u64>>,
}

impl RunArgs {
    /// Reads the options before `--` and the command after it.
    pub(crate) fn parse(parser: &mut lexopt::Parser) -> Result<Self, UsageError> {
        use lexopt::Arg::{Long, Value};
        let (mut net, mut on_exit, mut command) = (None, None, Vec::new());
        let (mut store, mut session, mut fork, mut mounts) = (None, None, None, Vec::new());
        let (mut busy_poll, mut max_memory) = (None, None);
        while let Some(arg) = parser.next()? {
            match arg {
                Long("net") => net = Some(parse_net(&parser.value()?.string()?)?),
                Long("mount") => mounts.push(MountEntry::from_flag(&parser.value()?.string()?, false)?),
                Long("mount-ro") => mounts.push(MountEntry::from_flag(&parser.value()?.string()?, true)?),
                Long("on-exit") => on_exit = Some(OnExit::parse(&parser.value()?.string()?)?),
                Long("store") => store = Some(PathBuf::from(parser.value()?)),
                Long("session") => session = Some(parser.value()?.string()?),
                Long("fork") => fork = Some(parser.value()?.string()?),
                Long("busy-poll") => busy_poll = Some(true),
                Long("no-busy-poll") => busy_poll = Some(false),
                Long("max-memory") => max_memory = Some(crate::memory::parse(&parser.value()?.string()?)?),
                Value(first) => {
                    command.push(first.string()?);
                    command.extend(parser.raw_args()?.map(|a| a.string()).collect::<Result<Vec<_>, _>>()?);
                }
                other => return Err(other.unexpected().into()),
            }
        }
        if command.is_empty() {
            return Err(UsageError("no command: mirage-run [options] -- COMMAND [ARGS]".into()));
        }
        if session.is_some() && fork.is_some() {
            return Err(UsageError("--session and --fork exclude each other".into()));
        }
        Ok(RunArgs { command, net, on_exit, store, session, fork, mounts, busy_poll, max_memory })
    }
}

fn parse_net(value: &str) -> Result<Net, UsageError> {
    let wrong = || UsageError(format!("--net takes host, none or tcp:PORT[,PORT...], not '{value}'"));
    match value {
        "host" => Ok(Net::Host),
        "none" => Ok(Net::None),
        other => {
            let ports = other.strip_prefix("tcp:").ok_or_else(wrong)?;
            let ports: Vec<u16> =
                ports.split(',').map(|p| p.trim().parse()).collect::<Result<_, _>>().map_err(|_| wrong())?;
            Ok(Net::TcpPorts(ports))
        }
    }
}

/// What the run does once the command line and `mirage.toml` are put together.
struct Plan {
    net: Net,
    on_exit: OnExit,
    system: Vec<PathBuf>,
    home: Vec<String>,
    mounts: Vec<MountEntry>,
    busy_poll: crate::BusyPoll,
    /// The limit on session content in memory, when one was chosen.
    max_memory: Option<Option<u64>>,
}

impl Plan {
    fn new(args: &RunArgs, config: Config) -> Result<Plan, Failure> {
        let net = match (args.net.clone(), &config.net) {
            (Some(net), _) => net,
            (None, Some(net)) => parse_net(net)?,
            (None, None) => Net::Host,
        };
        let on_exit = match (args.on_exit, &config.on_exit) {
            (Some(on_exit), _) => on_exit,
            (None, Some(on_exit)) => OnExit::parse(on_exit)?,
            (None, None) => OnExit::Keep,
        };
        if on_exit == OnExit::Discard && args.session.is_some() {
            return Err(UsageError(
                "--on-exit discard would drop all of the session's changes, not just this run's: use --fork NAME"
                    .into(),
            )
            .into());
        }
        let system = config.system.unwrap_or_else(|| SYSTEM.iter().map(|d| Path::new("/").join(d)).collect());
        let home = config.home.unwrap_or_else(|| HOME_ENTRIES.iter().map(|e| (*e).to_owned()).collect());
        let mut mounts = config.mount;
        mounts.extend(args.mounts.iter().cloned());
        let max_memory = match (args.max_memory, &config.max_memory) {
            (Some(limit), _) => Some(limit),
            (None, Some(limit)) => {
                Some(crate::memory::parse(limit).map_err(|e| UsageError(format!("mirage.toml: max_memory: {}", e.0)))?)
            }
            (None, None) => None,
        };
        Ok(Plan {
            net,
            on_exit,
            system,
            home,
            mounts,
            busy_poll: crate::BusyPoll::choose(args.busy_poll, config.busy_poll),
            max_memory,
        })
    }
}

/// Runs the command in the sandbox, then reports and applies `--on-exit`.
pub(crate) fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Failure::Run(format!("{what}: {e}"));
    // Before any thread starts, so that every thread inherits the mask: SIGTERM and SIGHUP
    // go to the command (through the sandbox's helper).
    let signals = crate::signals::Signals::block(&[libc::SIGTERM, libc::SIGHUP]);
    let workspace = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .map_err(|e| fail("cannot use the current directory", &e))?;
    if workspace == Path::new("/") {
        return Err(Failure::Run("the workspace cannot be / itself: run mirage-run from a project directory".into()));
    }
    let plan = Plan::new(&args, config::load(&workspace)?)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail("cannot start", &e))?;
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute());
    let (skeleton, binds) = runtime
        .block_on(skeleton(&plan, &workspace, home.as_deref()))
        .map_err(|e| fail("cannot prepare the sandbox's tree", &e))?;

    // Before the store is read back, so that the content it holds counts.
    crate::memory::apply(plan.max_memory);
    let run = open_session(&args, &workspace)?;
    crate::memory::warn_if_nearly_full();
    let (mirage, session) = (run.mirage.clone(), run.session.clone());
    mirage
        .mount("/", Arc::new(skeleton), MountOptions { read_only: true })
        .map_err(|e| fail("cannot mount the skeleton", &e))?;
    let mut writable = vec![workspace.clone()];
    let mut served = vec![workspace.clone()];
    for entry in &plan.mounts {
        let resource: Arc<dyn Resource> = match entry.source(&workspace).map_err(Failure::Run)? {
            Source::Local(dir) => {
                Arc::new(LocalResource::new(&dir).map_err(|e| fail(&format!("mount {}", entry.path), &e))?)
            }
            Source::Memory => Arc::new(MemoryResource::new()),
            Source::Remote(url) => {
                mirage_resources::open(&url).map_err(|e| fail(&format!("mount {}", entry.path), &e))?
            }
        };
        mirage
            .mount(&entry.path, resource, MountOptions { read_only: entry.read_only })
            .map_err(|e| fail(&format!("mount {}", entry.path), &e))?;
        served.push(PathBuf::from(&entry.path));
        if !entry.read_only {
            writable.push(PathBuf::from(&entry.path));
        }
    }
    let name = session.name().map_err(|e| fail("the session is gone", &e))?;
    eprintln!("mirage-run: in session '{name}'");

    let spec = Spec {
        command: args.command.clone(),
        workdir: workspace.clone(),
        env: std::env::vars().collect(),
        binds,
        masked: host_secrets(),
        writable,
        served,
        net: plan.net.clone(),
        hostname: "mirage".to_owned(),
        // /tmp and the copies of home entries hold an eighth of what the sessions may each (16
        // MiB at least), so that all of it stays well within the RAM when the sessions' limit
        // is half of it.
        tmpfs_size: mirage_core::content_limit().map(|limit| (limit / 8).max(16 << 20)),
    };
    // The terminal's Ctrl-C reaches the command directly: this process ignores it meanwhile.
    crate::signals::ignore_terminal();
    let terminal = crate::terminal::Terminal::save();
    let mut sandbox = Sandbox::start(&spec).map_err(|e| Failure::Run(format!("cannot start the sandbox: {e}")))?;
    let options = mirage_fuse::Options {
        owner: mirage_fuse::Owner { uid: 0, gid: 0 },
        allow_other: true,
        name: "mirage:run".to_owned(),
        runtime: Some(runtime.handle().clone()),
        busy_poll: plan.busy_poll.on,
        ..mirage_fuse::Options::default()
    };
    let served = mirage_fuse::serve_fd(&session, sandbox.take_fuse_fd(), &options)
        .map_err(|e| fail("cannot serve the sandbox's root", &e))?;
    plan.busy_poll.warn_if_not_in_effect(&served);
    sandbox.proceed().map_err(|e| fail("the sandbox ended early", &e))?;
    let helper = sandbox.pid();
    let relay = signals.relay_to(helper);
    let code = sandbox.wait().map_err(|e| Failure::Run(format!("the sandbox failed: {e}")));
    drop(relay);
    if let Some(terminal) = &terminal {
        terminal.restore();
    }
    let code = code?;
    drop(served);
    finish(&runtime, &session, &workspace, plan.on_exit, run.created, true)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Files of the bound system directories that hold the host's secrets: hidden in the
/// sandbox (they read as empty).
fn host_secrets() -> Vec<PathBuf> {
    let mut secrets: Vec<PathBuf> =
        ["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd", "/etc/sudoers"]
            .iter()
            .map(PathBuf::from)
            .collect();
    if let Ok(entries) = std::fs::read_dir("/etc/ssh") {
        secrets.extend(entries.flatten().map(|e| e.path()).filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key"))
        }));
    }
    secrets
}

/// The session a run works in.
struct RunSession {
    mirage: Mirage,
    session: mirage_core::Session,
    /// Made by this run (a fresh root or a fork): dropped from the store once its changes
    /// are committed or discarded.
    created: bool,
    _claim: Claim,
}

/// The session the command runs in, from the store: the named one (created over the
/// workspace if new), a new fork of it, or a new root session `run-N`.
fn open_session(args: &RunArgs, workspace: &Path) -> Result<RunSession, Failure> {
    let dir = match &args.store {
        Some(dir) => dir.clone(),
        None => Store::default_dir()?,
    };
    let mut store = Store::open(&dir)?;
    let Some(name) = args.session.as_ref().or(args.fork.as_ref()) else {
        let name = (1..).map(|n| format!("run-{n}")).find(|n| store.mirage.session(n).is_err()).expect("a free name");
        let session = store.create(&name, workspace)?;
        let claim = store.claim(&name)?;
        return Ok(RunSession { mirage: store.mirage.clone(), session, created: true, _claim: claim });
    };
    let existing = store.mirage.session(name).is_ok();
    if existing
        && let Some(owner) = store.workspace_of(name)
        && owner != workspace
    {
        return Err(Failure::Run(format!(
            "session '{name}' works on {}, not on this directory: run mirage-run from there",
            owner.display()
        )));
    }
    let session = match (&args.fork, existing) {
        (Some(_), true) => {
            store.session(name)?.fork().map_err(|e| Failure::Run(format!("cannot fork '{name}': {e}")))?
        }
        (Some(_), false) => {
            return Err(Failure::Run(format!("there is no session '{name}' to fork (see: mirage-run sessions)")));
        }
        (None, true) => store.session(name)?,
        (None, false) => store.create(name, workspace)?,
    };
    let claimed = session.name().map_err(|e| Failure::Run(format!("the session is gone: {e}")))?;
    let claim = store.claim(&claimed)?;
    Ok(RunSession { mirage: store.mirage.clone(), session, created: args.fork.is_some() || !existing, _claim: claim })
}

/// The read-only tree the sandbox's root starts from, and the host paths to bind into it.
async fn skeleton(
    plan: &Plan,
    workspace: &Path,
    home: Option<&Path>,
) -> mirage_core::Result<(MemoryResource, Vec<Bind>)> {
    let tree = MemoryResource::new();
    let mut binds = Vec::new();
    for host in &plan.system {
        let host = host.clone();
        let Ok(meta) = std::fs::symlink_metadata(&host) else { continue };
        if let Some(parent) = host.parent() {
            mkdir_all(&tree, parent).await?;
        }
        let virt = vpath(&host)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).map_err(|e| mirage_core::Error::io("readlink", e))?;
            tree.symlink(&target.to_string_lossy(), &virt).await?;
        } else if meta.is_dir() {
            tree.mkdir(&virt, 0o755).await?;
            binds.push(Bind { path: host, access: Access::ReadOnly });
        }
    }
    for dir in ["/dev", "/proc", "/tmp"] {
        tree.mkdir(&vpath(Path::new(dir))?, 0o755).await?;
    }
    mkdir_all(&tree, workspace).await?;
    for entry in &plan.mounts {
        mkdir_all(&tree, Path::new(&entry.path)).await?;
    }
    if let Some(home) = home {
        mkdir_all(&tree, home).await?;
        let listed = |entry: &&str| plan.home.iter().any(|h| h == entry);
        let mut entries: Vec<(&str, Access)> = plan
            .home
            .iter()
            .map(|e| (e.as_str(), Access::Writable))
            .chain(
                [(HOME_SCRATCH, Access::Scratch), (HOME_READ_ONLY, Access::ReadOnly)]
                    .into_iter()
                    .flat_map(|(entries, access)| entries.iter().filter(|e| !listed(e)).map(move |e| (*e, access))),
            )
            .collect();
        // Outer entries first: a login file is bound over the copy of the directory it is in.
        entries.sort_by_key(|(entry, _)| Path::new(entry).components().count());
        for (entry, access) in entries {
            let host = home.join(entry);
            // Over the workspace, a bind would hide it from the command.
            if workspace.starts_with(&host) {
                continue;
            }
            // A copy is made of a real directory or file only: a link could lead anywhere
            // (to `/`, say). Other entries may be links (dotfile managers make them) to a
            // directory or a regular file, never to a device.
            let meta = match access {
                Access::Scratch => std::fs::symlink_metadata(&host),
                Access::Writable | Access::ReadOnly => std::fs::metadata(&host),
            };
            let Ok(meta) = meta else { continue };
            if !meta.is_dir() && !meta.is_file() {
                continue;
            }
            if let Some(parent) = host.parent() {
                mkdir_all(&tree, parent).await?;
            }
            if meta.is_dir() {
                mkdir_all(&tree, &host).await?;
            } else if tree.stat(&vpath(&host)?).await.is_err() {
                tree.create(&vpath(&host)?, 0o600).await?;
            }
            binds.push(Bind { path: host, access });
        }
    }
    Ok((tree, binds))
}

fn vpath(path: &Path) -> mirage_core::Result<VPath> {
    VPath::parse(&path.to_string_lossy())
}

/// Creates `dir` and its missing parents in `tree`.
async fn mkdir_all(tree: &MemoryResource, dir: &Path) -> mirage_core::Result<()> {
    let mut so_far = PathBuf::from("/");
    for part in dir.components().skip(1) {
        so_far.push(part);
        let v = vpath(&so_far)?;
        if tree.stat(&v).await.is_err() {
            tree.mkdir(&v, 0o755).await?;
        }
    }
    Ok(())
}
