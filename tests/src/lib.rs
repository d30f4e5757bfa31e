//! Cross-crate tests of Mirage. The library is empty; the tests live in `tests/`, and
//! `build.rs` turns every Rust example of `docs/SEMANTICS.md` into one of them.
