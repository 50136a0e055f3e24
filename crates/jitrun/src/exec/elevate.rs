//! Step 9, in the child: from root to exactly the granted identity and capabilities.
//!
//! Order (docs/architecture.md, "The capability recipe"; verified on this kernel): bounding
//! set reduced to the grant; securebits (KEEP_CAPS + NOROOT locked, and NO_SETUID_FIXUP
//! locked for root); groups, setresgid,
//! setresuid; inheritable/permitted/effective = the set; ambient cleared then raised;
//! no_new_privs; then verify what the kernel now says before exec. Before all of it, a seccomp
//! filter that makes `ioctl(TIOCSTI/TIOCLINUX)` fail (`system::seccomp`).

use crate::harden::SavedLimits;
use crate::identity::Target;
use crate::inherited::Inherited;
use crate::system::caps::{self, CapSets};
use crate::system::process::Resource;
use crate::system::{process, seccomp};
use jit_policy::{CapSet, RunAs};
use std::ffi::CString;
use std::io;

/// Everything the child needs, prepared before fork.
pub struct Plan {
    pub target: Target,
    pub target_name: CString,
    pub run_as: RunAs,
    pub caps: CapSet,
    pub no_new_privs: bool,
    /// The caller's resource limits, given back to the command.
    pub limits: SavedLimits,
    /// The caller's nice value, CPU affinity and the like, given back to the command.
    pub inherited: Inherited,
    /// The command gains capabilities or another uid: no core dump (see [`NO_CORE`]).
    pub elevated: bool,
}

/// RLIMIT_CORE (soft and hard) of an elevated command. Its memory holds what its privilege
/// let it read, and nothing makes it non-dumpable: its uids all equal after exec, so the
/// kernel lets a core be written, owned by the caller. One byte is less than the smallest
/// core a file can take (one page), and it is the kernel's own "no dump" value for a
/// core_pattern pipe (systemd-coredump, apport), where a limit of 0 is ignored. As a hard
/// limit the command cannot raise it.
pub const NO_CORE: u64 = 1;

fn step(what: &str, r: io::Result<()>) -> io::Result<()> {
    r.map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

pub fn become_target(plan: &Plan) -> io::Result<()> {
    // First, while still fully root: no keystroke injection into the caller's terminal.
    step(
        "installing the TIOCSTI filter",
        seccomp::deny_terminal_injection(),
    )?;
    step("restoring resource limits", plan.limits.restore())?;
    if plan.elevated {
        step(
            "disabling core dumps",
            process::setrlimit(Resource::RLIMIT_CORE, NO_CORE, NO_CORE),
        )?;
    }
    plan.inherited.restore();
    let last = caps::last_cap()?;
    let wanted: u64 = plan.caps.0
        & if last >= 63 {
            u64::MAX
        } else {
            (1u64 << (last + 1)) - 1
        };

    for cap in 0..=last {
        if wanted & (1u64 << cap) == 0 {
            step("dropping the bounding set", caps::drop_bounding(cap))?;
        }
    }

    let mut bits = caps::SECBIT_KEEP_CAPS | caps::SECBIT_NOROOT | caps::SECBIT_NOROOT_LOCKED;
    if plan.run_as == RunAs::Root {
        bits |= caps::SECBIT_NO_SETUID_FIXUP | caps::SECBIT_NO_SETUID_FIXUP_LOCKED;
    }
    step("setting securebits", caps::set_securebits(bits))?;

    let t = &plan.target;
    match &t.keep_groups {
        Some(groups) => step("setting groups", process::setgroups(groups))?,
        None => step("initgroups", process::initgroups(&plan.target_name, t.gid))?,
    }
    step("setresgid", process::setresgid(t.gid))?;
    step("setresuid", process::setresuid(t.uid))?;

    let sets = CapSets {
        effective: wanted,
        permitted: wanted,
        inheritable: wanted,
    };
    step("setting capabilities", caps::set(sets))?;
    step("clearing ambient capabilities", caps::ambient_clear_all())?;
    for cap in 0..=last {
        if wanted & (1u64 << cap) != 0 {
            step("raising ambient capabilities", caps::ambient_raise(cap))?;
        }
    }
    if plan.no_new_privs {
        step("setting no_new_privs", caps::set_no_new_privs())?;
    }

    // Trust, but verify: the kernel's view must be exactly the plan.
    verify(sets, t.uid, last)
}

/// The capabilities, uids and bounding set the kernel now reports are exactly `sets`, `uid`
/// and the wanted set (`sets.effective`), or the child refuses to exec.
fn verify(sets: CapSets, uid: u32, last: u8) -> io::Result<()> {
    let wanted = sets.effective;
    let now = caps::get()?;
    if now != sets {
        return Err(io::Error::other(format!(
            "capabilities are {now:x?} after the change, expected {sets:x?}"
        )));
    }
    let (r, e, s) = process::getresuid()?;
    if (r, e, s) != (uid, uid, uid) {
        return Err(io::Error::other(format!(
            "uids are {r}/{e}/{s} after the change, expected {uid}"
        )));
    }
    for cap in 0..=last {
        if caps::in_bounding(cap)? != (wanted & (1u64 << cap) != 0) {
            return Err(io::Error::other(format!(
                "bounding set still holds capability {cap}"
            )));
        }
    }
    Ok(())
}
