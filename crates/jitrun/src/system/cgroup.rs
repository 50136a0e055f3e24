//! A cgroup v2 per run, `<mount>/jitrun/<session>/`, owned by root, with two leaves:
//! `supervisor` holds jitrun's own processes (from right after hardening: the supervisor, then
//! the watchdog) and `command` the command and everything it starts (setsid included), which
//! `cgroup.kill` ends at once. No caller can move jitrun's processes out of `supervisor`, freeze
//! or kill them through a cgroup of her own: migrating a process needs write access to the
//! common ancestor's `cgroup.procs`, here the root cgroup's. A session whose `supervisor` leaf
//! is empty lost its supervisor and watchdog (see `exec/stale_runs.rs`).

use std::cell::Cell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Is a cgroup v2 file system mounted exactly at `path`?
fn is_cgroup2(path: &std::ffi::CStr) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    statfs(path).is_ok_and(|st| st.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// Where cgroup v2 is mounted: `/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified`
/// on hybrid ones (checked with one statfs each, the common case), else found in
/// /proc/self/mountinfo. Ok(None): this kernel has no cgroup v2 mounted.
pub fn mount_point() -> io::Result<Option<PathBuf>> {
    for known in [c"/sys/fs/cgroup", c"/sys/fs/cgroup/unified"] {
        if is_cgroup2(known) {
            return Ok(Some(PathBuf::from(known.to_str().expect("ASCII path"))));
        }
    }
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    for line in info.lines() {
        // "... mount_point options ... - fstype source superopts"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() == Some("cgroup2") {
            if let Some(mount) = left.split_whitespace().nth(4) {
                // Only if it is still reachable there: a mount over it hides it (and jitrun
                // must never make directories in whatever file system covers it).
                let mount = unescape_octal(mount);
                let Ok(c) = std::ffi::CString::new(mount.as_bytes()) else {
                    continue;
                };
                if is_cgroup2(&c) {
                    return Ok(Some(PathBuf::from(mount)));
                }
            }
        }
    }
    Ok(None)
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const PARENT: &str = "jitrun";
const SUPERVISOR: &str = "supervisor";
const COMMAND: &str = "command";

fn mkdir(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// `<mount>/jitrun`, created when missing; it must be root's.
fn parent_dir(mount: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let parent = mount.join(PARENT);
    mkdir(&parent)?;
    let meta = fs::symlink_metadata(&parent)?;
    if !meta.is_dir() || meta.uid() != 0 {
        return Err(io::Error::other(format!(
            "{} is not a directory owned by root",
            parent.display()
        )));
    }
    Ok(parent)
}

fn is_populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|s| s.lines().any(|l| l.trim() == "populated 1"))
        .unwrap_or(false)
}

/// Is the session's `supervisor` leaf empty? Only what the kernel says counts: a leaf that
/// cannot be read (no descriptor left, say) is taken as alive, and a session without one is
/// left alone (a jitrun between its two mkdirs, or an older jitrun's run).
fn supervisor_gone(session: &Path) -> bool {
    fs::read_to_string(session.join(SUPERVISOR).join("cgroup.events"))
        .map(|events| events.lines().any(|l| l.trim() == "populated 0"))
        .unwrap_or(false)
}

/// A descriptor on a cgroup directory, for clone3(CLONE_INTO_CGROUP).
fn open_dir(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    super::fs::open(&c, libc::O_RDONLY | libc::O_DIRECTORY)
}

fn move_self(dir: &Path) -> io::Result<()> {
    fs::write(
        dir.join("cgroup.procs"),
        super::process::getpid().to_string(),
    )
}

/// One run's cgroup directory, `<mount>/jitrun/<session>`, and jitrun's own leaf in it.
#[derive(Debug)]
pub struct SessionCgroup {
    pub dir: PathBuf,
    parent: PathBuf,
    /// Another process removes the directories once this one has exited (the front, or the
    /// watchdog).
    removal_handed_over: Cell<bool>,
}

impl SessionCgroup {
    /// `<mount>/jitrun/<session>`, not made yet. Ok(None): this host has no cgroup v2.
    pub fn for_session(session: &str) -> io::Result<Option<SessionCgroup>> {
        let Some(mount) = mount_point()? else {
            return Ok(None);
        };
        let parent = parent_dir(&mount)?;
        Ok(Some(SessionCgroup {
            dir: parent.join(session),
            parent,
            removal_handed_over: Cell::new(false),
        }))
    }

    /// Make the session's directory and its `supervisor` leaf; a descriptor on the leaf, for
    /// clone3(CLONE_INTO_CGROUP): a process born there was never anywhere else (moving one
    /// in would wait for an RCU grace period).
    pub fn make_supervisor_leaf(&self) -> io::Result<std::os::fd::OwnedFd> {
        let leaf = self.dir.join(SUPERVISOR);
        mkdir(&self.dir)?;
        mkdir(&leaf)?;
        open_dir(&leaf)
    }

    /// Move the calling process into the session's `supervisor` leaf, making the directories
    /// as needed (also after a PAM module such as pam_systemd moved it into a session scope).
    pub fn reenter(&self) -> io::Result<()> {
        let leaf = self.dir.join(SUPERVISOR);
        let mut last = io::Error::from(io::ErrorKind::NotFound);
        for _ in 0..5 {
            match mkdir(&self.dir)
                .and_then(|_| mkdir(&leaf))
                .and_then(|_| move_self(&leaf))
            {
                Err(e) if e.kind() == io::ErrorKind::NotFound => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// The command's leaf. Ok(None) when the kernel has no `cgroup.kill` (before Linux 5.14):
    /// the command is then held by its process group instead.
    pub fn command(&self) -> io::Result<Option<RunCgroup>> {
        let cg = RunCgroup {
            path: self.dir.join(COMMAND),
        };
        mkdir(&cg.path)?;
        match fs::metadata(cg.path.join("cgroup.kill")) {
            Ok(_) => Ok(Some(cg)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                cg.remove();
                Ok(None)
            }
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    /// Another process (the front, the watchdog) will remove the session's directories after
    /// this one has exited: [`SessionCgroup::leave`] is then not needed (it would move this
    /// process to another cgroup, which waits for an RCU grace period, before the caller gets
    /// her exit status).
    pub fn hand_over_removal(&self) {
        self.removal_handed_over.set(true);
    }

    pub fn removal_handed_over(&self) -> bool {
        self.removal_handed_over.get()
    }

    /// Remove the session's directories from outside them (the front, once the supervisor has
    /// exited); best effort. False while the `supervisor` leaf still holds a process (the
    /// watchdog, on its way out).
    pub fn remove_from_outside(&self) -> bool {
        remove_session(&self.dir);
        !is_populated(&self.dir.join(SUPERVISOR))
    }

    /// At the end of the run: move to `<mount>/jitrun` (no controller is ever enabled there,
    /// so a process may sit in it) and remove the session's directories. Best effort: what is
    /// left is an empty session that the next sweep removes.
    pub fn leave(&self) {
        if move_self(&self.parent).is_ok() {
            remove_session(&self.dir);
        }
    }
}

/// Remove a session's (empty) directories; best effort. The `supervisor` leaf goes only once
/// the `command` leaf is gone: a session whose command leaf is still there (its processes
/// still running) must keep the empty supervisor leaf by which the next sweep finds it.
pub fn remove_session(dir: &Path) {
    for leaf in [COMMAND, SUPERVISOR] {
        if let Err(e) = fs::remove_dir(dir.join(leaf)) {
            if e.kind() != io::ErrorKind::NotFound {
                return;
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The sessions under `<mount>/jitrun` whose `supervisor` leaf holds no process: their
/// supervisor and watchdog have ended. Their directory and the command's leaf.
pub fn abandoned_sessions() -> Vec<(String, PathBuf, RunCgroup)> {
    let Ok(Some(mount)) = mount_point() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(mount.join(PARENT)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(_, dir)| supervisor_gone(dir))
        .map(|(name, dir)| {
            let command = RunCgroup {
                path: dir.join(COMMAND),
            };
            (name, dir, command)
        })
        .collect()
}

/// One run's command cgroup (`<mount>/jitrun/<session>/command`).
#[derive(Debug)]
pub struct RunCgroup {
    pub path: PathBuf,
}

impl RunCgroup {
    /// A descriptor on the cgroup directory, for clone3(CLONE_INTO_CGROUP).
    pub fn open_dir(&self) -> io::Result<std::os::fd::OwnedFd> {
        open_dir(&self.path)
    }

    pub fn add(&self, pid: libc::pid_t) -> io::Result<()> {
        fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }

    pub fn pids(&self) -> Vec<libc::pid_t> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn signal_all(&self, sig: libc::c_int) {
        for pid in self.pids() {
            let _ = super::signals::kill(pid, sig);
        }
    }

    /// SIGKILL to every process in the cgroup, atomically.
    pub fn kill_all(&self) -> io::Result<()> {
        fs::write(self.path.join("cgroup.kill"), "1")
    }

    pub fn is_populated(&self) -> bool {
        is_populated(&self.path)
    }

    /// Remove the (empty) cgroup directory; best effort.
    pub fn remove(&self) {
        let _ = fs::remove_dir(&self.path);
    }
}
