//! The operating-system layer: every `unsafe` block of jitrun lives here, behind
//! small safe functions. Everything above this module is safe Rust.

pub mod attrs;
pub mod caps;
pub mod cgroup;
pub mod fs;
pub mod pam;
pub mod process;
pub mod seccomp;
pub mod signals;
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

/// 16 random bytes as 32 lower-case hex digits (session ids), from getrandom(2).
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
