//! Runnable examples of Mirage's Rust API: `agents` (fork, diff, commit the winner) and
//! `kv_resource` (a resource written by a user, mounted beside the built-in ones).
