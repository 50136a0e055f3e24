//! jitctl: jitrun's unprivileged client.
mod audit;
mod cli;
mod client;
mod compile;
mod diff;
mod error;
mod grant;
mod hostkey;
mod keygen;
mod lint;
mod pack;
mod policy;
mod requests;
mod revocations;
mod sealed;
mod sessions;
mod sudoers;
mod sync;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let broker = || client::Broker::from_config(&cli.broker);
    let done = |r: error::Result<()>| r.map(|()| 0);
    let result: error::Result<i32> = match &cli.command {
        cli::Command::Request(a) => broker().and_then(|b| requests::request(&b, a)),
        cli::Command::Requests(a) => broker().and_then(|b| requests::requests(&b, a)),
        cli::Command::Show(a) => broker().and_then(|b| requests::show(&b, a)),
        cli::Command::Approve(a) => broker().and_then(|b| requests::approve(&b, a)),
        cli::Command::Deny(a) => broker().and_then(|b| requests::deny(&b, a)),
        cli::Command::Cancel(a) => broker().and_then(|b| requests::cancel(&b, a)),
        cli::Command::Grants(a) => broker().and_then(|b| requests::grants(&b, a)),
        cli::Command::Sync => done(broker().and_then(|b| sync::sync(&b, true))),
        cli::Command::Revoke(a) => {
            broker().and_then(|b| requests::revoke(&b, a, sync::stored_token(&a.id)))
        }
        cli::Command::Revocations(cli::RevocationsCommand::Sync) => {
            broker().and_then(|b| revocations::sync(&b))
        }
        cli::Command::Revocations(cli::RevocationsCommand::Watch(a)) => {
            broker().and_then(|b| revocations::watch(&b, a))
        }
        cli::Command::HostKey(cli::HostKeyCommand::Init(a)) => hostkey::init(a),
        cli::Command::Keygen(args) => done(keygen::run(args)),
        cli::Command::Grant(cli::GrantCommand::Mint(args)) => done(grant::mint(args)),
        cli::Command::Grant(cli::GrantCommand::Show(args)) => done(grant::show(args)),
        cli::Command::Policy(cli::PolicyCommand::Check(args)) => done(policy::check(args)),
        cli::Command::Policy(cli::PolicyCommand::Pack(args)) => done(pack::pack(args)),
        cli::Command::Policy(cli::PolicyCommand::Activate(args)) => done(pack::activate(args)),
        cli::Command::Policy(cli::PolicyCommand::Compile) => done(compile::run()),
        cli::Command::Policy(cli::PolicyCommand::Test(args)) => done(policy::test(args)),
        cli::Command::Policy(cli::PolicyCommand::Explain(args)) => done(policy::explain(args)),
        cli::Command::Policy(cli::PolicyCommand::Diff(args)) => done(diff::run(args)),
        cli::Command::Policy(cli::PolicyCommand::ImportSudoers(args)) => done(sudoers::run(args)),
        cli::Command::Audit(cli::AuditCommand::Flush(args)) => done(audit::flush(args)),
        cli::Command::Sessions(cmd) => sessions::run(cmd),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code.clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("jitctl: {e}");
            ExitCode::FAILURE
        }
    }
}
