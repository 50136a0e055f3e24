//! Capability sets of the calling thread: bounding, securebits, capset, ambient.
//!
//! Hand-written, except no_new_privs and dumpability: nix has no capget/capset, bounding-set,
//! securebits, ambient-set or xattr calls.

use super::check;
use std::io;

/// Highest capability number the running kernel knows.
pub fn last_cap() -> io::Result<u8> {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?;
    text.trim().parse::<u8>().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/sys/kernel/cap_last_cap: {e}"),
        )
    })
}

/// Drop capability `cap` from the bounding set.
pub fn drop_bounding(cap: u8) -> io::Result<()> {
    // SAFETY: prctl with PR_CAPBSET_DROP takes an integer argument and touches no memory.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// Is `cap` in the bounding set?
pub fn in_bounding(cap: u8) -> io::Result<bool> {
    // SAFETY: prctl with PR_CAPBSET_READ takes an integer argument and touches no memory.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) })
        .map(|r| r == 1)
}

pub const SECBIT_NOROOT: u32 = 1 << 0;
pub const SECBIT_NOROOT_LOCKED: u32 = 1 << 1;
pub const SECBIT_NO_SETUID_FIXUP: u32 = 1 << 2;
pub const SECBIT_NO_SETUID_FIXUP_LOCKED: u32 = 1 << 3;
pub const SECBIT_KEEP_CAPS: u32 = 1 << 4;

pub fn set_securebits(bits: u32) -> io::Result<()> {
    // SAFETY: PR_SET_SECUREBITS takes an integer argument and touches no memory.
    check(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// The three sets of the calling thread as 64-bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

pub fn get() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget reads the header and writes two CapData structs (version 3 layout) into
    // `data`, which is exactly that size and lives for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    } as libc::c_int)?;
    let join = |lo: u32, hi: u32| (lo as u64) | ((hi as u64) << 32);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

pub fn set(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: sets.effective as u32,
            permitted: sets.permitted as u32,
            inheritable: sets.inheritable as u32,
        },
        CapData {
            effective: (sets.effective >> 32) as u32,
            permitted: (sets.permitted >> 32) as u32,
            inheritable: (sets.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset reads the header and two CapData structs (version 3 layout) from memory
    // that lives for the call; it writes nothing back but the header's version on error.
    check(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    } as libc::c_int)
    .map(drop)
}

pub fn ambient_clear_all() -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments and touches no memory.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

pub fn ambient_raise(cap: u8) -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT takes integer arguments and touches no memory.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    })
    .map(drop)
}

pub fn set_no_new_privs() -> io::Result<()> {
    Ok(nix::sys::prctl::set_no_new_privs()?)
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    Ok(nix::sys::prctl::set_dumpable(on)?)
}

/// Does the file behind `fd` carry file capabilities (`security.capability` xattr)?
pub fn file_has_caps(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let name = c"security.capability";
    // SAFETY: a zero-sized query (null buffer, size 0) only returns the attribute's length;
    // the name is a valid NUL-terminated string.
    let r = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) };
    if r >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(false),
        _ => Err(e),
    }
}
