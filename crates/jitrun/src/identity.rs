//! Step 2: who is asking. Only the kernel's word counts: the real uid, its passwd entry
//! and the process's groups; never `$USER`, `$HOME` or `$LOGNAME`.

use crate::refusal::Refusal;
use crate::system::fs::std_fd;
use crate::system::{process, term};
use nix::unistd::{Gid, Group, Uid, User};
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
    /// The invoker's own supplementary groups, as the kernel has them (run as the invoker: no
    /// lookup); `None` for a named user, whose groups the child reads from the group database
    /// (`initgroups`) after the fork.
    pub keep_groups: Option<Vec<u32>>,
}

impl Target {
    /// The invoker herself, from what step 2 already read: no second lookup.
    pub fn invoker(inv: &Invoker) -> Result<Target, Refusal> {
        if cfg!(jitrun_ab = "invoker_lookup") {
            // The bench's A/B build: her passwd entry read a second time, as before.
            let _ = User::from_uid(Uid::from_raw(inv.uid));
        }
        Ok(Target {
            name: inv.name.clone(),
            uid: inv.uid,
            gid: inv.gid,
            home: inv.home.clone(),
            shell: inv.shell.clone(),
            keep_groups: Some(inv.gids.clone()),
        })
    }

    pub fn named(name: &str) -> Result<Target, Refusal> {
        let user = User::from_name(name)
            .map_err(|e| Refusal::config("identity", format!("cannot look up run-as user \"{name}\": {e}")))?
            .ok_or_else(|| {
                Refusal::deny("run_as", format!("the run-as user \"{name}\" does not exist on this host; ask your admin to fix the rule"))
            })?;
        Ok(Target {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            shell: user.shell,
            keep_groups: None,
        })
    }
}
