//! Mirage's core: virtual paths, the [`Resource`] trait, the mount table and copy-on-write
//! sessions that fork, diff, commit and abort.
//!
//! - [`Mirage`] owns the mount table and every session (in memory, or persistent with
//!   [`Mirage::open`]).
//! - A [`Resource`] is a backend mounted into the tree: [`MemoryResource`] (RAM),
//!   [`LocalResource`] (a host directory, confined to it), or one of your own.
//! - A [`Session`] is a copy-on-write view of the whole tree. Reads fall through to the
//!   resources; writes stay in the session until it commits. [`Session::fork`] is O(1) and
//!   fully isolated; [`Session::commit`] applies a fork to its parent (first winner wins) or a
//!   root session to the resources (conditional writes against what it saw).
//!
//! This crate knows nothing of FUSE, Node.js or sandboxes: those sit on top of it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use mirage_core::{CommitOptions, ErrorKind, MemoryResource, Mirage, MountOptions};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mirage = Mirage::new();
//! mirage.mount("/data", Arc::new(MemoryResource::new()), MountOptions::default())?;
//! let main = mirage.create_session("main")?;
//!
//! let (a, b) = (main.fork()?, main.fork()?);
//! a.write_file("/data/x", "from a").await?;
//! b.write_file("/data/x", "from b").await?;
//! assert!(!main.exists("/data/x").await?, "forks are isolated");
//!
//! a.commit(CommitOptions::default()).await?;
//! let lost = b.commit(CommitOptions::default()).await.unwrap_err();
//! assert_eq!(lost.kind(), ErrorKind::Conflict);
//! assert_eq!(b.read_file("/data/x").await?, "from b", "the loser keeps its work");
//! assert_eq!(main.read_file("/data/x").await?, "from a");
//! # Ok::<(), mirage_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Why not a plain overlay filesystem?
//!
//! An overlay (overlayfs, a FUSE union) gives one writable layer over one directory. Agents
//! need many: a fork per attempt, over every kind of backend at once, with a way to pick a
//! winner and apply it without losing the others' work. Sessions are persistent maps, so a
//! fork costs the same with ten changed files or a hundred thousand.

pub mod budget;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod local;
pub mod memory;
pub mod mount;
pub mod path;
pub mod resource;

mod chunks;
mod commit;
mod ops;
mod overlay;
mod session;
mod snapshot;
mod state;
mod store;
mod watch;

pub use budget::{ENTRY_COST, Held, content_held, content_limit, content_refusals, set_content_limit};
pub use commit::{Change, ChangeKind, TEXT_DIFF_LIMIT};
pub use error::{Error, ErrorKind, Result};
pub use local::LocalResource;
pub use memory::MemoryResource;
pub use mount::{Mount, MountOptions, MountTable};
pub use ops::MAX_FILE_SIZE;
pub use path::VPath;
pub use resource::{
    ByteStream, Capabilities, DirEntry, FileType, Metadata, Precondition, Resource, Staged, Update, Version, hole,
    is_hole,
};
pub use session::{CommitOptions, CommitReport, Mirage, Session, SessionInfo};
pub use snapshot::FileSnapshot;
pub use watch::{Notice, Watch};
