mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if cli::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // As anyhow's own `main` prints it: the message, then its causes.
            eprintln!("Error: {error:?}");
            ExitCode::FAILURE
        }
    }
}
