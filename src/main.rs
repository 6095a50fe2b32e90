//! The `dte-gateway` command line.

mod cli;
mod cli_batch;
mod cli_caf;
mod cli_directory;
mod cli_doctor;
mod cli_pdf;
mod cli_received;

fn main() -> std::process::ExitCode {
    cli::run()
}
