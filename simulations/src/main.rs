#![forbid(unsafe_code)]

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
