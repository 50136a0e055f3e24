//! Process attributes that a caller sets on herself and that survive fork and a setuid
//! execve: timer slack, nice, scheduling policy and utilisation clamps, CPU affinity, I/O
//! priority, OOM score adjustment, personality, interval timers and the NUMA memory policy.
//! `inherited.rs` decides which are reset for jitrun and which the command gets back;
//! docs/SECURITY.md lists every attribute and why.
//!
//! Setting the timer slack and the personality goes through nix; the rest is hand-written,
//! because nix has no wrapper (sched_getattr/sched_setattr, setpriority, ioprio, setitimer,
//! set_mempolicy) or only a narrower one (its timer-slack getter returns an `int`, its CPU
//! set holds 1024 CPUs where this keeps the caller's whole mask).

use super::check;
use std::io;

/// The kernel's default timer slack (50 µs): what a process gets when nobody chose one.
pub const DEFAULT_TIMER_SLACK_NS: u64 = 50_000;

/// `PR_GET_TIMERSLACK`: the timer slack of the calling thread, in nanoseconds. Through the raw
/// system call: the kernel returns a long, which prctl(3)'s `int` would cut to 32 bits.
pub fn timer_slack() -> io::Result<u64> {
    // SAFETY: PR_GET_TIMERSLACK takes no pointer and returns the value.
    let r = unsafe { libc::syscall(libc::SYS_prctl, libc::PR_GET_TIMERSLACK, 0, 0, 0, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as u64)
}

/// `PR_SET_TIMERSLACK`: how late the kernel may fire this thread's timers (sleeps, poll,
/// sigtimedwait), in nanoseconds; inherited by fork children.
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    Ok(nix::sys::prctl::set_timerslack(ns as libc::c_ulong)?)
}

/// Scheduling policies (linux/sched.h).
pub const SCHED_OTHER: u32 = 0;
pub const SCHED_BATCH: u32 = 3;
pub const SCHED_IDLE: u32 = 5;

const SCHED_FLAG_UTIL_CLAMP_MIN: u64 = 0x20;
const SCHED_FLAG_UTIL_CLAMP_MAX: u64 = 0x40;
/// `struct sched_attr` with the utilisation clamps (SCHED_ATTR_SIZE_VER1).
const SCHED_ATTR_SIZE_VER1: u32 = 56;
/// Without them (SCHED_ATTR_SIZE_VER0), for kernels built without uclamp.
const SCHED_ATTR_SIZE_VER0: u32 = 48;

/// `struct sched_attr` (linux/sched/types.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// The scheduling policy and nice value of the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sched {
    pub policy: u32,
    pub nice: i32,
}

/// `sched_getattr(0)`.
pub fn sched() -> io::Result<Sched> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a writable `struct sched_attr` of the size passed; flags must be 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            SCHED_ATTR_SIZE_VER1,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Sched {
        policy: attr.policy,
        nice: attr.nice,
    })
}

fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid `struct sched_attr` whose `size` field says how much of it the
    // kernel may read; it lives for the call.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SCHED_OTHER, nice 0, no reset-on-fork, and the utilisation clamps back to the system's
/// defaults (-1) where the kernel has them. Lowering the nice value needs CAP_SYS_NICE.
pub fn reset_sched() -> io::Result<()> {
    let with_clamps = SchedAttr {
        size: SCHED_ATTR_SIZE_VER1,
        policy: SCHED_OTHER,
        flags: SCHED_FLAG_UTIL_CLAMP_MIN | SCHED_FLAG_UTIL_CLAMP_MAX,
        util_min: u32::MAX,
        util_max: u32::MAX,
        ..SchedAttr::default()
    };
    match sched_setattr(&with_clamps) {
        // A kernel without CONFIG_UCLAMP_TASK: no clamps to reset.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::E2BIG)) => {
            set_sched(Sched {
                policy: SCHED_OTHER,
                nice: 0,
            })
        }
        other => other,
    }
}

/// Set the policy (SCHED_OTHER, SCHED_BATCH or SCHED_IDLE) and the nice value (setpriority:
/// sched_setattr applies a nice value to SCHED_OTHER and SCHED_BATCH only).
pub fn set_sched(s: Sched) -> io::Result<()> {
    sched_setattr(&SchedAttr {
        size: SCHED_ATTR_SIZE_VER0,
        policy: s.policy,
        nice: s.nice,
        ..SchedAttr::default()
    })?;
    // SAFETY: integer arguments only.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, s.nice) }).map(drop)
}

/// Words of the CPU mask buffer: 8192 CPUs.
const CPU_MASK_WORDS: usize = 128;

/// The CPU affinity mask of the calling thread, as many 64-bit words as the kernel filled.
pub fn affinity() -> io::Result<Vec<u64>> {
    let mut mask = vec![0u64; CPU_MASK_WORDS];
    // SAFETY: the buffer is writable for the byte length passed; the raw system call returns
    // how many bytes it wrote.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            mask.len() * 8,
            mask.as_mut_ptr(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    mask.truncate((n as usize).div_ceil(8));
    Ok(mask)
}

/// Set the CPU affinity mask; the kernel keeps the CPUs that exist and that the cpuset allows.
pub fn set_affinity(mask: &[u64]) -> io::Result<()> {
    // SAFETY: the buffer is readable for the byte length passed and lives for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;

/// `ioprio_get(IOPRIO_WHO_PROCESS, 0)`: class and level, as the kernel encodes them.
pub fn ioprio() -> io::Result<i32> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as i32)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, value)`; 0 (IOPRIO_CLASS_NONE) follows the nice value.
pub fn set_ioprio(value: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const OOM_SCORE_ADJ: &str = "/proc/self/oom_score_adj";

/// The OOM killer's adjustment for this process (-1000..=1000).
pub fn oom_score_adj() -> io::Result<i32> {
    let text = std::fs::read_to_string(OOM_SCORE_ADJ)?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{OOM_SCORE_ADJ}: {e}")))
}

/// Set it; lowering it needs CAP_SYS_RESOURCE.
pub fn set_oom_score_adj(value: i32) -> io::Result<()> {
    std::fs::write(OOM_SCORE_ADJ, value.to_string())
}

/// The execution domain and flags (personality(2)); 0 is PER_LINUX without flags.
pub fn personality() -> io::Result<u32> {
    Ok(nix::sys::personality::get()?.bits() as u32)
}

pub fn set_personality(value: u32) -> io::Result<()> {
    let persona = nix::sys::personality::Persona::from_bits_retain(value as libc::c_int);
    nix::sys::personality::set(persona)?;
    Ok(())
}

/// Disarm ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF: interval timers survive execve, and
/// their SIGALRM / SIGVTALRM / SIGPROF would reach jitrun when the caller chose.
pub fn clear_interval_timers() -> io::Result<()> {
    let zero = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        // SAFETY: `zero` is a valid itimerval for the call; the old value is not requested.
        check(unsafe { libc::setitimer(which, &zero, std::ptr::null_mut()) })?;
    }
    Ok(())
}

/// `set_mempolicy(MPOL_DEFAULT)`: allocate on the local node again. Ok on kernels without
/// NUMA support (ENOSYS).
pub fn default_mempolicy() -> io::Result<()> {
    const MPOL_DEFAULT: libc::c_long = 0;
    // SAFETY: MPOL_DEFAULT takes no node mask (NULL, 0).
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_DEFAULT,
            std::ptr::null::<libc::c_ulong>(),
            0,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
    }
    Ok(())
}
