//! `etl`: the command-line entry point. `main → run → ExitCode`; errors are printed once.

mod cli;
mod cmd_backfill;
mod cmd_compact;
mod cmd_dashboards;
mod cmd_ingest;
mod cmd_kinesis;
mod cmd_leases;
mod cmd_query;
mod cmd_warehouse;
mod commands;
mod config;
mod observe;
mod setup;
mod shutdown;

use clap::Parser;
use std::process::ExitCode;

// jemalloc: as fast as mimalloc on the ingest path and far thriftier with memory. Measured on
// the 5M-event demo (2 cores): mimalloc v3 peaked at 0.9-1.6 GiB (its per-thread pages and huge
// pages held 3-5x the live heap while DataFusion scanned Parquet for the views: 1.4 GiB vs
// 0.3 GiB for `etl views`), mimalloc v2 at ~1 GiB, glibc at 630 MiB but 10-25% slower, jemalloc
// at ~670 MiB. One-core ingest, interleaved runs: mixed stream 417k events/s with either.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`_RJEM_MALLOC_CONF` in the environment overrides
/// them):
/// - `background_thread`: freed memory goes back to the system on time, also while the service
///   idles (otherwise only later allocations trigger it);
/// - `thp`, `metadata_thp`: transparent huge pages for its memory. Without them each 4 KiB page
///   of a fresh batch buffer faults on its own: twice the kernel time and ~12% slower ingest,
///   for ~60 MiB less peak memory in the demo.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 54] = b"background_thread:true,thp:always,metadata_thp:always\0";

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
