#![forbid(unsafe_code)]

/// mimalloc: glibc's malloc cost about a fifth of the server's CPU under load (sled copies
/// tree nodes on every insert; replies are built from many small strings). See the README's
/// Benchmarks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = leadrouter_sim::cli::Cli::parse();
    match leadrouter_sim::cli::main_with(cli, &mut std::io::stdout()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leadrouter-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
