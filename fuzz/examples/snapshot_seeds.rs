//! Seeds for the `snapshot` fuzz target: the policy snapshot of each file of
//! policy-examples/, and of all of them together, as jitrun would write it.
//!
//! usage (in fuzz/): cargo run --example snapshot_seeds -- corpus/snapshot
use jit_policy::{snapshot, Policy, PolicySource};
use std::path::Path;

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: snapshot_seeds OUT_DIR");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy-examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .expect("policy-examples/")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let sources: Vec<PolicySource> = files
        .iter()
        .map(|p| PolicySource {
            name: format!(
                "/etc/jitrun/policy.d/{}",
                p.file_name().unwrap().to_string_lossy()
            ),
            text: std::fs::read_to_string(p).expect("readable policy example"),
        })
        .collect();
    std::fs::create_dir_all(&out).expect("output directory");
    let key = b"fuzz seed: file identities and versions go here";
    let write = |name: &str, sources: &[PolicySource]| {
        let policy = Policy::load(sources).unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = Path::new(&out).join(format!("seed-{name}"));
        std::fs::write(&path, snapshot::encode(&policy, key)).expect("write the seed");
        println!("{}: {} rules", path.display(), policy.rules.len());
    };
    for (file, source) in files.iter().zip(&sources) {
        write(
            &file.file_stem().unwrap().to_string_lossy(),
            std::slice::from_ref(source),
        );
    }
    write("all", &sources);
    write("empty", &[]);
}
