//! `nodenet run|agent`.

use std::process::ExitCode;

use crate::cli::RunArgs;
use crate::config::{Config, EXIT_CONFIG};
use crate::{daemon, logging};

/// Validates the configuration (exit 64 if bad, before anything is
/// touched), then runs the daemon (exit 1 if it fails to start).
pub fn main(args: RunArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("nodenet: invalid configuration: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Our errors already carry their causes in their messages.
            tracing::error!(error = %err, "nodenet failed");
            ExitCode::FAILURE
        }
    }
}
