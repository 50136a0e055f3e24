//! jitbroker: see docs/broker.md.
mod api;
mod args;
mod audit_chain;
mod auth;
mod broker;
mod cli;
mod config;
mod conn;
mod error;
mod grants;
mod hosts;
mod limits;
mod metrics;
mod model;
mod revocation_list;
mod roles;
mod sealed;
mod sealed_cli;
mod serve;
mod store;
mod syslog;
mod syslog_sender;
mod text;
mod watch;
mod web;
mod webhooks;
mod windows;
mod workflow;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    match cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("jitbroker: {e}");
            std::process::exit(1);
        }
    }
}
