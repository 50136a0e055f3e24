//! jitctl: jitrun's unprivileged client.
mod audit;
mod cli;
mod diff;
mod error;
mod grant;
mod keygen;
mod lint;
mod pack;
mod policy;
mod sudoers;
mod ulid;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Keygen(args) => keygen::run(&args),
        cli::Command::Grant(cli::GrantCommand::Mint(args)) => grant::mint(&args),
        cli::Command::Grant(cli::GrantCommand::Show(args)) => grant::show(&args),
        cli::Command::Policy(cli::PolicyCommand::Check(args)) => policy::check(&args),
        cli::Command::Policy(cli::PolicyCommand::Pack(args)) => pack::pack(&args),
        cli::Command::Policy(cli::PolicyCommand::Activate(args)) => pack::activate(&args),
        cli::Command::Policy(cli::PolicyCommand::Test(args)) => policy::test(&args),
        cli::Command::Policy(cli::PolicyCommand::Explain(args)) => policy::explain(&args),
        cli::Command::Policy(cli::PolicyCommand::Diff(args)) => diff::run(&args),
        cli::Command::Policy(cli::PolicyCommand::ImportSudoers(args)) => sudoers::run(&args),
        cli::Command::Audit(cli::AuditCommand::Flush(args)) => audit::flush(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitctl: {e}");
            ExitCode::FAILURE
        }
    }
}
