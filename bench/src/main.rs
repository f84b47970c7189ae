//! `rim-bench`: parse the command line, run the benchmark, report an error.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match rim_bench::main(rim_bench::cli::Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rim-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
