//! Mirage's core: virtual paths, the [`Resource`] trait, the mount table and copy-on-write
//! sessions.

mod commit;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod local;
pub mod memory;
pub mod mount;
mod ops;
mod overlay;
pub mod path;
pub mod resource;
mod session;
mod state;
mod store;

pub use commit::{Change, ChangeKind};
pub use error::{Error, ErrorKind, Result};
pub use local::LocalResource;
pub use memory::MemoryResource;
pub use mount::{Mount, MountOptions, MountTable};
pub use path::VPath;
pub use resource::{ByteStream, Capabilities, DirEntry, FileType, Metadata, Precondition, Resource, Version};
pub use session::{CommitOptions, CommitReport, Mirage, Session, SessionInfo};
