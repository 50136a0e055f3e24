//! The command's process: forked (born inside its cgroup where the kernel can), it waits for
//! the supervisor's go, becomes the target ([`super::elevate`]) and `execveat`s the checked
//! descriptor. Until exec it can report one failure through a close-on-exec pipe; end of file
//! on that pipe means exec succeeded.

use super::elevate;
use super::Launch;
use crate::refusal::Refusal;
use crate::system::cgroup::RunCgroup;
use crate::system::process::{self, Fork};
use crate::system::{fs, signals, stream};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// What the child said before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildReport {
    /// Nothing: it exec'd the command.
    Started,
    /// It could not take the granted identity (capabilities, uids, limits): nothing ran.
    IdentityFailed(String),
    /// execveat failed; `code` is the exit status it ended with (127 not found, else 126).
    ExecFailed { code: i32, message: String },
}

impl ChildReport {
    fn encode(&self) -> String {
        match self {
            ChildReport::Started => String::new(),
            ChildReport::IdentityFailed(e) => format!("c{e}"),
            ChildReport::ExecFailed { code, message } => format!("x{code}:{message}"),
        }
    }

    fn parse(text: &str) -> ChildReport {
        if let Some(rest) = text.strip_prefix('c') {
            ChildReport::IdentityFailed(rest.to_string())
        } else if let Some(rest) = text.strip_prefix('x') {
            let (code, message) = rest.split_once(':').unwrap_or(("126", rest));
            ChildReport::ExecFailed {
                code: code.parse().unwrap_or(126),
                message: message.to_string(),
            }
        } else {
            ChildReport::Started
        }
    }

    /// The line for the person and `jitrun.error`, when the command never ran.
    pub fn error(&self, program: &Path) -> Option<String> {
        match self {
            ChildReport::Started => None,
            ChildReport::IdentityFailed(e) => {
                Some(format!("could not take the granted identity: {e}"))
            }
            ChildReport::ExecFailed { message, .. } => {
                Some(format!("cannot execute {}: {message}", program.display()))
            }
        }
    }
}

/// The forked command, waiting for [`go`].
pub struct Spawned {
    pub pid: libc::pid_t,
    /// Born inside the command's cgroup (clone3); else it still has to be moved there.
    pub born_inside: bool,
    pub go: OwnedFd,
    pub report: OwnedFd,
}

/// Fork the command, inside `cgroup` when the kernel can (clone3 with CLONE_INTO_CGROUP, else
/// fork and a later move), with `stdio` on its fds 0–2 (None: jitrun's own). The child never
/// returns from here.
pub fn spawn(
    launch: &Launch<'_>,
    cgroup: Option<&RunCgroup>,
    stdio: Stdio<'_>,
) -> Result<Spawned, Refusal> {
    let fail = |what: &str, e: std::io::Error| Refusal::config("supervise", format!("{what}: {e}"));
    let (go_r, go_w) = process::pipe().map_err(|e| fail("pipe", e))?;
    let (rep_r, rep_w) = process::pipe().map_err(|e| fail("pipe", e))?;
    // SAFETY: jitrun is single-threaded, and the child runs only `child_main`, which execs or
    // ends with `_exit` and never returns here; it uses no thread id the C library caches.
    #[allow(unsafe_code)]
    let forked = unsafe { fork_into(cgroup) };
    let (forked, born_inside) = forked.map_err(|e| {
        if let Some(cg) = cgroup {
            cg.remove();
        }
        fail("fork", e)
    })?;
    match forked {
        Fork::Child => {
            drop(go_w);
            drop(rep_r);
            child_main(launch, go_r, rep_w, stdio)
        }
        Fork::Parent(pid) => Ok(Spawned {
            pid,
            born_inside,
            go: go_w,
            report: rep_r,
        }),
    }
}

/// clone3 into `cgroup`, else fork; whether the child was born inside.
///
/// # Safety
///
/// As for [`process::fork_into_cgroup`] and [`process::fork`].
#[allow(unsafe_code)]
pub(super) unsafe fn fork_into(cgroup: Option<&RunCgroup>) -> std::io::Result<(Fork, bool)> {
    if let Some(dir) = cgroup.and_then(|cg| cg.open_dir().ok()) {
        // SAFETY: the caller upholds fork_into_cgroup's conditions (see # Safety).
        if let Ok(f) = unsafe { process::fork_into_cgroup(dir.as_fd()) } {
            return Ok((f, true));
        }
    }
    // SAFETY: the caller upholds fork's conditions (see # Safety).
    unsafe { process::fork() }.map(|f| (f, false))
}

/// Let the child go on to exec.
pub fn go(go: OwnedFd) -> std::io::Result<()> {
    std::fs::File::from(go).write_all(b"g")
}

/// Wait until the child exec'd (end of file: the pipe is close-on-exec) or reported why not.
pub fn report(report: OwnedFd) -> ChildReport {
    let mut text = String::new();
    let _ = std::fs::File::from(report).read_to_string(&mut text);
    ChildReport::parse(&text)
}

/// What the command puts on fds 0, 1 and 2 (None: what jitrun has there), from
/// [`super::plumbing::Plumbing::child_stdio`].
pub type Stdio<'a> = [Option<BorrowedFd<'a>>; 3];

/// The command's process, from the fork to exec (with or without a pty monitor above it).
pub(super) fn child_main(launch: &Launch<'_>, go: OwnedFd, report: OwnedFd, stdio: Stdio<'_>) -> ! {
    let mut report = std::fs::File::from(report);
    let _ = process::setpgid(0, 0);
    let mut byte = [0u8; 1];
    let mut go = std::fs::File::from(go);
    if go.read(&mut byte).map(|n| n != 1).unwrap_or(true) {
        process::exit_now(1); // the supervisor gave up before the start
    }
    signals::default_all();
    let _ = signals::unblock_all();
    let on_std = stdio
        .iter()
        .enumerate()
        .filter_map(|(n, fd)| fd.map(|fd| (n, fd)))
        .try_for_each(|(n, fd)| stream::dup_onto_std(fd, n as i32));
    if let Err(e) = on_std.and_then(|()| elevate::become_target(&launch.plan)) {
        let _ = report.write_all(
            ChildReport::IdentityFailed(e.to_string())
                .encode()
                .as_bytes(),
        );
        process::exit_now(1);
    }
    if launch.program.is_script {
        let _ = fs::clear_cloexec(launch.program.fd.as_fd());
    }
    let e = process::exec_fd(launch.program.fd.as_fd(), &launch.argv, &launch.envp);
    let code = if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    let failed = ChildReport::ExecFailed {
        code,
        message: e.to_string(),
    };
    let _ = report.write_all(failed.encode().as_bytes());
    process::exit_now(code);
}

#[cfg(test)]
mod tests {
    use super::ChildReport;
    use std::path::Path;

    #[test]
    fn reports_read_back_as_written() {
        for r in [
            ChildReport::Started,
            ChildReport::IdentityFailed("setresuid: Operation not permitted".into()),
            ChildReport::ExecFailed {
                code: 127,
                message: "No such file or directory (os error 2)".into(),
            },
            ChildReport::ExecFailed {
                code: 126,
                message: "a: message: with colons".into(),
            },
        ] {
            assert_eq!(ChildReport::parse(&r.encode()), r);
        }
    }

    #[test]
    fn a_report_names_the_program_or_the_identity() {
        let p = Path::new("/usr/bin/id");
        assert_eq!(ChildReport::Started.error(p), None);
        assert_eq!(
            ChildReport::IdentityFailed("capset: EPERM".into()).error(p),
            Some("could not take the granted identity: capset: EPERM".into())
        );
        let failed = ChildReport::ExecFailed {
            code: 126,
            message: "Permission denied".into(),
        };
        assert_eq!(
            failed.error(p),
            Some("cannot execute /usr/bin/id: Permission denied".into())
        );
        // A truncated report still says the command did not run.
        assert_eq!(
            ChildReport::parse("xgarbage"),
            ChildReport::ExecFailed {
                code: 126,
                message: "xgarbage"[1..].to_string()
            }
        );
    }
}
