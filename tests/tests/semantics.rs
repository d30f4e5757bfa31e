//! The examples of docs/SEMANTICS.md, each run as a test after the document's setup block.
#![allow(unused_imports, unused_variables)]

include!(concat!(env!("OUT_DIR"), "/semantics.rs"));
