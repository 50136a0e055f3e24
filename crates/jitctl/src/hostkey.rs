//! `jitctl host-key init`: this host's attestation key pair. The secret key stays in
//! `/etc/jitrun/host.key` (root 0600; `jitrun attest` refuses anything looser); the public
//! key is enrolled at the broker (`jitbroker host add HOST KEY`).

use crate::cli::HostKeyInitArgs;
use crate::error::{io_error, CliError, Result};
use crate::keygen::generate_pair;

pub fn init(args: &HostKeyInitArgs) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        return Err(CliError(
            "host-key init writes a key only root may read (/etc/jitrun/host.key): run it as root"
                .into(),
        ));
    }
    let public = generate_pair(&args.secret, &args.public, args.force)?;
    let settings = "/etc/jitrun/jitrun.toml";
    let host = match std::fs::read_to_string(settings) {
        Ok(text) => jit_policy::Settings::parse(settings, &text)
            .ok()
            .and_then(|s| s.host),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("cannot read", std::path::Path::new(settings), &e)),
    }
    .or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
    })
    .unwrap_or_else(|| "HOST".into());
    println!(
        "host key written to {} (root 0600), public key to {} (kid {})",
        args.secret.display(),
        args.public.display(),
        public.kid()
    );
    println!("enroll this host at the broker (as a broker admin):");
    println!("  jitbroker host add {host} {}", public.to_paserk());
    Ok(0)
}
