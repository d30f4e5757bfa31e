//! Turns each ```rust block of docs/SEMANTICS.md into a test, so that the document's examples
//! are checked on every test run. The first block is the setup every other block runs after.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let doc_path = Path::new(&manifest_dir).join("../docs/SEMANTICS.md");
    println!("cargo::rerun-if-changed={}", doc_path.display());
    let doc = std::fs::read_to_string(&doc_path).expect("docs/SEMANTICS.md is readable");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```rust") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().expect("inside a block")),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let (setup, examples) = blocks.split_first().expect("SEMANTICS.md has a setup block");
    let mut out = String::new();
    for (i, example) in examples.iter().enumerate() {
        write!(
            out,
            "#[tokio::test]\nasync fn semantics_example_{n}() -> mirage_core::Result<()> {{\n{setup}{example}Ok(())\n}}\n\n",
            n = i + 1
        )
        .expect("writing to a string");
    }
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("semantics.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
