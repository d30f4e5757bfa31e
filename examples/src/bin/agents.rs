//! Mirage's main job in one run: two "agents" work on forks of one session over a project
//! directory and a RAM scratch space; each fork's diff is shown, the winner is committed
//! (aborting the loser in the same step) and its changes are written to disk.
//!
//! Usage: `agents [DIR]`. Without DIR, a small project is created in a fresh directory.

use std::path::PathBuf;
use std::sync::Arc;

use mirage_core::{CommitOptions, LocalResource, MemoryResource, Mirage, MountOptions, Result, Session};

const PROJECT: &[(&str, &str)] = &[
    ("README.md", "# greeter\n\nPrints a greeting.\n"),
    ("src/greet.py", "def greet(name):\n    return 'Hello ' + name\n"),
    ("tests/test_greet.py", "from src.greet import greet\n\nassert greet('x') == 'Hello x'\n"),
];

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("agents: {e}");
        std::process::exit(1);
    }
}

fn project_dir() -> std::io::Result<PathBuf> {
    if let Some(dir) = std::env::args_os().nth(1) {
        return Ok(PathBuf::from(dir));
    }
    let dir = std::env::temp_dir().join(format!("mirage-demo-{}", std::process::id()));
    for (path, content) in PROJECT {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("a relative file path has a parent"))?;
        std::fs::write(file, content)?;
    }
    Ok(dir)
}

async fn show_diff(agent: &Session) -> Result<()> {
    println!("\n== diff of {} ==", agent.name()?);
    for change in agent.diff().await? {
        let size = |s: Option<u64>| s.map_or("-".to_owned(), |s| s.to_string());
        let sizes = format!("{} -> {} bytes", size(change.old_size), size(change.new_size));
        println!("{:?} {:?} {} ({sizes})", change.kind, change.file_type, change.path);
        if change.file_type == mirage_core::FileType::File {
            print!("{}", agent.diff_text(change.path.as_str()).await?);
        }
    }
    Ok(())
}

async fn run() -> Result<()> {
    let dir = project_dir().map_err(|e| mirage_core::Error::io("create demo project", e))?;
    println!("project directory: {}", dir.display());

    let mirage = Mirage::new();
    mirage.mount("/project", Arc::new(LocalResource::new(&dir)?), MountOptions::default())?;
    mirage.mount("/scratch", Arc::new(MemoryResource::new()), MountOptions::default())?;
    let main = mirage.create_session("main")?;
    main.chdir("/project").await?;

    let careful = main.fork_named("careful")?;
    let hasty = main.fork_named("hasty")?;

    careful.write_file("src/greet.py", "def greet(name: str) -> str:\n    return f'Hello, {name}!'\n").await?;
    careful
        .write_file("tests/test_greet.py", "from src.greet import greet\n\nassert greet('x') == 'Hello, x!'\n")
        .await?;
    careful.append("README.md", "\nNow with type hints.\n").await?;
    careful.write_file("/scratch/plan.txt", "1. add type hints\n2. fix the test\n").await?;

    hasty.write_file("src/greet.py", "greet = lambda n: 'hi ' + n\n").await?;
    hasty.remove_all("tests", false).await?;

    println!("careful sees /scratch/plan.txt: {}", careful.exists("/scratch/plan.txt").await?);
    println!("hasty sees /scratch/plan.txt:   {}", hasty.exists("/scratch/plan.txt").await?);
    println!("main still sees tests/ (hasty deleted it in its fork): {}", main.exists("tests/test_greet.py").await?);

    show_diff(&careful).await?;
    show_diff(&hasty).await?;

    let report = careful.commit(CommitOptions { winner_takes_all: true, ..CommitOptions::default() }).await?;
    println!("\ncommitted careful into main: {} paths; aborted: {:?}", report.applied.len(), report.aborted);
    let report = main.commit(CommitOptions::default()).await?;
    println!("committed main to the resources: {} paths", report.applied.len());
    for path in &report.applied {
        println!("  {path}");
    }

    println!("\n== on disk: src/greet.py ==");
    print!("{}", std::fs::read_to_string(dir.join("src/greet.py")).map_err(|e| mirage_core::Error::io("read", e))?);
    println!("tests/ still on disk: {}", dir.join("tests/test_greet.py").exists());
    Ok(())
}
