//! Command line (clap derive).
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "jitctl",
    version,
    about = "jitrun's unprivileged client: ask the broker for access, approve, sync grants and revocations; keys, offline grants, policy checks",
    propagate_version = true
)]
pub struct Cli {
    /// Broker URL, e.g. https://broker-1:7443; repeat it for replicas, tried in order (default:
    /// `broker` in ~/.config/jitrun/client.toml, else /etc/jitrun/client.toml)
    #[arg(long, global = true, value_name = "URL")]
    pub broker: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask the broker for a grant for RULE (approvers are notified)
    Request(RequestArgs),
    /// List requests: yours (--mine, the default) or those waiting for you (--pending)
    Requests(RequestsArgs),
    /// Show one request: state, approvals, what happens next
    Show(IdArgs),
    /// Approve a pending request (you cannot approve your own)
    Approve(ApproveArgs),
    /// Deny a pending request
    Deny(DenyArgs),
    /// Cancel your own pending request
    Cancel(CancelArgs),
    /// List your grants
    Grants(ListArgs),
    /// Fetch your approved, unexpired, unrevoked grants into ~/.local/state/jitrun/grants/
    Sync,
    /// Revoke a grant: hosts refuse it and end commands running on it
    Revoke(RevokeArgs),
    /// The broker's revocation list on this host
    #[command(subcommand)]
    Revocations(RevocationsCommand),
    /// This host's attestation key (/etc/jitrun/host.key)
    #[command(subcommand, name = "host-key")]
    HostKey(HostKeyCommand),
    /// Generate an Ed25519 signing key pair as PASERK (k4.secret, k4.public); prints its kid
    Keygen(KeygenArgs),
    /// Mint and inspect grant tokens
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Check, test, explain, compare and import policy; build and activate policy packages
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// jitrun's local audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Session recordings (/var/log/jitrun/sessions, root only): list, play, rebuild from
    /// syslog, prune
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The policy rule to activate (as named in /etc/jitrun/policy.toml)
    #[arg(value_name = "RULE")]
    pub rule: String,
    /// Why you need it (shown to approvers, written to the grant and the audit trail)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Narrow the rule to one command pattern (policy syntax, e.g. "/usr/sbin/ip link **")
    #[arg(long, value_name = "PATTERN")]
    pub cmd: Option<String>,
    /// How long the grant lasts, e.g. "30m" (at most the workflow's max_ttl)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Ticket reference
    #[arg(long, value_name = "T")]
    pub ticket: Option<String>,
    /// Run-as identity: "invoker", "root" or a user name (must be allowed by the rule)
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Host name or glob the grant should be valid on (repeatable; default: this host)
    #[arg(long = "host", value_name = "PATTERN")]
    pub hosts: Vec<String>,
    /// Emergency access without approval, where the workflow allows it (audited at alert severity)
    #[arg(long)]
    pub break_glass: bool,
    /// Wait until the request is decided; exit 0 when approved (the grant is then synced), 1 otherwise
    #[arg(long)]
    pub wait: bool,
    /// Print the request as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    /// Your own requests (the default)
    #[arg(long, conflicts_with = "pending")]
    pub mine: bool,
    /// Requests waiting for a decision that you may approve
    #[arg(long)]
    pub pending: bool,
    /// JSON output, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Request id (a ULID, as `jitctl requests` shows it)
    #[arg(value_name = "ID")]
    pub id: String,
    /// JSON output, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Request id
    #[arg(value_name = "ID")]
    pub id: String,
    /// A note for the requester and the audit trail
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct DenyArgs {
    /// Request id
    #[arg(value_name = "ID")]
    pub id: String,
    /// Why (shown to the requester)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Request id
    #[arg(value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// JSON output, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Grant id (the token's jti, as `jitctl grants` shows it)
    #[arg(value_name = "GRANT_ID")]
    pub id: String,
    /// Why (written to the revocation list, shown by jitrun)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum RevocationsCommand {
    /// Fetch the broker's signed revocation list, verify it with /etc/jitrun/keys.d/ and
    /// write it to /var/lib/jitrun/revocations (as root; a lower seq than on disk is refused);
    /// then report uses of sealed break-glass grants on this host
    Sync,
    /// Keep /var/lib/jitrun/revocations current within about a second of a revocation: hold a
    /// watch on the broker (GET /v1/revocations?after_seq=N, answered when the list changes),
    /// write each new list as sync does, and watch again; runs until stopped (as root, the
    /// jitrun-revocations-watch service); brokers are tried in the order of client.toml
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// How long each watch may be held by the broker before it answers with the unchanged
    /// list (the broker's http.watch_hold caps it)
    #[arg(long, value_name = "DURATION", default_value = "50s")]
    pub wait: String,
}

#[derive(Debug, Subcommand)]
pub enum HostKeyCommand {
    /// Create this host's attestation key pair (as root) and print how to enroll it
    Init(HostKeyInitArgs),
}

#[derive(Debug, Args)]
pub struct HostKeyInitArgs {
    /// Secret key file (created root 0600)
    #[arg(long, value_name = "FILE", default_value = "/etc/jitrun/host.key")]
    pub secret: PathBuf,
    /// Public key file (0644), to enroll at the broker
    #[arg(long, value_name = "FILE", default_value = "/etc/jitrun/host.pub")]
    pub public: PathBuf,
    /// Replace an existing key (the host must then be enrolled again)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Send the events waiting in /var/lib/jitrun/spool to the syslog socket of
    /// /etc/jitrun/jitrun.toml, in order, each once (as root)
    Flush(FlushArgs),
}

#[derive(Debug, Args)]
pub struct FlushArgs {
    /// Settings file that names the syslog socket
    #[arg(long, value_name = "FILE", default_value = "/etc/jitrun/jitrun.toml")]
    pub settings: PathBuf,
    /// Spool directory
    #[arg(long, value_name = "DIR", default_value = "/var/lib/jitrun/spool")]
    pub spool: PathBuf,
}

/// Where jitrun writes session recordings.
pub const SESSIONS_DIR: &str = "/var/log/jitrun/sessions";

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List the recordings, newest first: session id, start, user, run-as, rule, duration,
    /// size, how it ended, command
    List(SessionsListArgs),
    /// Play a recording on this terminal with its timing (q or Ctrl-C stops, space pauses)
    Play(SessionsPlayArgs),
    /// Rebuild a recording from the session.io events syslog kept, checking every chunk
    Fetch(SessionsFetchArgs),
    /// Remove the recordings last written longer ago than --older-than (as root)
    Prune(SessionsPruneArgs),
}

#[derive(Debug, Args)]
pub struct SessionsListArgs {
    /// Only the sessions of this invoking user (a name or a uid)
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only the sessions started at or after T: RFC 3339 ("2026-11-25T17:00:00Z"), a date
    /// ("2026-11-25", UTC), or how long ago ("2h", "7d")
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// The recordings directory
    #[arg(long, value_name = "DIR", default_value = SESSIONS_DIR)]
    pub dir: PathBuf,
    /// JSON output (one array), for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionsPlayArgs {
    /// A session id (32 hex digits, as `jitctl sessions list` shows it) or a .cast file
    #[arg(value_name = "ID|FILE")]
    pub session: String,
    /// Playback speed: 2 plays twice as fast, 0.5 half as fast
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
    /// Cut pauses longer than this many seconds to this
    #[arg(long, value_name = "SECONDS")]
    pub idle_limit: Option<f64>,
    /// Watch a session that is still being recorded: what is there at once (no pauses), then
    /// what comes, as it comes, until the recording ends
    #[arg(long)]
    pub follow: bool,
    /// The recordings directory (for a session id)
    #[arg(long, value_name = "DIR", default_value = SESSIONS_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SessionsFetchArgs {
    /// The session id (32 hex digits: jitrun.session_id of the audit events)
    #[arg(value_name = "ID")]
    pub session: String,
    /// Files syslog wrote: the JSON lines of packaging/siem/rsyslog (or of docs/audit.md's
    /// configuration), or raw syslog lines; "-" reads standard input
    #[arg(long = "from", value_name = "FILE", required = true, num_args = 1..)]
    pub from: Vec<PathBuf>,
    /// Where to write the recording (default: ./ID.cast; "-": standard output)
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write what could be rebuilt even when chunks are missing or do not match (with a
    /// marker at each gap); the exit status is still 1
    #[arg(long)]
    pub partial: bool,
    /// Replace the output file if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SessionsPruneArgs {
    /// Remove the recordings last written longer ago than this, e.g. "90d"
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The recordings directory
    #[arg(long, value_name = "DIR", default_value = SESSIONS_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (created with mode 0600)
    #[arg(long, value_name = "FILE")]
    pub secret: PathBuf,
    /// Where to write the public key (mode 0644), for /etc/jitrun/keys.d/ on the hosts
    #[arg(long, value_name = "FILE")]
    pub public: PathBuf,
    /// Replace existing files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Sign a grant offline with a secret key; prints the token
    Mint(Box<MintArgs>),
    /// Print a grant's claims, and verify its signature when given public keys
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// Secret key file (PASERK k4.secret)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// User name the grant is for (claim `sub`)
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// Policy rule the grant activates
    #[arg(long, value_name = "NAME")]
    pub rule: String,
    /// Host name or `*`-glob the grant is valid on (repeatable; at least one)
    #[arg(long = "host", value_name = "PATTERN", required = true)]
    pub hosts: Vec<String>,
    /// Lifetime from the start, e.g. "30m", "1h30m"
    #[arg(long, value_name = "DURATION")]
    pub ttl: String,
    /// Start of validity: RFC 3339 time, or relative to now ("-10m", "+5m"); default now
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub not_before: Option<String>,
    /// Capabilities, comma-separated, narrowing the rule's (e.g. "net_raw,CAP_NET_ADMIN")
    #[arg(long, value_name = "LIST")]
    pub caps: Option<String>,
    /// Command pattern narrowing the rule's commands (policy syntax, e.g. "/usr/sbin/ip link **")
    #[arg(long, value_name = "PATTERN")]
    pub cmd: Option<String>,
    /// Run-as identity: "invoker", "root" or a user name (must be allowed by the rule)
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Who approved (repeatable)
    #[arg(long = "approver", value_name = "NAME")]
    pub approvers: Vec<String>,
    /// Ticket reference
    #[arg(long, value_name = "T")]
    pub ticket: Option<String>,
    /// Why access is needed
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// How many commands the grant may start
    #[arg(long, value_name = "N")]
    pub max_uses: Option<u32>,
    /// Mark as break-glass (issued without approval; audited at alert severity)
    #[arg(long)]
    pub break_glass: bool,
    /// A sealed break-glass grant, to keep offline: implies --break-glass and --max-uses 1;
    /// hosts accept it only for rules with sealed_validity, and end its command after the
    /// rule's max_duration (jitbroker break-glass seal issues them in batches)
    #[arg(long)]
    pub sealed: bool,
    /// Also bind the grant to this numeric uid
    #[arg(long, value_name = "N")]
    pub uid: Option<u32>,
    /// Issuer id (claim `iss`); default jitctl@<hostname>
    #[arg(long, value_name = "ID")]
    pub issuer: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Public key file (PASERK k4.public) to verify the signature with (repeatable)
    #[arg(long = "public", value_name = "FILE")]
    pub public: Vec<PathBuf>,
    /// The token, a file holding one, or "-" to read it from standard input
    #[arg(value_name = "TOKEN|-")]
    pub token: String,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load policy exactly as jitrun does, report errors with file:line, and lint it
    Check(CheckArgs),
    /// Run the [[test]] cases of policy files through jitrun's decision logic
    Test(TestArgs),
    /// Show the decision for one request, the rule that matched, the final capabilities,
    /// and why every other rule did not
    Explain(ExplainArgs),
    /// Who gains or loses what between two policies
    Diff(DiffArgs),
    /// Convert a sudoers file into a jitrun policy (standing access, for migration)
    ImportSudoers(ImportSudoersArgs),
    /// Build a policy package (jitrun-policy-NAME_VERSION_all.deb) from DIR's *.toml files
    #[command(disable_version_flag = true)]
    Pack(PackArgs),
    /// Activate an installed policy package into /etc/jitrun/policy.d/NN-NAME.toml, only if
    /// the whole resulting policy loads (run as root by the package's postinst); then compile
    /// it
    Activate(ActivateArgs),
    /// Compile /etc/jitrun's policy into the snapshot jitrun reads
    /// (/var/lib/jitrun/policy.snapshot, root's), so that the first jitrun after a change
    /// need not parse every file; run it as root after editing policy files by hand (it waits
    /// until they are 2 s old). jitrun uses the snapshot only while the files stay as they were
    Compile,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Package name: the package is jitrun-policy-NAME ([a-z0-9.-])
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Package version (a Debian version, e.g. 1.0 or 2.3-1)
    #[arg(long, value_name = "V")]
    pub version: String,
    /// Load order: the rules land in /etc/jitrun/policy.d/NN-NAME.toml (0-99)
    #[arg(long, value_name = "NN", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(0..=99))]
    pub priority: u8,
    /// Depend on jitrun of at least this version
    #[arg(long, value_name = "V")]
    pub depends_version: Option<String>,
    /// The package's Maintainer field
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "jitrun policy packages <root@localhost>"
    )]
    pub maintainer: String,
    /// One-line package description (default: "jitrun policy NAME")
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Directory for the .deb
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUT_DIR",
        default_value = "."
    )]
    pub output: PathBuf,
    /// Directory whose *.toml policy files (name order) the package installs
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Policy package name (its files are in /usr/share/jitrun/policy-packages/NAME/)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Load order: write /etc/jitrun/policy.d/NN-NAME.toml (0-99)
    #[arg(long, value_name = "NN", default_value_t = 50,
          value_parser = clap::value_parser!(u8).range(0..=99))]
    pub priority: u8,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy files or directories (a directory holding policy.toml or policy.d/ loads
    /// them like jitrun; otherwise its *.toml in name order); default
    /// /etc/jitrun/policy.toml and /etc/jitrun/policy.d/*.toml
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Treat lint warnings as errors (exit non-zero when there are any)
    #[arg(long)]
    pub strict: bool,
    /// Settings file whose secure_path the lint uses; default /etc/jitrun/jitrun.toml when
    /// it exists, else the built-in default
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy files or directories (as for check); every [[test]] in them is run against
    /// the whole policy they make up
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The user who runs the command
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// A group of that user (repeatable)
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// Host name; default: settings `host`, else this machine's name
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// A grant token file (or "-" for standard input); its claims are used without
    /// checking the signature or times, which jitrun checks before it decides
    #[arg(long, value_name = "FILE")]
    pub grant: Option<String>,
    /// The -u USER option of jitrun
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// The --rule NAME option of jitrun
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Policy file or directory (repeatable); default as for check
    #[arg(long = "policy", value_name = "PATH")]
    pub policy: Vec<PathBuf>,
    /// Settings file (host, secure_path for bare command names); default
    /// /etc/jitrun/jitrun.toml when it exists
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// The command: an absolute path, or a name looked up in secure_path, and its arguments
    #[arg(value_name = "CMD", required = true, last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The policy before (file or directory)
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The policy after (file or directory)
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when there are differences (like diff(1))
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct ImportSudoersArgs {
    /// The sudoers file
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the policy here instead of standard output
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pack_takes_a_version_option() {
        let cli = Cli::try_parse_from([
            "jitctl",
            "policy",
            "pack",
            "--name",
            "net",
            "--version",
            "1.2-1",
            "dir",
            "-o",
            "out",
        ])
        .unwrap();
        let Command::Policy(PolicyCommand::Pack(p)) = cli.command else {
            panic!()
        };
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.priority),
            ("net", "1.2-1", 50)
        );
        assert_eq!(
            (p.dir.to_str(), p.output.to_str()),
            (Some("dir"), Some("out"))
        );
        assert!(Cli::try_parse_from([
            "jitctl",
            "policy",
            "pack",
            "--priority",
            "100",
            "--name",
            "n",
            "--version",
            "1",
            "d"
        ])
        .is_err());
    }

    #[test]
    fn broker_commands_parse() {
        let cli = Cli::try_parse_from([
            "jitctl",
            "request",
            "db",
            "--reason",
            "fix",
            "--ttl",
            "30m",
            "--wait",
            "--broker",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(cli.broker, ["http://127.0.0.1:1"]);
        let Command::Request(r) = cli.command else {
            panic!()
        };
        assert!(r.wait && !r.break_glass);
        assert_eq!(r.ttl.as_deref(), Some("30m"));
        // --reason is required for request, deny and revoke.
        for argv in [
            &["jitctl", "request", "db"][..],
            &["jitctl", "deny", "01J"],
            &["jitctl", "revoke", "01J"],
        ] {
            assert_eq!(Cli::try_parse_from(argv).unwrap_err().exit_code(), 2);
        }
        assert!(Cli::try_parse_from(["jitctl", "requests", "--mine", "--pending"]).is_err());
        assert!(matches!(
            Cli::try_parse_from(["jitctl", "revocations", "sync"])
                .unwrap()
                .command,
            Command::Revocations(RevocationsCommand::Sync)
        ));
        assert!(matches!(
            Cli::try_parse_from(["jitctl", "host-key", "init"])
                .unwrap()
                .command,
            Command::HostKey(HostKeyCommand::Init(_))
        ));
    }

    #[test]
    fn mint_needs_a_host() {
        let err = Cli::try_parse_from([
            "jitctl", "grant", "mint", "--key", "k", "--user", "a", "--rule", "r", "--ttl", "5m",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--host"), "{err}");
    }

    #[test]
    fn not_before_takes_negative_durations() {
        let cli = Cli::try_parse_from([
            "jitctl",
            "grant",
            "mint",
            "--key",
            "k",
            "--user",
            "a",
            "--rule",
            "r",
            "--ttl",
            "5m",
            "--host",
            "h1",
            "--host",
            "h2",
            "--not-before",
            "-10m",
            "--approver",
            "x",
            "--approver",
            "y",
        ])
        .unwrap();
        let Command::Grant(GrantCommand::Mint(m)) = cli.command else {
            panic!()
        };
        assert_eq!(m.not_before.as_deref(), Some("-10m"));
        assert_eq!(m.hosts, ["h1", "h2"]);
        assert_eq!(m.approvers, ["x", "y"]);
    }

    #[test]
    fn explain_takes_the_command_after_dashes() {
        let cli = Cli::try_parse_from([
            "jitctl",
            "policy",
            "explain",
            "--user",
            "alice",
            "--group",
            "a",
            "--group",
            "b",
            "--",
            "/usr/sbin/ip",
            "-s",
            "link",
        ])
        .unwrap();
        let Command::Policy(PolicyCommand::Explain(e)) = cli.command else {
            panic!()
        };
        assert_eq!(e.groups, ["a", "b"]);
        assert_eq!(e.command, ["/usr/sbin/ip", "-s", "link"]);
    }
}
