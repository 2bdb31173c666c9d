//! `nodenet cleanup [--dry-run]`: prints one line per removed (or, with
//! --dry-run, removable) object on stdout; errors go to the log and make
//! the exit status 1 after every step has been tried.

use std::process::ExitCode;

use cleanup::{Mode, Paths};

use crate::cli::CleanupArgs;
use crate::config::{EXIT_CONFIG, LogFormat};
use crate::logging;

pub fn main(args: CleanupArgs) -> ExitCode {
    let format = match args.log_format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            eprintln!("nodenet: --log-format: invalid value {other:?}; valid values: text, json");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(format);
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Remove
    };
    let paths = Paths {
        data_dir: args.data_dir,
        run_dir: args.run_dir,
        cni_conf_dir: args.cni_conf_dir,
        cni_bin_dir: args.cni_bin_dir,
    };
    // Current-thread runtime: the netlink socket and the `nft` children all
    // belong to this thread's network namespace.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("nodenet: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(cleanup::run(&cleanup::steps(&paths), mode));
    print_report(&report)
}

fn print_report(report: &cleanup::Report) -> ExitCode {
    for item in &report.removed {
        println!("{item}");
    }
    for err in &report.errors {
        tracing::error!(error = %err, "cleanup step failed");
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
