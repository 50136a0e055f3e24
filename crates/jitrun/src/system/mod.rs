//! The operating-system layer: every `unsafe` block of jitrun lives here, behind small
//! functions. Everything above this module is safe Rust (main.rs denies `unsafe` everywhere
//! else). A function that is sound only if its caller upholds a condition (`fork` in a
//! single-threaded process, closing descriptors nothing owns) is an `unsafe fn` with a
//! `# Safety` section, and its callers say why they uphold it.
//!
//! System calls go through nix wherever it has a safe wrapper; each module names what it
//! calls by hand and why (nix lacks it: capabilities, securebits, seccomp, clone3, close_range,
//! pidfd_open, sigtimedwait, sched_setattr, …). `pam.rs` wraps a C library instead.

pub mod attrs;
pub mod caps;
pub mod cgroup;
pub mod fs;
pub mod pam;
pub mod process;
pub mod pty;
pub mod seccomp;
pub mod signals;
pub mod stream;
pub mod term;

use std::io;

/// Turn a -1 return into the errno as `io::Error`.
pub(crate) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// 16 random bytes as 32 lower-case hex digits (session ids), from getrandom(2). Hand-written:
/// nix has no getrandom, and the getrandom crate would fall back to opening /dev/urandom (a
/// descriptor a caller's tiny RLIMIT_NOFILE may not leave).
pub fn random_hex16() -> io::Result<String> {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`, which lives
        // for the whole call; getrandom writes at most that many bytes.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
