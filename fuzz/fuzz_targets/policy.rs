//! The policy loader must never panic, hang or blow up on any text; a policy it accepts must
//! give a decision (allow or deny) for any request without panicking. The `[[test]]` reader
//! (jitctl's, not jitrun's: the loader passes those tables over) gets the same text, and each
//! case it accepts runs against the policy.
#![no_main]
use jit_policy::test_case::run_test;
use jit_policy::{decide, load_tests, Policy, PolicySource, Request};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let sources = [PolicySource { name: "fuzz.toml".into(), text: text.into() }];
    let Ok(policy) = Policy::load(&sources) else { return };
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
    if let Ok(tests) = load_tests(&sources) {
        for t in tests.iter().take(16) {
            let _ = run_test(&policy, t);
        }
    }
});
