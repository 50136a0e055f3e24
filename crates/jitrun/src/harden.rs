//! Step 1 of every run, before anything else: a known-good process state.

use crate::inherited::{self, Inherited};
use crate::refusal::Refusal;
use crate::system::process::Resource;
use crate::system::{caps, fs, process, signals};
use std::ffi::OsString;

/// The environment as the caller left it; jitrun itself runs with an empty one.
pub type EnvSnapshot = Vec<(OsString, OsString)>;

/// Resource limits the caller set that could make jitrun itself fail half-way (a small
/// RLIMIT_FSIZE kills a process with SIGXFSZ in the middle of a write) or that jitrun changes
/// for itself (RLIMIT_CORE). jitrun runs without them and gives them back to the command.
#[derive(Debug, Clone, Default)]
pub struct SavedLimits {
    limits: Vec<(Resource, u64, u64)>,
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
    pub caller: CallerState,
}

/// What the caller's process had that jitrun put aside: the command gets it back (the
/// environment filtered, `env.rs`).
pub struct CallerState {
    pub env: EnvSnapshot,
    pub limits: SavedLimits,
    /// The caller's nice value, CPU affinity and the like, for the command.
    pub inherited: Inherited,
}

/// Harden the process. Returns argv, the environment snapshot, the caller's limits and
/// scheduling attributes. Order matters: the attributes that could crash jitrun (a disabled
/// TSC, armed interval timers) first; descriptors (so nothing later lands on 0–2), then the
/// environment (so no library code jitrun calls can read it), then signals, dumpability, the
/// scheduling attributes, limits, umask.
pub fn harden() -> Result<Hardened, Refusal> {
    inherited::reset_early()?;
    fs::ensure_std_fds().map_err(|e| {
        Refusal::config("harden", format!("cannot set up standard descriptors: {e}"))
    })?;
    // SAFETY: nothing in this process owns a descriptor above 2 yet: this runs before jitrun
    // opens anything (the /dev/null descriptors above are 0–2 and owned by nobody).
    #[allow(unsafe_code)]
    let _ = unsafe { fs::close_from_3() };

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
    // SAFETY: jitrun is single-threaded and keeps no reference into the environment (the
    // snapshot above is a copy).
    #[allow(unsafe_code)]
    unsafe {
        process::clear_env()
    };

    signals::reset_all()
        .map_err(|e| Refusal::config("harden", format!("cannot reset signals: {e}")))?;
    caps::set_dumpable(false).map_err(|e| {
        Refusal::config(
            "harden",
            format!("cannot make the process non-dumpable: {e}"),
        )
    })?;
    let inherited = inherited::reset()?;
    let limits = lift_limits()?;
    fs::set_umask(0o022);
    Ok(Hardened {
        args,
        caller: CallerState {
            env,
            limits,
            inherited,
        },
    })
}

/// Limits below which jitrun itself could fail half-way, and the least it raises them to: a
/// tiny RLIMIT_AS / RLIMIT_DATA makes an allocation of the supervisor or watchdog fail (Rust
/// aborts), a tiny RLIMIT_STACK overflows a deep verification. Each is raised to its hard limit
/// when that is enough, else (as root, with CAP_SYS_RESOURCE) to the floor, else the run is
/// refused.
const FLOORS: &[(Resource, u64, &str, &str)] = &[
    (Resource::RLIMIT_AS, 1 << 30, "address space", "ulimit -v"),
    (Resource::RLIMIT_DATA, 1 << 30, "data size", "ulimit -d"),
    (Resource::RLIMIT_STACK, 8 << 20, "stack size", "ulimit -s"),
];

/// Open files jitrun raises a lower hard RLIMIT_NOFILE to where it may (CAP_SYS_RESOURCE).
/// Where it may not, it works within what it has: it refuses what it cannot do, and its
/// audit events never need a descriptor beyond the syslog socket (`audit.rs`).
const NOFILE_FLOOR: u64 = 64;

/// The caller's resource limits must not make jitrun (and later its supervisor) fail
/// half-way: a soft RLIMIT_FSIZE or RLIMIT_CPU would kill it with SIGXFSZ / SIGXCPU, a tiny
/// RLIMIT_NOFILE would make it lose track of the command's cgroup, a tiny RLIMIT_AS would
/// abort it on an allocation. Soft limits are raised to the hard ones (no privilege needed, so
/// the command gets the caller's limits back without CAP_SYS_RESOURCE, which containers often
/// lack) and the two signals are ignored. A finite hard CPU limit would end the supervisor
/// with SIGKILL: it is lifted, or jitrun refuses; a hard limit below one of the [`FLOORS`] is
/// raised to it, or jitrun refuses; a hard RLIMIT_NOFILE below [`NOFILE_FLOOR`] is raised
/// where root may.
/// RLIMIT_CORE goes to 0: a privileged process leaves no core file.
fn lift_limits() -> Result<SavedLimits, Refusal> {
    let failed = |what: &str, e: std::io::Error| Refusal::config("harden", format!("{what}: {e}"));
    let mut limits = SavedLimits::default();
    for res in [
        Resource::RLIMIT_CORE,
        Resource::RLIMIT_FSIZE,
        Resource::RLIMIT_CPU,
        Resource::RLIMIT_NOFILE,
    ]
    .into_iter()
    .chain(FLOORS.iter().map(|f| f.0))
    {
        let (soft, hard) = process::getrlimit(res).map_err(|e| failed("getrlimit", e))?;
        limits.limits.push((res, soft, hard));
        let soft_now = if res == Resource::RLIMIT_CORE {
            0
        } else {
            hard
        };
        process::setrlimit(res, soft_now, hard).map_err(|e| failed("setrlimit", e))?;
    }
    let (_, cpu_hard) =
        process::getrlimit(Resource::RLIMIT_CPU).map_err(|e| failed("getrlimit", e))?;
    if cpu_hard != libc::RLIM_INFINITY
        && process::setrlimit(
            Resource::RLIMIT_CPU,
            libc::RLIM_INFINITY,
            libc::RLIM_INFINITY,
        )
        .is_err()
    {
        return Err(Refusal::deny(
            "resource_limit",
            format!("your hard CPU-time limit ({cpu_hard}s) would end jitrun's supervisor before the command; run without it (ulimit -t)"),
        ));
    }
    let (_, nofile_hard) =
        process::getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| failed("getrlimit", e))?;
    if nofile_hard < NOFILE_FLOOR {
        let _ = process::setrlimit(Resource::RLIMIT_NOFILE, NOFILE_FLOOR, NOFILE_FLOOR);
    }
    for &(res, floor, what, undo) in FLOORS {
        let (_, hard) = process::getrlimit(res).map_err(|e| failed("getrlimit", e))?;
        if hard < floor && process::setrlimit(res, floor, floor).is_err() {
            return Err(Refusal::deny(
                "resource_limit",
                format!("your hard limit on {what} ({hard}) is too low for jitrun, which needs {floor}; run it with a higher one ({undo})"),
            ));
        }
    }
    signals::ignore(libc::SIGXFSZ);
    signals::ignore(libc::SIGXCPU);
    Ok(limits)
}

/// From here on the caller can neither signal her own jitrun nor stop it from her terminal:
/// kill(2) needs her uid to match its real or saved uid, and both become root's; SIGTSTP,
/// SIGTTIN and SIGTTOU, which the terminal sends without that check, stay blocked (the
/// supervisor handles job control itself; the command gets them unblocked). A jitrun she
/// stopped could otherwise hold a lock other runs need (the audit spool's) or keep a run half
/// set up. Only for running a command, once [`crate::identity::Invoker`] has read the real
/// uid; SIGCONT within her session stays possible, and harmless.
pub fn become_unsignalable() -> Result<(), Refusal> {
    signals::block(&[libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU])
        .map_err(|e| Refusal::config("harden", format!("cannot block job-control signals: {e}")))?;
    process::set_real_uid(0)
        .map_err(|e| Refusal::config("harden", format!("cannot take real uid 0: {e}")))
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
    require_setuid_took_effect()?;
    fs::take_root_fs_ids().map_err(|e| Refusal::config("harden", e.to_string()))?;
    Ok(())
}

/// Effective uid 0 is not enough: in a user namespace of her own a caller is "uid 0" too, the
/// kernel ignores the setuid bit of a file whose owner that namespace does not map, and she can
/// bind-mount any /etc/jitrun she likes there. jitrun then holds no privilege at all; it still
/// refuses, so that nobody mistakes such a run for a real one. The running file must belong
/// to uid 0 as this namespace sees it (host root's file shows up as the overflow uid in hers;
/// in a container with its own mapped root, the container's installed jitrun passes).
fn require_setuid_took_effect() -> Result<(), Refusal> {
    let owner = fs::open(c"/proc/self/exe", libc::O_PATH)
        .and_then(|fd| fs::fstat(std::os::fd::AsFd::as_fd(&fd)))
        .map(|st| st.uid)
        .map_err(|e| Refusal::config("not_setuid", format!("cannot check /proc/self/exe: {e}")))?;
    if owner != 0 {
        return Err(Refusal::config(
            "not_setuid",
            format!(
                "jitrun runs as uid 0 of a user namespace in which its file belongs to uid {owner}, not root: the setuid bit did not take effect here and jitrun holds no privilege; run it outside user namespaces"
            ),
        ));
    }
    Ok(())
}
