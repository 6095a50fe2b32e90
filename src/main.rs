//! The `dte-gateway` command line.

mod cli;
mod cli_batch;

fn main() -> std::process::ExitCode {
    cli::run()
}
