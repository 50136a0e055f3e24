//! `jitrun attest`: a short-lived, signed statement of who is asking, from which host, for
//! which broker request (docs/broker.md, "Attestation"). It signs only what jitrun sees
//! itself (the real uid, its passwd entry and the process's groups, the host name from
//! settings or the kernel, the time, a random jti) plus the request binding it is handed
//! (method, path, body hash; validated by `cli`). No network, no file named by the caller.
//!
//! Nothing is logged: an attestation elevates nothing on this host, `jitctl` makes one for
//! every broker call (`--wait` polls), and the broker records every state change it leads
//! to with the attested identity.

use crate::cli::AttestArgs;
use crate::config;
use crate::harden;
use crate::identity::{self, Invoker};
use crate::paths;
use crate::refusal::Refusal;
use crate::system;
use crate::trusted_files;
use jit_grant::attest::{Attestation, ATTESTATION_LIFETIME, ATTESTATION_VERSION};
use jit_grant::SecretKey;
use time::OffsetDateTime;
use zeroize::Zeroize;

/// A PASERK secret key is ~100 bytes; anything much larger is not one.
const MAX_KEY_FILE: usize = 4096;

/// The host key from /etc/jitrun/host.key (root-owned, 0600 or stricter).
pub fn load_host_key() -> Result<SecretKey, Refusal> {
    let path = paths::HOST_KEY;
    let Some(mut bytes) = trusted_files::read_secret(path, MAX_KEY_FILE)? else {
        return Err(Refusal::config(
            "host_key",
            format!("{path} does not exist: this host has no attestation key yet; an admin creates it with `jitctl host-key init` and enrolls it at the broker with `jitbroker host add HOST KEY`"),
        ));
    };
    let key = std::str::from_utf8(&bytes)
        .map_err(|_| "not UTF-8 text".to_string())
        .and_then(|text| SecretKey::from_paserk(text).map_err(|e| e.to_string()));
    bytes.zeroize();
    key.map_err(|e| {
        Refusal::config(
            "host_key",
            format!("{path}: {e}; it must hold one k4.secret PASERK (make a new one with `jitctl host-key init --force`, then re-enroll the host)"),
        )
    })
}

/// Group names, sorted and unique (groups without a name are left out).
fn group_names(inv: &Invoker) -> Vec<String> {
    let mut groups = inv.groups.clone();
    groups.sort();
    groups.dedup();
    groups
}

/// Build and sign the attestation; returns the token.
pub fn attest(args: &AttestArgs) -> Result<String, Refusal> {
    harden::require_root()?;
    let invoker = Invoker::current()?;
    let settings = config::load_settings()?;
    let host = identity::host_name(settings.host.as_deref());
    let key = load_host_key()?;
    let jti =
        system::random_hex16().map_err(|e| Refusal::config("random", format!("getrandom: {e}")))?;
    let now = OffsetDateTime::now_utc();
    let iat = now.replace_nanosecond(0).unwrap_or(now);
    let lifetime = time::Duration::try_from(ATTESTATION_LIFETIME)
        .map_err(|e| Refusal::config("attest", e.to_string()))?;
    let attestation = Attestation {
        v: ATTESTATION_VERSION,
        sub: invoker.name.clone(),
        uid: invoker.uid,
        groups: group_names(&invoker),
        host,
        iat,
        exp: iat + lifetime,
        jti,
        method: args.method.clone(),
        path: args.path.clone(),
        body_sha256: args.body_sha256.clone(),
    };
    attestation
        .sign(&key)
        .map_err(|e| Refusal::config("attest", format!("cannot sign the attestation: {e}")))
}
