//! Settings, policy and trusted keys, each read through [`crate::trusted_files`].

use crate::paths;
use crate::refusal::Refusal;
use crate::trusted_files;
use jit_grant::{KeySet, PublicKey};
use jit_policy::{Policy, PolicySource, Settings};

/// Settings first (they say where audit events go), so a broken policy can still be logged.
pub fn load_settings() -> Result<Settings, Refusal> {
    match trusted_files::read_text(paths::SETTINGS)? {
        None => Ok(Settings::default()),
        Some(text) => Settings::parse(paths::SETTINGS, &text)
            .map_err(|e| Refusal::config("settings_error", e.to_string())),
    }
}

/// `/etc/jitrun/policy.toml` then `/etc/jitrun/policy.d/*.toml` in name order.
pub fn load_policy() -> Result<Policy, Refusal> {
    let mut sources = Vec::new();
    if let Some(text) = trusted_files::read_text(paths::POLICY)? {
        sources.push(PolicySource {
            name: paths::POLICY.to_string(),
            text,
        });
    }
    for path in trusted_files::list(paths::POLICY_DIR, ".toml")? {
        if let Some(text) = trusted_files::read_text(&path)? {
            sources.push(PolicySource { name: path, text });
        }
    }
    Policy::load(&sources).map_err(|e| Refusal::config("policy_error", format!("{e}; no command runs until the policy is fixed (check it with: jitctl policy check)")))
}

/// Every `/etc/jitrun/keys.d/*.paserk` (one `k4.public.…` each).
pub fn load_keys() -> Result<KeySet, Refusal> {
    let mut keys = KeySet::new();
    for path in trusted_files::list(paths::KEYS_DIR, ".paserk")? {
        let Some(text) = trusted_files::read_text(&path)? else {
            continue;
        };
        let key = PublicKey::from_paserk(text.trim()).map_err(|e| {
            Refusal::config(
                "key_error",
                format!("{path}: {e}; a key file holds one k4.public PASERK string"),
            )
        })?;
        keys.insert(key);
    }
    Ok(keys)
}
