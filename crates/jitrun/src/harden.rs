//! Step 1 of every run, before anything else: a known-good process state.

use crate::refusal::Refusal;
use crate::system::{caps, fs, process, signals};
use std::ffi::OsString;

/// The environment as the caller left it; jitrun itself runs with an empty one.
pub type EnvSnapshot = Vec<(OsString, OsString)>;

/// Resource limits the caller set that could make jitrun itself fail half-way (a small
/// RLIMIT_FSIZE kills a process with SIGXFSZ in the middle of a write) or that jitrun changes
/// for itself (RLIMIT_CORE). jitrun runs without them and gives them back to the command.
#[derive(Debug, Clone, Default)]
pub struct SavedLimits {
    limits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
}

impl SavedLimits {
    /// Restore the caller's limits (in the child, before it drops privilege).
    pub fn restore(&self) -> std::io::Result<()> {
        for &(res, soft, hard) in &self.limits {
            process::setrlimit(res, soft, hard)?;
        }
        Ok(())
    }
}

/// What `harden` hands on.
pub struct Hardened {
    pub args: Vec<OsString>,
    pub env: EnvSnapshot,
    pub limits: SavedLimits,
}

/// Harden the process. Returns argv, the environment snapshot and the caller's limits.
/// Order matters: descriptors first (so nothing later lands on 0–2), then the environment
/// (so no library code jitrun calls can read it), then signals, dumpability, limits, umask.
pub fn harden() -> Result<Hardened, Refusal> {
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
    let limits = lift_limits()?;
    fs::set_umask(0o022);
    Ok(Hardened { args, env, limits })
}

/// The caller's resource limits must not make jitrun (and later its supervisor) fail
/// half-way: a soft RLIMIT_FSIZE or RLIMIT_CPU would kill it with SIGXFSZ / SIGXCPU, a tiny
/// RLIMIT_NOFILE would make it lose track of the command's cgroup. Soft limits are raised to
/// the hard ones (no privilege needed, so the command gets the caller's limits back without
/// CAP_SYS_RESOURCE, which containers often lack) and the two signals are ignored. A finite
/// hard CPU limit would end the supervisor with SIGKILL: it is lifted, or jitrun refuses.
/// RLIMIT_CORE goes to 0: a privileged process leaves no core file.
fn lift_limits() -> Result<SavedLimits, Refusal> {
    let failed = |what: &str, e: std::io::Error| Refusal::config("harden", format!("{what}: {e}"));
    let mut limits = SavedLimits::default();
    for res in [
        libc::RLIMIT_CORE,
        libc::RLIMIT_FSIZE,
        libc::RLIMIT_CPU,
        libc::RLIMIT_NOFILE,
    ] {
        let (soft, hard) = process::getrlimit(res).map_err(|e| failed("getrlimit", e))?;
        limits.limits.push((res, soft, hard));
        let soft_now = if res == libc::RLIMIT_CORE { 0 } else { hard };
        process::setrlimit(res, soft_now, hard).map_err(|e| failed("setrlimit", e))?;
    }
    let (_, cpu_hard) = process::getrlimit(libc::RLIMIT_CPU).map_err(|e| failed("getrlimit", e))?;
    if cpu_hard != libc::RLIM_INFINITY
        && process::setrlimit(libc::RLIMIT_CPU, libc::RLIM_INFINITY, libc::RLIM_INFINITY).is_err()
    {
        return Err(Refusal::deny(
            "resource_limit",
            format!("your hard CPU-time limit ({cpu_hard}s) would end jitrun's supervisor before the command; run without it (ulimit -t)"),
        ));
    }
    signals::ignore(libc::SIGXFSZ);
    signals::ignore(libc::SIGXCPU);
    Ok(limits)
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
    fs::take_root_fs_ids().map_err(|e| Refusal::config("harden", e.to_string()))?;
    Ok(())
}
