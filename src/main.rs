//! The `dte-gateway` command line.

mod cli;
mod cli_batch;
mod cli_caf;
mod cli_received;
mod cli_doctor;
mod cli_pdf;

fn main() -> std::process::ExitCode {
    cli::run()
}
