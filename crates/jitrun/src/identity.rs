//! Step 2: who is asking. Only the kernel's word counts: the real uid, its passwd entry
//! and the process's groups; never `$USER`, `$HOME` or `$LOGNAME`.

use crate::refusal::Refusal;
use crate::system::fs::std_fd;
use crate::system::{process, term};
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Invoker {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    pub shell: PathBuf,
    /// Group ids: the real gid first, then the supplementary groups.
    pub gids: Vec<u32>,
    /// Group names for policy matching (groups without a name are left out).
    pub groups: Vec<String>,
    pub tty: Option<String>,
    pub cwd: Option<PathBuf>,
}

impl Invoker {
    pub fn current() -> Result<Invoker, Refusal> {
        let uid = process::getuid();
        let gid = process::getgid();
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|e| {
                Refusal::config(
                    "identity",
                    format!("cannot look up uid {uid} in the user database: {e}"),
                )
            })?
            .ok_or_else(|| {
                Refusal::deny(
                    "identity",
                    format!(
                        "uid {uid} has no entry in the user database; jitrun needs a named user"
                    ),
                )
            })?;
        let mut gids = vec![gid];
        for g in process::getgroups().unwrap_or_default() {
            if !gids.contains(&g) {
                gids.push(g);
            }
        }
        let groups = gids
            .iter()
            .filter_map(|&g| {
                Group::from_gid(Gid::from_raw(g))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .collect();
        Ok(Invoker {
            uid,
            gid,
            name: user.name,
            home: user.dir,
            shell: user.shell,
            gids,
            groups,
            tty: terminal_name(),
            cwd: std::env::current_dir().ok(),
        })
    }
}

/// The terminal on stdin, stdout or stderr, if any (`/dev/pts/3`).
fn terminal_name() -> Option<String> {
    for fd in 0..=2 {
        let b = std_fd(fd);
        if term::isatty(b) {
            if let Ok(p) = nix::unistd::ttyname(b) {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

/// This host's name: settings `host`, else the kernel's node name.
pub fn host_name(configured: Option<&str>) -> String {
    if let Some(h) = configured {
        return h.to_string();
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The identity a command runs as.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
    /// The supplementary groups the command gets: for the invoker, her own as the kernel has
    /// them (no lookup); for a named user, the group database's (`getgrouplist`, what
    /// `initgroups` sets), looked up here, before anything is forked.
    pub groups: Vec<u32>,
}

impl Target {
    /// The invoker herself, from what step 2 already read: no second lookup.
    pub fn invoker(inv: &Invoker) -> Target {
        Target {
            name: inv.name.clone(),
            uid: inv.uid,
            gid: inv.gid,
            home: inv.home.clone(),
            shell: inv.shell.clone(),
            groups: inv.gids.clone(),
        }
    }

    pub fn named(name: &str) -> Result<Target, Refusal> {
        let user = User::from_name(name)
            .map_err(|e| Refusal::config("identity", format!("cannot look up run-as user \"{name}\": {e}")))?
            .ok_or_else(|| {
                Refusal::deny("run_as", format!("the run-as user \"{name}\" does not exist on this host; ask your admin to fix the rule"))
            })?;
        let gid = user.gid.as_raw();
        // The bench's A/B build `groups_in_child` leaves this to initgroups in the child.
        let groups = if cfg!(jitrun_ab = "groups_in_child") {
            Vec::new()
        } else {
            let c_name = CString::new(name.as_bytes())
                .map_err(|_| Refusal::config("identity", "NUL in a user name"))?;
            process::grouplist(&c_name, gid).map_err(|e| {
                Refusal::config(
                    "identity",
                    format!("cannot look up the groups of run-as user \"{name}\" in the group database: {e}"),
                )
            })?
        };
        Ok(Target {
            name: user.name,
            uid: user.uid.as_raw(),
            gid,
            home: user.dir,
            shell: user.shell,
            groups,
        })
    }
}
