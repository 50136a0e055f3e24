//! The command line as clap parses it: what `jitbroker --help` shows. Only clap and std
//! here: `crates/jit-docgen` compiles this file in to write jitbroker's man pages, so they
//! cannot drift from the binary. `cli.rs` runs the commands.
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The settings file when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/jitbroker/broker.toml";

#[derive(Parser)]
#[command(
    name = "jitbroker",
    version,
    about = "jitrun's broker: requests, approvals, signed grants, revocation lists (docs/broker.md)"
)]
pub struct Cli {
    /// Settings file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the signing key (and broker.toml if missing) and an empty store.
    Init,
    /// Serve the HTTP API.
    Serve,
    /// Enrolled hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// The audit table.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the public key (PASERK) that hosts install in /etc/jitrun/keys.d/.
    Pubkey,
    /// Write a new signing key to PATH (0600) and its public key to PATH with .pub (0644),
    /// for a key roll-over (docs/broker.md); prints the public key.
    Keygen {
        /// Where to write the new secret key; must not exist.
        path: PathBuf,
    },
    /// Copy a SQLite store into an empty PostgreSQL database (every table, the audit chain
    /// as it is), then compare both row by row and verify the chain. Stop the broker first.
    Migrate {
        /// The SQLite store: sqlite:/var/lib/jitbroker/broker.db (or a path).
        #[arg(long)]
        from: String,
        /// The PostgreSQL store: postgres://USER@HOST:PORT/DATABASE, without a password (it
        /// comes from broker.toml's [postgres] password_file, or $JITBROKER_STORE_PASSWORD).
        #[arg(long)]
        to: String,
    },
    /// Sessions of the web pages (people signed in at /ui/ through the OpenID Connect provider).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Sealed break-glass grants: issued in advance, kept offline, for when no broker can be
    /// reached.
    #[command(subcommand, name = "break-glass")]
    BreakGlass(BreakGlassCommand),
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// List open sessions, newest first.
    List {
        /// Only USER's.
        #[arg(long)]
        user: Option<String>,
        /// Ended ones too (kept for a day after they end).
        #[arg(long)]
        all: bool,
        /// Print JSON: {"sessions": [{"id", "user", "groups", "issuer", "subject", "created", "last_seen", "expires", "ended", "end_reason"}]}.
        #[arg(long)]
        json: bool,
    },
    /// End sessions now (the browser must sign in again): one by id, every one of a user, or all.
    End {
        /// The session's id (from `jitbroker session list`).
        #[arg(required_unless_present_any = ["user", "all"], conflicts_with_all = ["user", "all"])]
        id: Option<String>,
        /// Every open session of USER (when they leave, or their groups change at the provider).
        #[arg(long, conflicts_with = "all")]
        user: Option<String>,
        /// Every open session.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub enum BreakGlassCommand {
    /// Issue COUNT single-use break-glass grants for RULE, valid for VALIDITY, and print each
    /// as text and as a QR code (the tokens are not kept: store the printout offline).
    Seal {
        /// The rule (its workflow must allow break-glass; hosts accept the grants only if the
        /// rule sets sealed_validity).
        #[arg(long)]
        rule: String,
        /// The user the grants are for (claim `sub`).
        #[arg(long)]
        user: String,
        /// Also bind the grants to this numeric uid.
        #[arg(long)]
        uid: Option<u32>,
        /// Hosts the grants are valid on (names, or globs within the workflow's hosts); each
        /// grant works once on each of them.
        #[arg(long, num_args = 1.., required = true, value_name = "HOST")]
        hosts: Vec<String>,
        /// How many grants.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// How long each stays valid (at most the rules' sealed_validity on the hosts).
        #[arg(long, default_value = "30d")]
        validity: String,
        /// Why this batch exists (in every grant and the audit trail).
        #[arg(long)]
        reason: String,
        /// Ticket reference.
        #[arg(long)]
        ticket: Option<String>,
        /// Also write each grant as DIR/GRANT_ID.svg (its QR code) and DIR/GRANT_ID.txt.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// List sealed grants: batch, rule, user, hosts, validity, revoked, and which hosts
    /// reported using each.
    List {
        /// Only this batch.
        #[arg(long)]
        batch: Option<String>,
        /// Print JSON: {"sealed": [grant…]}.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a batch (every grant of it not yet revoked) or one sealed grant.
    Revoke {
        /// A batch id, or a grant id.
        which: String,
        /// Why (on the revocation list hosts fetch).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// Enroll host NAME with its public key (k4.public.… or a file holding it).
    Add {
        /// The host's name, as its attestations give it (its settings' `host`, else uname).
        name: String,
        /// Its public key: a k4.public.… PASERK, or a file holding one (/etc/jitrun/host.pub).
        key: String,
    },
    /// Print a one-time enrollment token for host NAME.
    EnrollToken {
        /// The name the host will enroll under.
        name: String,
        /// How long the token is valid.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// List hosts.
    List {
        /// Print JSON: {"hosts": [{"name", "public_key", "kid", "state", "created", "retired"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Retire host NAME: its attestations are refused from now on.
    Retire {
        /// The host's enrolled name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken row.
    Verify,
}
