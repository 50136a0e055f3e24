//! `jitctl policy check [PATH...]`.
use crate::cli::CheckArgs;
use crate::error::{io_error, CliError, Result};
use jit_policy::{Policy, PolicySource};
use std::path::{Path, PathBuf};

pub const DEFAULT_POLICY: &str = "/etc/jitrun/policy.toml";
pub const DEFAULT_DROPIN_DIR: &str = "/etc/jitrun/policy.d";

/// The `*.toml` regular files of a directory, in name order (bytewise).
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error("cannot list", dir, &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list", dir, &e))?;
        let path = entry.path();
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        if is_toml && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Files to load, in order: each PATH (a directory stands for its *.toml in name order),
/// or by default policy.toml then policy.d/*.toml (either may be absent, as for jitrun).
pub fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        let mut files = Vec::new();
        if Path::new(DEFAULT_POLICY).exists() {
            files.push(PathBuf::from(DEFAULT_POLICY));
        }
        let dropins = Path::new(DEFAULT_DROPIN_DIR);
        if dropins.is_dir() {
            files.extend(toml_files(dropins)?);
        }
        return Ok(files);
    }
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| io_error("cannot read", path, &e))?;
        if meta.is_dir() {
            files.extend(toml_files(path)?);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

pub fn load_sources(files: &[PathBuf]) -> Result<Vec<PolicySource>> {
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                CliError(format!(
                    "{}: not UTF-8 (byte {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ))
            })?;
            Ok(PolicySource {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

pub fn check(args: &CheckArgs) -> Result<()> {
    let files = policy_files(&args.paths)?;
    if files.is_empty() {
        return Err("no policy files to check (the directories given hold no *.toml files)".into());
    }
    let sources = load_sources(&files)?;
    let policy = Policy::load(&sources)?;
    println!(
        "ok: {} rules from {} files",
        policy.rules.len(),
        sources.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_toml_files_in_name_order() {
        let dir = std::env::temp_dir().join(format!("jitctl-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.toml")).unwrap();
        for name in ["b.toml", "a.toml", "10-x.toml", "c.txt", "d.toml~"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let files = policy_files(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["10-x.toml", "a.toml", "b.toml"]);
        let explicit = policy_files(&[dir.join("c.txt"), dir.clone()]).unwrap();
        assert_eq!(explicit.len(), 4);
        assert!(policy_files(&[dir.join("missing.toml")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
