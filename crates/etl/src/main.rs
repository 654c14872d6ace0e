//! `etl`: the command-line entry point. `main → run → ExitCode`; errors are printed once.

mod cli;
mod cmd_kinesis;
mod cmd_warehouse;
mod commands;
mod setup;

use clap::Parser;
use std::process::ExitCode;

// DataFusion and Arrow allocate many short-lived buffers; mimalloc handles that pattern better
// than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    setup::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
