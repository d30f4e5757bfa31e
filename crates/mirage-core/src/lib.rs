//! Mirage's core: virtual paths, the [`Resource`] trait, the mount table and copy-on-write
//! sessions.

pub mod error;
pub mod memory;
pub mod path;
pub mod resource;

pub use error::{Error, ErrorKind, Result};
pub use memory::MemoryResource;
pub use path::VPath;
pub use resource::{ByteStream, Capabilities, DirEntry, FileType, Metadata, Precondition, Resource, Version};
