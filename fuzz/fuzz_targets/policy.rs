//! The policy loader must never panic, hang or blow up on any text; a policy it accepts must
//! give a decision (allow or deny) for any request without panicking.
#![no_main]
use jit_policy::{decide, Policy, PolicySource, Request};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = PolicySource { name: "fuzz.toml".into(), text: text.into() };
    if let Ok(policy) = Policy::load(&[source]) {
        let args = [OsStr::new("-l"), OsStr::new("x y")];
        let groups = ["wheel".to_string()];
        let request = Request {
            user: "alice",
            groups: &groups,
            host: "web-1",
            program: OsStr::new("/usr/bin/ls"),
            args: &args,
            run_as: None,
            rule: None,
        };
        let _ = decide(&policy, &request, None);
    }
});
