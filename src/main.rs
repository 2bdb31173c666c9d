//! The `nodenet` binary: the node daemon, its cleanup command, and — when a
//! container runtime invokes it with CNI_COMMAND set — the CNI plugin.

mod cli;
mod commands;
mod config;
mod daemon;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A runtime calls CNI plugins with CNI_COMMAND in the environment and
    // the request on stdin; nothing else (no flag parsing, no logging
    // setup) may run before the plugin owns stdout.
    if std::env::var_os("CNI_COMMAND").is_some() {
        return flannel::cni::run_plugin();
    }
    match cli::Cli::parse().command {
        cli::Command::Run(args) => commands::run::main(*args),
        cli::Command::Cleanup(args) => commands::cleanup::main(args),
    }
}
