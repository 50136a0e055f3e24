//! Step 5: grant files the user names or keeps, read with the user's own file-system
//! identity (so a symlink to /etc/shadow is refused by the kernel), never blocking (FIFOs,
//! devices refused) and never more than a token's maximum size.

use crate::identity::Invoker;
use crate::paths;
use crate::system::fs;
use jit_grant::MAX_TOKEN_LEN;
use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Read one file as `inv`. The error text is for the person (it names the path).
pub fn read_as_user(inv: &Invoker, path: &Path) -> Result<String, String> {
    let shown = path.display().to_string();
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{shown}: NUL in file name"))?;
    let out = fs::as_user_fs(inv.uid, inv.gid, || -> Result<Vec<u8>, String> {
        let fd = fs::open(&c, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)
            .map_err(|e| format!("{shown}: {e}"))?;
        let st = fs::fstat(fd.as_fd()).map_err(|e| format!("{shown}: {e}"))?;
        if !st.is_file() {
            return Err(format!("{shown}: not a regular file"));
        }
        if st.size > MAX_TOKEN_LEN as u64 {
            return Err(format!(
                "{shown}: {} bytes, too large for a grant (at most {MAX_TOKEN_LEN})",
                st.size
            ));
        }
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_TOKEN_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(buf)
    })
    .map_err(|e| format!("{shown}: {e}"))??;
    token_text(&shown, out)
}

/// Read a grant from standard input (`--grant -`), bounded.
pub fn read_stdin() -> Result<String, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_TOKEN_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("standard input: {e}"))?;
    token_text("standard input", buf)
}

fn token_text(shown: &str, bytes: Vec<u8>) -> Result<String, String> {
    if bytes.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "{shown}: too large for a grant (at most {MAX_TOKEN_LEN} bytes)"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{shown}: not a grant token (not UTF-8 text)"))?;
    Ok(text.trim().to_string())
}

/// `~user/.local/state/jitrun/grants/`.
pub fn store_dir(inv: &Invoker) -> PathBuf {
    inv.home.join(paths::GRANT_STORE)
}

/// Every regular file in the user's grant store (names in order), listed as the user.
pub fn store_files(inv: &Invoker) -> Vec<PathBuf> {
    let dir = store_dir(inv);
    let listed = fs::as_user_fs(inv.uid, inv.gid, || -> Vec<OsString> {
        match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name())
                .filter(|n| !n.as_bytes().starts_with(b"."))
                .collect(),
            Err(_) => Vec::new(),
        }
    })
    .unwrap_or_default();
    let mut names = listed;
    names.sort();
    names
        .into_iter()
        .map(|n| dir.join(OsStr::new(&n)))
        .collect()
}
