//! `jitctl keygen --secret FILE --public FILE [--force]`.
use crate::cli::KeygenArgs;
use crate::error::{io_error, CliError, Result};
use jit_grant::{PublicKey, SecretKey};
use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A new key pair: the secret PASERK to `secret` (0600), the public one to `public` (0644).
pub fn generate_pair(secret: &Path, public: &Path, force: bool) -> Result<PublicKey> {
    let key = SecretKey::generate()?;
    let public_key = key.public_key();
    write_key_file(secret, &format!("{}\n", key.to_paserk()), 0o600, force)?;
    write_key_file(
        public,
        &format!("{}\n", public_key.to_paserk()),
        0o644,
        force,
    )?;
    Ok(public_key)
}

pub fn run(args: &KeygenArgs) -> Result<()> {
    if same_file(&args.secret, &args.public) {
        return Err("--secret and --public name the same file".into());
    }
    if !args.force {
        for path in [&args.secret, &args.public] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(CliError(format!(
                    "{} already exists; use --force to replace it",
                    path.display()
                )));
            }
        }
    }
    let public = generate_pair(&args.secret, &args.public, args.force)?;
    println!("{}", public.kid());
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Write `text` to `path` with exactly `mode` (whatever the umask). Without `force` the
/// file must not exist (O_EXCL, so a file or symlink appearing meanwhile is not followed).
/// With `force` it is written to a new file next to it and renamed over, so the old file
/// is replaced atomically and its old mode is not inherited.
pub(crate) fn write_key_file(path: &Path, text: &str, mode: u32, force: bool) -> Result<()> {
    if !force {
        return write_new(path, text, mode).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CliError(format!(
                "{} already exists; use --force to replace it",
                path.display()
            )),
            _ => io_error("cannot write", path, &e),
        });
    }
    let tmp = temp_name(path);
    if let Err(e) = write_new(&tmp, text, mode) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("cannot write", &tmp, &e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("cannot replace", path, &e)
    })
}

fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.jitctl-{}.tmp", std::process::id()))
}
