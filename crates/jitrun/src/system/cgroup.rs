//! A cgroup v2 per run: the command and everything it starts (setsid included) stay in
//! it, and `cgroup.kill` ends them all at once.

use std::fs;
use std::io;
use std::path::PathBuf;

const CGROUP2_SUPER_MAGIC: libc::c_long = 0x6367_7270;

/// Is a cgroup v2 file system mounted exactly at `path`?
fn is_cgroup2(path: &std::ffi::CStr) -> bool {
    // SAFETY: all-zero bytes are a valid `struct statfs`; statfs fills it in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated, `st` is valid and writable for the call.
    unsafe {
        libc::statfs(path.as_ptr(), &mut st) == 0
            && st.f_type as libc::c_long == CGROUP2_SUPER_MAGIC
    }
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
                return Ok(Some(PathBuf::from(unescape_octal(mount))));
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

/// One run's cgroup.
#[derive(Debug)]
pub struct RunCgroup {
    pub path: PathBuf,
}

impl RunCgroup {
    /// Create `<mount>/jitrun/<name>`. Ok(None) only when this host cannot contain a run
    /// (no cgroup v2, or no `cgroup.kill`: Linux before 5.14); any failure on a host that can
    /// is an error, so that a caller's tricks (a tiny RLIMIT_NOFILE) never silently downgrade.
    pub fn create(name: &str) -> io::Result<Option<RunCgroup>> {
        let Some(mount) = mount_point()? else {
            return Ok(None);
        };
        let parent = mount.join("jitrun");
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let path = parent.join(name);
        fs::create_dir(&path)?;
        let cg = RunCgroup { path };
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

    /// A descriptor on the cgroup directory, for clone3(CLONE_INTO_CGROUP).
    pub fn open_dir(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::unix::ffi::OsStrExt;
        let c =
            std::ffi::CString::new(self.path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        super::fs::open(&c, libc::O_RDONLY | libc::O_DIRECTORY)
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
        fs::read_to_string(self.path.join("cgroup.events"))
            .map(|s| s.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(false)
    }

    /// Remove the (empty) cgroup directory; best effort.
    pub fn remove(&self) {
        let _ = fs::remove_dir(&self.path);
    }
}
