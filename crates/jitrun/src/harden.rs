//! Step 1 of every run, before anything else: a known-good process state.

use crate::refusal::Refusal;
use crate::system::{caps, fs, process, signals};
use std::ffi::OsString;

/// The environment as the caller left it; jitrun itself runs with an empty one.
pub type EnvSnapshot = Vec<(OsString, OsString)>;

/// Harden the process. Returns argv and the environment snapshot. Order matters:
/// descriptors first (so nothing later lands on 0–2), then the environment (so no library
/// code jitrun calls can read it), then signals, dumpability, core size and umask.
pub fn harden() -> Result<(Vec<OsString>, EnvSnapshot), Refusal> {
    fs::ensure_std_fds().map_err(|e| {
        Refusal::config("harden", format!("cannot set up standard descriptors: {e}"))
    })?;
    let _ = fs::close_from_3();

    let args: Vec<OsString> = std::env::args_os().collect();
    if args.is_empty() {
        // PwnKit (CVE-2021-4034): argc == 0 makes argv[1] alias envp[0] in C programs.
        return Err(Refusal::deny(
            "argc_zero",
            "refusing to run with an empty argument list (argc == 0)",
        ));
    }
    if args[0].is_empty() {
        return Err(Refusal::deny(
            "argc_zero",
            "refusing to run with an empty argv[0]",
        ));
    }

    let env: EnvSnapshot = std::env::vars_os().collect();
    process::clear_env();

    signals::reset_all()
        .map_err(|e| Refusal::config("harden", format!("cannot reset signals: {e}")))?;
    caps::set_dumpable(false).map_err(|e| {
        Refusal::config(
            "harden",
            format!("cannot make the process non-dumpable: {e}"),
        )
    })?;
    process::set_core_limit_zero()
        .map_err(|e| Refusal::config("harden", format!("cannot disable core dumps: {e}")))?;
    fs::set_umask(0o022);
    Ok((args, env))
}

/// jitrun must run with effective uid 0 (installed root-owned, mode 4755).
pub fn require_root() -> Result<(), Refusal> {
    if process::geteuid() != 0 {
        let exe = std::fs::read_link("/proc/self/exe")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "jitrun".into());
        return Err(Refusal::config(
            "not_setuid",
            format!(
                "{exe} is not running as root: it must be installed owned by root with mode 4755 (sudo make install, or: chown root:root {exe} && chmod 4755 {exe}); on a nosuid file system it cannot work"
            ),
        ));
    }
    Ok(())
}
