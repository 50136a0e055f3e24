#!/usr/bin/env python3
"""Remove each defence once: the check issue 4's "Done when" asks for.

For every defence in DEFENCES below (a file under crates/, an exact source snippet, the text
that replaces it and removes the defence, and the end-to-end tests that must then FAIL):

1. the workspace sources are copied to a scratch tree (default
   target/defence-check/src; only changed files are rewritten, so rebuilds stay incremental)
   and built there with a persistent CARGO_TARGET_DIR (default target/defence-check/target);
2. the unmodified build runs the union of all listed tests: every one must PASS (else a
   failing test would prove nothing);
3. for each defence: the edit is applied to the scratch copy (each snippet must occur exactly
   once, so the table cannot silently rot), `cargo build -p jitrun` (or `-p jit-broker` for the
   broker's defences), the binary is kept under target/defence-check/bins/NAME (it must differ
   from the unmodified one), the source is restored, and the listed tests run with
   JITRUN_BIN (or JITBROKER) = that binary: every one must FAIL (a failure in the test body; a
   skip, a setup error or a pass is not detection);
4. a table is printed (and written as Markdown with --markdown FILE): defence, snippet
   location, tests, result. The exit status is 0 only if every testable defence was detected.

A defence may also be an edit to a file outside crates/ that the tests read from this
repository (a configuration the project ships, e.g. packaging/siem/rsyslog/*.conf, or the one
docs/audit.md documents): nothing is built; once every source defence's tests are done, the
edit is made in place, the listed tests run against the unmodified build, and the file is put
back (also when the run is interrupted).

A defence that no end-to-end test can see removed (another layer does the same, or only a
host-wide setting would show it) has no tests and says why in `untestable`: it is still built
without the defence (the snippet must exist, the binary must change) and reported as such.

Tests run from this repository's tests/ (pytest), against the setuid copy the harness
(tests/harness/jitlab.py) installs of the given JITRUN_BIN, and (tests/broker) the jitbroker
given by JITBROKER. Root only. Builds of the next
mutant overlap with the tests of the previous one (one pytest session at a time).

    sudo python3 scripts/defence_check.py            # all (make defence-check)
    sudo python3 scripts/defence_check.py --list     # the table and a snippet check, no build
    sudo python3 scripts/defence_check.py --only fd  # defences whose name contains "fd"
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import filecmp
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = "crates/jitrun/src"
A = "tests/e2e/test_attacks.py"
G = "tests/e2e/test_grants.py"
C = "tests/e2e/test_audit_config.py"
R = "tests/e2e/test_refusals.py"
P = "tests/e2e/test_pam.py"
X = "tests/e2e/test_execution.py"
K = "tests/e2e/test_capabilities.py"
RR = "tests/e2e/test_review_regressions.py"
SEALED = "tests/e2e/test_sealed.py"
S = "tests/e2e/test_audit_sender.py"
FORGED = f"{S}::test_forged_audit_events_from_a_user_never_reach_the_events_output"
SENDER_CHECK = ('    if not (exists($!uid) and (($programname == "jitrun" and cnum($!uid) == 0)\n'
                '            or ($programname == "jitbroker" and cnum($!uid) == cnum($.jitrun_broker_uid)))) then {\n')
BSRC = "crates/jit-broker/src"
BC = "tests/broker/test_connections.py"
BS = "tests/broker/test_syslog_stall.py"
BH = "tests/broker/test_hardening.py"
BF = "tests/broker/test_store_faults.py"
BW = "tests/broker/test_web.py"
WSRC = "crates/jit-broker/src/web"
BWATCH = "tests/broker/test_watch.py"
BSEAL = "tests/broker/test_sealed_reports.py"
BR = "tests/broker/test_replicas.py"
# The binary each package builds.
BINARY = {"jitrun": "jitrun", "jit-broker": "jitbroker", "jitctl": "jitctl"}
PS = "tests/e2e/test_policy_safety.py"
SR = "tests/e2e/test_session_recording.py"
ST = "tests/e2e/test_session_terminal.py"
POLICY = "crates/jit-policy/src"
PC = "tests/e2e/test_policy_cache.py"
CTL = "crates/jitctl/src"


@dataclasses.dataclass
class Defence:
    name: str
    file: str  # relative to the repository
    edits: list[tuple[str, str]]  # (exact snippet, replacement), each snippet found exactly once
    tests: list[str]  # pytest node ids that must fail without the defence
    note: str = ""
    # Why no end-to-end test can see this defence removed (then `tests` is empty): the row is
    # still built (the snippet must exist and the binary must change) and reported, not failed.
    untestable: str = ""
    # The package the defence lives in (its binary is rebuilt and tested): jitrun, jit-broker
    # or jitctl (the tests then get it as JITCTL_BIN).
    package: str = "jitrun"

    @property
    def is_source(self) -> bool:
        """An edit to the Rust sources (rebuilt); else to a file the tests read in place."""
        return self.file.startswith("crates/")


DEFENCES: list[Defence] = [
    Defence(
        "argc == 0 / empty argv[0] refused (PwnKit)", f"{SRC}/harden.rs",
        [("    if args.is_empty() {\n", "    if false {\n"),
         ("    if args[0].is_empty() {\n", "    if false {\n")],
        [f"{A}::test_argc_zero_and_empty_argv0_are_refused"]),
    Defence(
        "-u takes a plain name only (CVE-2019-14287)", f"{SRC}/cli.rs",
        [("    if bytes.is_empty() || bytes.len() > MAX_NAME {\n", "    if bytes.is_empty() {\n"),
         ("    if s.chars()\n"
          "        .any(|c| c.is_control() || c.is_whitespace() || c == '/' || c == ':')\n"
          "        || s.starts_with('-')\n"
          "        || s.starts_with('#')\n"
          "    {\n", "    if false {\n")],
        [f"{A}::test_dash_u_numeric_forms_are_usage_errors"]),
    Defence(
        "command gets only the built environment (env_keep)", f"{SRC}/env.rs",
        [("    out\n}\n\n#[cfg(test)]",
          "    let mut all: Vec<CString> = snapshot\n"
          "        .iter()\n"
          "        .filter_map(|(k, v)| entry(&k.to_string_lossy(), v.as_bytes()))\n"
          "        .collect();\n"
          "    all.extend(out);\n"
          "    all\n}\n\n#[cfg(test)]")],
        [f"{A}::test_hostile_environment_reaches_neither_jitrun_nor_the_command",
         f"{X}::test_environment_is_clean"]),
    Defence(
        "kept variables must have sane values (TZ/LANG/LC_* not paths)", f"{SRC}/env.rs",
        [("        if let Some(v) = lookup(name).filter(|v| sane_value(name, v)) {\n",
          "        if let Some(v) = lookup(name) {\n")],
        [f"{A}::test_env_keep_drops_path_tricks_in_kept_locale_and_tz"]),
    Defence(
        "jitrun's own environment cleared at start", f"{SRC}/harden.rs",
        [("    unsafe {\n        process::clear_env()\n    };\n", "    {};\n")],
        [],
        untestable="nothing jitrun runs after the snapshot reads the environment: glibc already drops the "
                   "loader, iconv and locale-path variables for a setuid start (AT_SECURE), jitrun's code reads "
                   "none, PAM modules start programs with the PAM environment only, and the command's "
                   "environment is built from the snapshot. Only syslog(3) timestamps that PAM modules write to "
                   "/dev/log could follow a caller's TZ; this host has no /dev/log. It guards future code"),
    Defence(
        "fds above 2 closed", f"{SRC}/harden.rs",
        [("    let _ = unsafe { fs::close_from_3() };\n", "    let _ = ();\n")],
        [f"{A}::test_descriptors_above_2_do_not_reach_the_command"]),
    Defence(
        "closed fds 0-2 reopened on /dev/null", f"{SRC}/harden.rs",
        [("    fs::ensure_std_fds().map_err(|e| {\n"
          "        Refusal::config(\"harden\", format!(\"cannot set up standard descriptors: {e}\"))\n"
          "    })?;\n", "")],
        [],
        untestable="two layers below it do the same before main: Rust's runtime reopens closed fds 0-2 on "
                   "/dev/null for every caller, and glibc does it for a setuid start (AT_SECURE). The fd tests "
                   "(test_closed_standard_descriptors_*, also as root) pass with it removed"),
    Defence(
        "PR_SET_DUMPABLE 0", f"{SRC}/harden.rs",
        [("    caps::set_dumpable(false).map_err(|e| {\n"
          "        Refusal::config(\n"
          "            \"harden\",\n"
          "            format!(\"cannot make the process non-dumpable: {e}\"),\n"
          "        )\n"
          "    })?;\n", "")],
        [],
        untestable="the kernel already makes a setuid start non-dumpable (fs.suid_dumpable is 0 here), the "
                   "caller's uid never matches jitrun's effective uid 0 (ptrace and /proc/PID/mem need all "
                   "uids to match), and RLIMIT_CORE is 0. It matters with fs.suid_dumpable = 1 or a core_pattern "
                   "pipe, host-wide settings a test must not change under other runs; "
                   "test_user_cannot_trace_read_or_signal_the_supervisor passes without it"),
    Defence(
        "supervisor fully root after fork (setresuid 0)", f"{SRC}/exec/mod.rs",
        [("    if let Err(e) = process::setresgid(0).and_then(|_| process::setresuid(0)) {\n",
          "    if let Err(e) = process::set_real_uid(launch.plan.target.uid) {\n")],
        [f"{A}::test_user_cannot_trace_read_or_signal_the_supervisor",
         f"{X}::test_user_cannot_kill_the_supervisor_to_escape_expiry"],
        note="since issue 12 jitrun's real uid is root's before it forks (become_unsignalable), which hides "
             "this line's removal; the row gives the supervisor its caller's real uid back instead, as it "
             "had before both"),
    Defence(
        "trusted files: owned by root", f"{SRC}/trusted_files.rs",
        [("    if st.uid != 0 {\n        return Err(untrusted(\n", "    if false {\n        return Err(untrusted(\n")],
        [f"{A}::test_more_untrusted_files_are_refused[settings-user-owned]",
         f"{A}::test_more_untrusted_files_are_refused[uses-dir-user-owned]",
         f"{C}::test_untrusted_config_files_are_refused[policy-not-root]",
         f"{C}::test_untrusted_config_files_are_refused[key-not-root]"]),
    Defence(
        "trusted files: not group/world-writable", f"{SRC}/trusted_files.rs",
        [("    if st.mode & 0o022 != 0 {\n        return Err(untrusted(\n",
          "    if false {\n        return Err(untrusted(\n")],
        [f"{A}::test_more_untrusted_files_are_refused[key-group-writable]",
         f"{A}::test_more_untrusted_files_are_refused[keysdir-world-writable]",
         f"{A}::test_more_untrusted_files_are_refused[state-group-writable]",
         f"{C}::test_untrusted_config_files_are_refused[policy-group-writable]",
         f"{C}::test_untrusted_config_files_are_refused[dropin-world-writable]",
         f"{C}::test_untrusted_config_files_are_refused[confdir-group-writable]"]),
    Defence(
        "trusted files: O_NOFOLLOW on the file", f"{SRC}/trusted_files.rs",
        [("    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;\n",
          "    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;\n")],
        [f"{A}::test_more_untrusted_files_are_refused[settings-symlink]",
         f"{C}::test_untrusted_config_files_are_refused[policy-symlink]"]),
    Defence(
        "trusted files: O_NOFOLLOW on each directory", f"{SRC}/trusted_files.rs",
        [("            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,\n",
          "            libc::O_PATH | libc::O_DIRECTORY,\n")],
        [f"{A}::test_more_untrusted_files_are_refused[policydir-symlink]"]),
    Defence(
        "grant file read with the caller's identity (as_user_fs)", f"{SRC}/user_files.rs",
        [("    let out = fs::as_user_fs(inv.uid, inv.gid, || -> Result<Vec<u8>, String> {\n",
          "    let out = std::io::Result::Ok((|| -> Result<Vec<u8>, String> {\n"),
         ("        Ok(buf)\n    })\n    .map_err(|e| format!(\"{shown}: {e}\"))??;\n",
          "        Ok(buf)\n    })())\n    .map_err(|e: std::io::Error| format!(\"{shown}: {e}\"))??;\n")],
        [f"{G}::test_grant_symlink_to_shadow_is_refused",
         f"{G}::test_grant_file_the_user_cannot_read_is_refused"]),
    Defence(
        "grant size limit (64 KiB) checked before decoding", f"{SRC}/user_files.rs",
        [("        if st.size > MAX_TOKEN_LEN as u64 {\n", "        if false {\n"),
         ("    if bytes.len() > MAX_TOKEN_LEN {\n", "    if false {\n")],
        [f"{A}::test_oversized_token_is_refused_before_decoding",
         f"{A}::test_grant_path_that_is_not_a_small_file_is_refused_without_reading_it[sparse-1GB]"],
        note="the bounded read (take(64 KiB + 1)) stays: without it a test would read /dev/zero until "
             "the OOM killer stepped in"),
    Defence(
        "grant file must be a regular file", f"{SRC}/user_files.rs",
        [("        if !st.is_file() {\n            return Err(format!(\"{shown}: not a regular file\"));\n",
          "        if false {\n            return Err(format!(\"{shown}: not a regular file\"));\n")],
        [f"{A}::test_grant_path_that_is_not_a_small_file_is_refused_without_reading_it[fifo]"]),
    Defence(
        "grant file opened non-blocking (a FIFO cannot hang jitrun)", f"{SRC}/user_files.rs",
        [("        let fd = fs::open(&c, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)\n",
          "        let fd = fs::open(&c, libc::O_RDONLY | libc::O_NOCTTY)\n")],
        [f"{A}::test_grant_path_that_is_not_a_small_file_is_refused_without_reading_it[fifo]"]),
    Defence(
        "relative command paths refused", f"{SRC}/command.rs",
        [("        if !name.starts_with(b\"/\") {\n", "        if false {\n")],
        [f"{A}::test_relative_command_paths_are_refused"]),
    Defence(
        "command's directories must be trusted (no user-writable directory)", f"{SRC}/command.rs",
        [("    let dirfd = trusted_files::walk_dir(&parent.to_string_lossy())\n",
          "    let dirfd = Ok::<_, Refusal>(\n"
          "        fs::open(\n"
          "            &CString::new(parent.as_os_str().as_bytes()).unwrap(),\n"
          "            libc::O_PATH | libc::O_DIRECTORY,\n"
          "        )\n"
          "        .ok(),\n"
          "    )\n")],
        [f"{A}::test_command_in_a_user_writable_directory_is_refused"]),
    Defence(
        "command file: root-owned, not writable, no setuid/setgid, no file caps", f"{SRC}/command.rs",
        [("    if st.mode & (libc::S_ISUID | libc::S_ISGID) != 0 {\n", "    if false {\n"),
         ("    if st.uid != 0 {\n        return Err(unsafe_target(", "    if false {\n        return Err(unsafe_target("),
         ("    if st.mode & 0o022 != 0 {\n        return Err(unsafe_target(",
          "    if false {\n        return Err(unsafe_target("),
         ("        Ok(false) => {}\n", "        Ok(_) => {}\n")],
        [f"{K}::test_unsafe_target_is_refused"]),
    Defence(
        "command executed by its checked fd (execveat, no swap)", f"{SRC}/exec/spawn.rs",
        [("    let e = process::exec_fd(launch.program.fd.as_fd(), &launch.argv, &launch.envp);\n",
          "    let e = {\n"
          "        use std::os::unix::ffi::OsStrExt as _;\n"
          "        use std::os::unix::process::CommandExt as _;\n"
          "        let os = |c: &std::ffi::CString| std::ffi::OsStr::from_bytes(c.as_bytes()).to_os_string();\n"
          "        let mut cmd = std::process::Command::new(&launch.program.canonical);\n"
          "        cmd.arg0(os(&launch.argv[0]))\n"
          "            .args(launch.argv[1..].iter().map(os))\n"
          "            .env_clear();\n"
          "        for kv in &launch.envp {\n"
          "            let b = kv.as_bytes();\n"
          "            let eq = b.iter().position(|&x| x == b'=').unwrap_or(b.len());\n"
          "            cmd.env(std::ffi::OsStr::from_bytes(&b[..eq]), std::ffi::OsStr::from_bytes(&b[eq + 1..]));\n"
          "        }\n"
          "        cmd.exec()\n"
          "    };\n")],
        [f"{P}::test_the_checked_file_is_the_one_executed_even_if_replaced_during_authentication"]),
    Defence(
        "max_uses counter locked (flock)", f"{SRC}/uses.rs",
        [("    fs::lock_exclusive(&file).map_err(|e| {\n"
          "        Refusal::config(\n"
          "            \"state\",\n"
          "            format!(\"{}/{jti}: cannot lock: {e}\", counter_dir()),\n"
          "        )\n"
          "    })?;\n", "")],
        [f"{A}::test_max_uses_counter_is_read_and_rewritten_under_its_lock"],
        note="test_max_uses_holds_under_20_concurrent_runs passes without the lock: its runs seldom meet "
             "inside the read-rewrite window"),
    Defence(
        "grant id cannot become a path (use counter file name)", f"{SRC}/uses.rs",
        [("    if jti.is_empty()\n"
          "        || jti.len() > 64\n"
          "        || !jti\n"
          "            .bytes()\n"
          "            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')\n"
          "    {\n", "    if jti.is_empty() {\n")],
        [f"{A}::test_grant_id_cannot_traverse_out_of_the_use_counter_directory"]),
    Defence(
        "audit fail_closed: nothing runs unlogged", f"{SRC}/audit.rs",
        [("        match self.deliver(event, !self.fail_closed) {\n", "        match self.deliver(event, true) {\n")],
        [f"{C}::test_audit_fail_closed_runs_nothing"]),
    Defence(
        "token kind: a grant's implicit assertion", f"{SRC}/decide.rs",
        [("    let v = jit_grant::verify(token, inp.keys, TokenKind::Grant).map_err(grant_refusal)?;\n",
          "    let v = jit_grant::verify(token, inp.keys, TokenKind::Grant)\n"
          "        .or_else(|_| jit_grant::verify(token, inp.keys, TokenKind::Revocations))\n"
          "        .or_else(|_| jit_grant::verify(token, inp.keys, TokenKind::Attestation))\n"
          "        .map_err(grant_refusal)?;\n")],
        [f"{A}::test_revocation_list_token_is_not_a_grant",
         f"{R}::test_wrong_implicit_assertion"]),
    Defence(
        "sealed grants: only for rules with sealed_validity, within it", "crates/jit-policy/src/decide.rs",
        [("    match rule.sealed_validity {\n        None => Some(format!(",
          "    match rule.sealed_validity.or(Some(Duration::MAX)) {\n        None => Some(format!(")],
        [f"{SEALED}::test_a_rule_without_sealed_validity_refuses_sealed_grants"]),
    Defence(
        "sealed grants: a single-use break-glass grant (claim consistency)", "crates/jit-grant/src/claims.rs",
        [("        if self.sealed && !(self.break_glass && self.max_uses == Some(1)) {\n",
          "        if false {\n")],
        [f"{SEALED}::test_a_sealed_claim_without_single_use_break_glass_is_refused"]),
    Defence(
        "sealed grants: the command ends after the rule's max_duration", "crates/jit-grant/src/claims.rs",
        [("        if !self.sealed {\n            return self.exp;\n        }\n",
          "        if true {\n            return self.exp;\n        }\n")],
        [f"{SEALED}::test_the_command_of_a_sealed_grant_ends_after_max_duration"]),
    Defence(
        "TIOCSTI/TIOCLINUX seccomp filter (doas CVE-2023-28339)", f"{SRC}/exec/elevate.rs",
        [("    step(\n"
          "        \"installing the TIOCSTI filter\",\n"
          "        seccomp::deny_terminal_injection(),\n"
          "    )?;\n", "")],
        [f"{A}::test_command_cannot_inject_keystrokes_into_the_callers_terminal"]),
    Defence(
        "PAM: a rule with authenticate = true authenticates", f"{SRC}/pipeline.rs",
        [("    let pam_session = if approved.rule.authenticate {\n",
          "    let pam_session = if false {\n")],
        [f"{P}::test_pam_deny_refuses_and_runs_nothing",
         f"{R}::test_rule_asking_for_authentication_never_runs_unauthenticated"]),
    Defence(
        "PAM: account checks (pam_acct_mgmt)", f"{SRC}/authenticate/mod.rs",
        [("    if let Err(e) = pam.account() {\n", "    if let Err(e) = Ok::<(), PamError>(()) {\n")],
        [f"{P}::test_expired_account_is_refused_by_the_account_check"]),
    Defence(
        "caller's resource limits cannot kill jitrun (FSIZE, CPU)", f"{SRC}/harden.rs",
        [("        } else {\n            hard\n        };\n",
          "        } else {\n            soft\n        };\n"),
         ("    signals::ignore(libc::SIGXFSZ);\n    signals::ignore(libc::SIGXCPU);\n", "")],
        [f"{RR}::test_caller_cpu_limit_cannot_kill_the_supervisor",
         f"{G}::test_tiny_file_size_limit_cannot_reset_the_use_counter"],
        note="raising the soft limits and ignoring SIGXFSZ/SIGXCPU cover for each other, so both go; "
             "RLIMIT_NOFILE is lifted too but jitrun works within 9 descriptors: "
             "test_tiny_nofile_limit_cannot_disable_containment passes without it"),
    # ---- issue 12: what the caller controls around a run she is allowed to make
    Defence(
        "jitrun's supervisor and watchdog in a root-owned cgroup (not the caller's)", f"{SRC}/front.rs",
        [("    let born = unsafe { process::fork_into_cgroup(leaf.as_fd()) }?;\n",
          "    let born = unsafe { process::fork() }?;\n")],
        [f"{A}::test_a_delegated_cgroup_cannot_kill_the_supervisor_and_watchdog"]),
    Defence(
        "a run that lost supervisor and watchdog is ended and logged by the next jitrun", f"{SRC}/main.rs",
        [("    stale_runs::sweep(&auditor, &auditor.session_id);\n", "")],
        [f"{A}::test_a_run_whose_supervisor_and_watchdog_died_is_ended_and_logged_by_the_next_jitrun"]),
    Defence(
        "caller's scheduling attributes reset (timer slack, nice, policy, affinity, I/O priority, OOM score)",
        f"{SRC}/harden.rs",
        [("    let inherited = inherited::reset()?;\n", "    let inherited = Inherited::default();\n")],
        [f"{A}::test_the_callers_timer_slack_does_not_delay_the_end_of_a_grant",
         f"{A}::test_inherited_process_attributes_are_reset_for_jitrun_and_given_back_to_the_command",
         f"{A}::test_a_raised_oom_score_adj_is_reset_for_jitrun"]),
    Defence(
        "caller's interval timers and personality reset", f"{SRC}/harden.rs",
        [("    inherited::reset_early()?;\n", "")],
        [f"{A}::test_inherited_process_attributes_are_reset_for_jitrun_and_given_back_to_the_command"]),
    Defence(
        "no run in a user namespace where the setuid bit did not take effect", f"{SRC}/harden.rs",
        [("    require_setuid_took_effect()?;\n", "")],
        [f"{A}::test_a_user_namespace_cannot_feed_jitrun_a_fake_configuration"],
        note="the kernel already withholds every privilege there (the setuid bit of a file whose owner "
             "the namespace does not map is ignored) and the trusted-file walk refuses / owned by the "
             "overflow uid; the defence makes it one clear refusal, and the test's message check is what sees "
             "it removed"),
    Defence(
        "the command's argv[0] is the path the rule matched", f"{SRC}/pipeline.rs",
        [("std::iter::once(approved.matched.as_os_str())", "std::iter::once(run.args.command[0].as_os_str())")],
        [f"{A}::test_argv0_is_the_path_the_rule_matched_so_pgrep_cannot_act_as_pkill",
         f"{A}::test_argv0_of_a_multicall_busybox_is_the_matched_path"]),
    Defence(
        "an elevated command is not steered by its caller's files (HOME, Python user site)", f"{SRC}/env.rs",
        [("        Privilege::Elevated { as_caller: true } => NO_HOME.as_bytes(),\n", ""),
         ("    if elevated {\n        // No user site-packages", "    if false {\n        // No user site-packages")],
        [f"{A}::test_a_capable_command_does_not_run_the_callers_python_user_site"],
        note="a HOME she cannot write and PYTHONNOUSERSITE each keep the .pth file out, so both go; the list "
             "of variables never passed to an elevated command is checked by env.rs's unit tests"),
    Defence(
        "an elevated command leaves no core dump (RLIMIT_CORE 1 byte)", f"{SRC}/exec/elevate.rs",
        [("    if plan.elevated {\n", "    if false {\n")],
        [f"{A}::test_a_capable_command_leaves_no_core_dump"]),
    Defence(
        "the audit spool's lock is never waited for", f"{SRC}/audit.rs",
        [("                    .try_flush(sink)\n", "                    .flush(sink)\n                    .map(Some)\n")],
        [f"{A}::test_a_held_audit_spool_lock_does_not_stop_other_users_runs"]),
    Defence(
        "the caller cannot stop her own jitrun (real uid 0, job-control signals blocked)", f"{SRC}/main.rs",
        [("    if let Err(r) = harden::become_unsignalable() {\n", "    if let Err(r) = Ok::<(), Refusal>(()) {\n")],
        [f"{A}::test_the_caller_cannot_stop_her_own_jitrun_before_it_starts_the_command"]),
    Defence(
        "the command is opened only after the policy allowed the run", f"{SRC}/pipeline.rs",
        [("    *executable = Some(located.canonical.clone());\n",
          "    *executable = Some(located.canonical.clone());\n    let _opened = command::open(&located)?;\n")],
        [f"{A}::test_a_fifo_named_as_the_command_is_never_opened_as_root"]),
    Defence(
        "the command is checked through O_PATH before it is opened", f"{SRC}/command.rs",
        [("fs::openat(dirfd.as_fd(), &c, libc::O_PATH | libc::O_NOFOLLOW, 0)",
          "fs::openat(dirfd.as_fd(), &c, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0)")],
        [f"{A}::test_a_fifo_named_as_the_command_is_never_opened_as_root"]),
    Defence(
        "the watchdog ends leftovers when the command exits (pidfd)", f"{SRC}/exec/mod.rs",
        [("    let command_exit = process::pidfd_open(child).ok();\n",
          "    let command_exit: Option<std::os::fd::OwnedFd> = None;\n")],
        [f"{A}::test_leftovers_end_when_the_command_exits_while_the_supervisor_is_stopped",
         f"{A}::test_without_cgroups_the_watchdog_ends_the_supervisors_adopted_orphans"]),
    Defence(
        "without cgroups, orphans are the supervisor's children (also from the watchdog)", f"{SRC}/exec/terminate.rs",
        [("                == Some(supervisor)\n", "                == Some(process::getpid())\n")],
        [f"{A}::test_without_cgroups_the_watchdog_ends_the_supervisors_adopted_orphans"]),
    Defence(
        "a cgroup v2 mount hidden by another mount is not used", f"{SRC}/system/cgroup.rs",
        [("                if is_cgroup2(&c) {\n", "                if !c.is_empty() {\n")],
        [f"{A}::test_without_cgroups_the_watchdog_ends_the_supervisors_adopted_orphans"]),
    Defence(
        "settings readable with one free descriptor", f"{SRC}/trusted_files.rs",
        [("        Err(r) if r.code == \"resource_limit\" => return read_by_path(path, max, secret),\n", ""),
         ("        Err(e) if out_of_descriptors(&e) => {\n            drop(dirfd);\n"
          "            return read_by_path(path, max, secret);\n        }\n", "")],
        [f"{A}::test_runs_under_a_tiny_open_files_limit_are_refused_or_run_but_always_logged[4:4]"],
        note="with a limit of 5 the walk has the two descriptors it needs for the settings: only 4:4 sees it"),
    Defence(
        "an audit event needs no descriptor beyond the syslog socket", f"{SRC}/audit.rs",
        [("                    Err(e) if out_of_descriptors(&e) => return true,\n", ""),
         ("            Err(r) if r.code == \"resource_limit\" => return true,\n", "")],
        [f"{A}::test_runs_under_a_tiny_open_files_limit_are_refused_or_run_but_always_logged"]),
    Defence(
        "hard RLIMIT_AS / DATA / STACK below jitrun's floor raised or refused", f"{SRC}/harden.rs",
        [("    for &(res, floor, what, undo) in FLOORS {\n", "    for &(res, floor, what, undo) in &FLOORS[..0] {\n")],
        [],
        untestable="a caller's tiny RLIMIT_AS, RLIMIT_DATA or RLIMIT_STACK makes jitrun fail while it starts "
                   "(its own run, nothing started yet); no test can size one so that only the running supervisor or "
                   "watchdog runs out later. The floor turns such a limit into a clear refusal at start"),
    Defence(
        "audit datagrams name the sender's effective uid (SCM_CREDENTIALS)", "crates/jit-audit/src/sink.rs",
        [("            match self.send_once(datagram) {\n", "            match self.socket.send(datagram) {\n")],
        [f"{FORGED}[docs-cee]", f"{FORGED}[cee-dropin-cee]",
         f"{S}::test_forged_events_through_journald_are_caught_by_the_credentials_it_forwards",
         "tests/e2e/test_rsyslog_roundtrip.py::test_jitrun_events_through_rsyslog"],
        note="without it a setuid jitrun's refusals reach syslog under the caller's real uid: the sender "
             "check puts them with the forgeries"),
    Defence(
        "rsyslog (docs/audit.md): jitrun events only from uid 0, jitbroker's only from its uid", "docs/audit.md",
        [(SENDER_CHECK, "    if 0 == 1 then {\n")],
        [f"{FORGED}[docs-cee]", f"{FORGED}[docs-rfc5424]"]),
    Defence(
        "rsyslog cee drop-in: jitrun events only from uid 0, jitbroker's only from its uid",
        "packaging/siem/rsyslog/60-jitrun-cee.conf",
        [(SENDER_CHECK, "    if 0 == 1 then {\n")],
        [f"{FORGED}[cee-dropin-cee]", f"{S}::test_forged_events_through_journald_are_caught_by_the_credentials_it_forwards"]),
    Defence(
        "rsyslog rfc5424 drop-in: jitrun events only from uid 0, jitbroker's only from its uid",
        "packaging/siem/rsyslog/60-jitrun-rfc5424.conf",
        [(SENDER_CHECK, "    if 0 == 1 then {\n")],
        [f"{FORGED}[rfc5424-dropin-rfc5424]"]),
    # ---- jitbroker's web pages (issue 20)
    Defence(
        "web: every form carries the session's CSRF token", f"{WSRC}/mod.rs",
        [("            .is_some_and(|t| session::same_secret(t, &signed.session.csrf));\n",
          "            .is_some_and(|_| true)\n            || true;\n")],
        [f"{BW}::test_forms_need_the_session_csrf_token_and_the_broker_origin"], package="jit-broker"),
    Defence(
        "web: forms only from the broker's own pages (Origin)", f"{WSRC}/mod.rs",
        [("        if let Some(origin) = parts.headers.get(header::ORIGIN) {\n",
          "        if let Some(origin) = None::<&HeaderValue> {\n")],
        [f"{BW}::test_forms_need_the_session_csrf_token_and_the_broker_origin"], package="jit-broker"),
    Defence(
        "web: a sign-in's state is bound to the browser that started it", f"{WSRC}/pages.rs",
        [("    if !bound.is_some_and(|b| session::same_secret(&b, &state)) {\n", "    if false {\n")],
        [f"{BW}::test_sign_in_refusals"], package="jit-broker"),
    Defence(
        "web: a sign-in's state is used once (taken from the store)", f"{BSRC}/store/sqlite.rs",
        [("\"DELETE FROM web_logins WHERE state_sha256 = ?1 RETURNING state_sha256, nonce, pkce_verifier, return_to, expires\"",
          "\"SELECT state_sha256, nonce, pkce_verifier, return_to, expires FROM web_logins WHERE state_sha256 = ?1\"")],
        [f"{BW}::test_sign_in_refusals[sqlite]"], package="jit-broker"),
    Defence(
        "web: a sign-in's state is taken once, whichever PostgreSQL replica the browser comes back to",
        f"{BSRC}/store/postgres.rs",
        [("\"DELETE FROM web_logins WHERE state_sha256 = $1 RETURNING state_sha256, nonce, pkce_verifier, return_to, expires\"",
          "\"SELECT state_sha256, nonce, pkce_verifier, return_to, expires FROM web_logins WHERE state_sha256 = $1\"")],
        [f"{BW}::test_a_callback_reaching_both_replicas_at_once_signs_in_once[postgres]",
         f"{BW}::test_sign_in_refusals[postgres]"], package="jit-broker"),
    Defence(
        "web: sessions end when idle", f"{WSRC}/session.rs",
        [("        } else if now - s.last_seen >= web.session_idle {\n", "        } else if false {\n")],
        [f"{BW}::test_sessions_end_at_sign_out_by_an_admin_and_when_idle"], package="jit-broker"),
    Defence(
        "web: sign-out ends the session in the store", f"{WSRC}/session.rs",
        [("        if !tx.end_web_session(&s.id, now, why)? {\n", "        if false {\n")],
        [f"{BW}::test_sessions_end_at_sign_out_by_an_admin_and_when_idle"], package="jit-broker"),
    Defence(
        "web: frames and inline script refused (X-Frame-Options, CSP)", f"{WSRC}/mod.rs",
        [("    set(h, \"x-frame-options\", \"DENY\");\n", "")],
        [f"{BW}::test_pages_carry_security_headers_and_cookies_their_attributes"], package="jit-broker"),
    Defence(
        "web: what people wrote is escaped (askama, no |safe)", "crates/jit-broker/templates/_request.html",
        [('<dd class="reason">{{ r.reason }}</dd>', '<dd class="reason">{{ r.reason|safe }}</dd>')],
        [f"{BW}::test_user_text_is_escaped_on_every_page"], package="jit-broker"),
    # ---- jitbroker (issue 14): the broker under attack and under faults
    Defence(
        "broker: stalled connections closed (header and idle timeouts)", f"{BSRC}/serve.rs",
        [("        stalled = activity.watchdog(http.header_timeout, http.idle_timeout) => {\n",
          "        stalled = std::future::pending::<Stalled>() => {\n")],
        [f"{BC}::test_stalled_connections_are_closed_while_requests_are_answered",
         f"{BC}::test_at_the_connection_limit_the_broker_stops_accepting"], package="jit-broker"),
    Defence(
        "broker: connection limit (stops accepting at the limit)", f"{BSRC}/serve.rs",
        [("        let slots = Arc::new(Semaphore::new(limit));\n",
          "        let slots = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));\n")],
        [f"{BC}::test_at_the_connection_limit_the_broker_stops_accepting"], package="jit-broker"),
    Defence(
        "broker: open-file soft limit raised to the hard one", f"{BSRC}/limits.rs",
        [("    if soft < hard {\n", "    if false {\n")],
        [f"{BC}::test_stalled_connections_are_closed_while_requests_are_answered"], package="jit-broker"),
    Defence(
        "broker: a request body must arrive within header_timeout (408)", f"{BSRC}/api.rs",
        [("        let wait = b.config.http.header_timeout;\n",
          "        let wait = std::time::Duration::from_secs(3600);\n")],
        [f"{BC}::test_a_body_that_does_not_arrive_is_answered_408"], package="jit-broker"),
    Defence(
        "broker: syslog never sent from a request", f"{BSRC}/broker.rs",
        [("        self.syslog.queue(events);\n",
          "        for p in &events {\n"
          "            if let Ok(s) = jit_audit::SyslogSink::connect(&self.config.audit.socket) {\n"
          "                let _ = s.send(&p.datagram);\n"
          "            }\n"
          "        }\n"
          "        self.syslog.queue(events);\n")],
        [f"{BS}::test_requests_are_answered_and_events_arrive_once_in_order_when_syslog_reads_again"],
        package="jit-broker"),
    Defence(
        "broker: unsent syslog events kept and retried in order", f"{BSRC}/syslog_sender.rs",
        [("                    self.ready.insert(id, datagram);\n", "                    self.next = id + 1;\n")],
        [f"{BS}::test_requests_are_answered_and_events_arrive_once_in_order_when_syslog_reads_again",
         f"{BS}::test_events_waiting_for_syslog_survive_a_sigkill"], package="jit-broker"),
    Defence(
        "broker: requested host patterns within the workflow's (glob_within)", f"{BSRC}/workflow.rs",
        [(".any(|w| jit_policy::glob::glob_within(requested.as_bytes(), w.as_bytes()))",
          ".any(|w| jit_policy::glob::glob_match(w.as_bytes(), requested.as_bytes()))")],
        [f"{BH}::test_requested_host_patterns_must_be_within_the_workflow"], package="jit-broker"),
    Defence(
        "broker: nothing written before an enrollment token is checked", f"{BSRC}/api.rs",
        [("            let verified = verify(&b2, &call, Some((&key, &h.name)), now)?;\n",
          "            let verified = verify(&b2, &call, Some((&key, &h.name)), now)?;\n"
          "            crate::store::bookkeeping(b2.store.as_ref(), |tx| verified.remember(tx))?;\n")],
        [f"{BH}::test_a_bogus_enrollment_token_writes_nothing"], package="jit-broker"),
    Defence(
        "broker: bodies must be declared JSON (415)", f"{BSRC}/api.rs",
        [("        Some(\"application/json\") => Ok(()),\n", "        _ => Ok(()),\n")],
        [f"{BH}::test_bodies_that_are_not_declared_json_get_415"], package="jit-broker"),
    Defence(
        "broker: invisible characters refused in free text", f"{BSRC}/text.rs",
        [("    refuse_invisible(field, value)\n}\n", "    Ok(())\n}\n")],
        [f"{BH}::test_invisible_characters_are_refused_in_every_free_text"], package="jit-broker"),
    Defence(
        "broker: user text quoted in chat messages", f"{BSRC}/workflow.rs",
        [("        quoted(&r.reason),\n        r.ticket", "        r.reason.clone(),\n        r.ticket")],
        [f"{BH}::test_chat_messages_cannot_be_forged_by_user_text"], package="jit-broker"),
    Defence(
        "broker: approver and admin roles only from approver_hosts", f"{BSRC}/config.rs",
        [("    patterns.is_empty()\n        || patterns", "    true\n        || patterns")],
        [f"{BH}::test_approvals_and_admin_actions_count_only_from_approver_hosts"], package="jit-broker"),
    Defence(
        "broker: /readyz exercises the store", f"{BSRC}/api.rs",
        [("        let result = b2.store.ready(now()).map_err(|e| e.to_string());\n",
          "        let result: Result<(), String> = Ok(());\n")],
        [f"{BF}::test_readyz_follows_the_store_while_healthz_stays_up"], package="jit-broker"),
    Defence(
        "broker: grant-issuing commits durable (synchronous=FULL)", f"{BSRC}/store/sqlite.rs",
        [("        let full = durability == Durability::Durable;\n", "        let full = false;\n")],
        [f"{BF}::test_a_grant_is_on_disk_before_it_is_answered[sqlite]"], package="jit-broker"),
    Defence(
        "broker: revocation by id without the grant's row", f"{BSRC}/grants.rs",
        [("        let Some(g) = tx.get_grant(id)? else {\n",
          "        let Some(g) = tx.get_grant(id)? else {\n"
          "            return Err(ApiError::not_found(format!(\"no grant {id}\")));\n"
          "            #[allow(unreachable_code)]\n")],
        [f"{BF}::test_revoking_by_id_works_without_the_grants_row"], package="jit-broker"),
    Defence(
        "broker: held revocation watches are capped (http.max_watches)", f"{BSRC}/watch.rs",
        [("        let slot = self\n            .slots\n            .clone()\n            .try_acquire_owned()\n",
          "        let slot = Arc::new(Semaphore::new(1))\n            .try_acquire_owned()\n")],
        [f"{BWATCH}::test_held_watches_are_capped_and_other_calls_go_on"], package="jit-broker"),
    Defence(
        "broker: one host's callers hold at most http.max_watches_per_host watches", f"{BSRC}/watch.rs",
        [("        if by_host.get(host).copied().unwrap_or(0) >= self.per_host {\n", "        if false {\n")],
        [f"{BWATCH}::test_one_host_cannot_take_every_watch"], package="jit-broker"),
    Defence(
        "broker: watchers follow the store's seq, not only this process's revocations", f"{BSRC}/watch.rs",
        [("        let _ = tokio::time::timeout(RECHECK, watches.poke.notified()).await;\n",
          "        watches.poke.notified().await;\n")],
        [f"{BWATCH}::test_without_notifications_a_replica_still_wakes_its_watchers_at_its_look[postgres]"],
        package="jit-broker"),
    Defence(
        "broker (PostgreSQL): every replica hears of a new revocation list at once (NOTIFY)",
        f"{BSRC}/store/postgres.rs",
        [("            &format!(\"SELECT pg_notify('{REVOCATIONS_CHANNEL}', $1)\"),\n",
          "            \"SELECT $1::TEXT\",\n")],
        [f"{BWATCH}::test_a_replica_wakes_its_watchers_for_a_revocation_made_on_another[postgres]"],
        package="jit-broker"),
    Defence(
        "broker: uses of sealed grants are reported by root on the grant's own hosts", f"{BSRC}/sealed.rs",
        [("    if c.uid() != Some(0) {\n", "    if false {\n"),
         ("            if !for_host || !tx.record_sealed_use(", "            if !tx.record_sealed_use(")],
        [f"{BSEAL}::test_a_host_reports_its_own_uses_once"], package="jit-broker"),
    Defence(
        "broker: revoked sealed grants are on the revocation list", f"{BSRC}/revocation_list.rs",
        [("    revoked.extend(tx.revoked_sealed(now)?.into_iter().map(|g| Revoked {\n",
          "    revoked.extend(tx.revoked_sealed(now)?.into_iter().take(0).map(|g| Revoked {\n")],
        [f"{BSEAL}::test_a_revoked_sealed_grant_stays_on_the_list_for_its_validity"], package="jit-broker"),
    Defence(
        "broker: store errors name cause and fix", f"{BSRC}/store/sqlite.rs",
        [("    let hint = diagnose::hint(path, &source)\n", "    let hint = None::<String>\n")],
        [f"{BF}::test_store_errors_name_the_cause_and_the_fix"], package="jit-broker"),
    # ---- session recording and the pty relay (issue 18)
    Defence(
        "a rule that records never runs unrecorded: a recording that cannot start refuses the run",
        f"{SRC}/pipeline.rs",
        [("    launch.io.recording = record(run, &approved, &target, &launch, &send)?;\n",
          "    launch.io.recording = record(run, &approved, &target, &launch, &send).unwrap_or(None);\n")],
        [f"{SR}::test_a_rule_that_records_and_cannot_does_not_run",
         f"{SR}::test_a_full_disk_at_the_start_refuses_the_run"]),
    Defence(
        "recordings only in a directory that is root's alone (0700)", f"{SRC}/recording.rs",
        [("    if st.mode & 0o077 != 0 {\n        return Err(format!(\n            \"{dir} is mode",
          "    if false {\n        return Err(format!(\n            \"{dir} is mode")],
        [f"{SR}::test_a_rule_that_records_and_cannot_does_not_run[group-readable]"]),
    Defence(
        "a recording is root's alone (mode 0600)", f"{SRC}/recording.rs",
        [("    let fd = fs::openat(dir.as_fd(), &c, flags, 0o600)\n",
          "    let fd = fs::openat(dir.as_fd(), &c, flags, 0o644)\n"),
         ("    if !st.is_file() || st.uid != 0 || st.nlink != 1 || st.mode & 0o077 != 0 {\n",
          "    if !st.is_file() || st.uid != 0 || st.nlink != 1 {\n")],
        [f"{SR}::test_a_recorded_run_writes_a_root_only_file_that_its_events_name"]),
    Defence(
        "a recording is a new file, never an existing one or a link (O_EXCL, O_NOFOLLOW)", f"{SRC}/recording.rs",
        [("    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;\n",
          "    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;\n")],
        [],
        untestable="the file's name is the run's fresh 128-bit random session id, in a directory only root "
                   "may write (checked, with every directory above it, by the trusted walk): nobody but root "
                   "can put a file or a link there first. A second line behind the directory check"),
    Defence(
        "a recording that fails while the command runs ends it (record.on_failure = end)", f"{SRC}/recording.rs",
        [("        if self.failure.is_some() && self.on_failure == OnFailure::End {\n", "        if false {\n")],
        [f"{SR}::test_a_full_disk_during_the_run[end]"]),
    Defence(
        "a recording at its cap ends the command (record.on_max_bytes = end)", f"{SRC}/recording.rs",
        [("        if step.limit_reached && self.on_limit == OnMaxBytes::End {\n", "        if false {\n")],
        [f"{SR}::test_the_size_cap_ends_or_truncates_and_says_so[end]"]),
    Defence(
        "a command run as another user gets a pty of jitrun's, never the caller's terminal (use_pty)",
        f"{SRC}/pipeline.rs",
        [("            isolate: run.settings.use_pty && target.uid != run.invoker.uid,\n",
          "            isolate: false,\n")],
        [f"{ST}::test_a_command_run_as_another_user_cannot_reach_the_callers_terminal"]),
    Defence(
        "the session's pty is root's alone (0600), not the tty group's", f"{SRC}/system/pty.rs",
        [("    let root = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));\n"
          "    nix::unistd::fchown(&slave, Some(root.0), Some(root.1))?;\n"
          "    super::fs::fchmod(slave.as_fd(), 0o600)?;\n",
          "    nix::unistd::fchown(&slave, None, Some(nix::unistd::Gid::from_raw(5)))?;\n"
          "    super::fs::fchmod(slave.as_fd(), 0o620)?;\n")],
        [f"{ST}::test_the_session_terminal_is_roots_alone"]),
    Defence(
        "the caller's terminal is put back as it was (exit, expiry, revocation)", f"{SRC}/exec/relay.rs",
        [("        if let (Some(saved), true) = (&self.saved, self.raw) {\n"
          "            let _ = pty::set_mode(self.fd, saved);\n            self.raw = false;\n        }\n",
          "")],
        [f"{ST}::test_the_terminal_is_restored_however_the_run_ends[exit]",
         f"{ST}::test_the_terminal_is_restored_however_the_run_ends[expiry]",
         f"{ST}::test_the_terminal_is_restored_however_the_run_ends[revocation]"]),
    Defence(
        "the watchdog puts the caller's terminal back when the supervisor vanishes", f"{SRC}/exec/watchdog.rs",
        [("    if let Some(t) = guard.terminal {\n        t.restore();\n    }\n", "")],
        [f"{ST}::test_the_terminal_is_restored_however_the_run_ends[supervisor-killed]"]),
    Defence(
        "a stopped pty monitor is continued, never taken for the job's stop", f"{SRC}/exec/supervise.rs",
        [("            Some(WaitStatus::Stopped(sig)) if held.waited == child => {\n",
          "            Some(WaitStatus::Stopped(sig)) if true => {\n")],
        [f"{ST}::test_a_root_command_that_stops_its_monitor_does_not_stop_the_callers_job"]),
    Defence(
        "the pty monitor dies with the supervisor (PR_SET_PDEATHSIG)", f"{SRC}/exec/monitor.rs",
        [("    if process::die_with_parent(supervisor).is_err() {\n        process::exit_now(1);\n    }\n", "")],
        [f"{ST}::test_a_pty_run_whose_supervisor_and_watchdog_died_is_ended_by_the_next_jitrun"]),
    Defence(
        "the watchdog holds none of the relay's descriptors (the command sees the end of its input)",
        f"{SRC}/exec/mod.rs",
        [("    unneeded.extend(relay.as_ref().map(Relay::descriptors).unwrap_or_default());\n", "")],
        [f"{SR}::test_record_input_records_what_reaches_the_command"]),
    Defence(
        "policy snapshot used only when its key is the policy files' (currency check)",
        f"{SRC}/policy_cache.rs",
        [("    let snap = Snapshot::open(&prefix, key, size).ok()?;\n",
          "    let snap = Snapshot::open(&prefix, &prefix[HEADER_LEN..HEADER_LEN + key_len], size).ok()?;\n")],
        [f"{PC}::test_a_compiled_snapshot_is_not_used_once_a_policy_file_changes",
         f"{PC}::test_a_same_size_edit_that_only_changes_ctime_is_seen",
         f"{PC}::test_an_untrusted_or_damaged_snapshot_is_ignored_and_rebuilt[stale-key]"]),
    Defence(
        "jitctl policy compile: a snapshot only from files 2 s old (no same-tick edit hides)",
        f"{CTL}/compile.rs",
        [("        if !left.is_zero() {\n", "        if false {\n")],
        [f"{PC}::test_jitctl_policy_compile_writes_the_snapshot_the_next_run_uses"], package="jitctl"),
    Defence(
        "a glob never matches an argument with a \"..\" component (cat /var/log/* is not /etc/shadow)",
        f"{POLICY}/pattern.rs",
        [("    if has_meta(pattern.as_bytes()) && has_dotdot(arg) {\n        return false;\n    }\n", "")],
        [f"{PS}::test_a_glob_never_matches_a_dotdot_path"]),
    Defence(
        "path: globs match within one path component, normalised paths only", f"{POLICY}/pattern.rs",
        [("        return path_glob_match(p.as_bytes(), arg);\n", "        return glob_match(p.as_bytes(), arg);\n")],
        [f"{PS}::test_a_path_glob_matches_only_the_entries_of_its_directory"]),
    Defence(
        "env_keep is an allow list; never-kept names refused in both lists at load", f"{POLICY}/rule.rs",
        [("            } else if env_never_kept(v) {\n", "            } else if false {\n"),
         ("            } else if safe_only && !env_known_safe(v) {\n", "            } else if false {\n")],
        [f"{PS}::test_env_keep_names_outside_the_allow_list_refuse_the_policy"]),
    # ---- jitbroker on PostgreSQL (issue 19): what must happen once, decided in the database
    Defence(
        "broker (PostgreSQL): durable answers wait for the disk (commit barrier)", f"{BSRC}/store/postgres.rs",
        [("        let barrier = self.barrier;\n", "        let barrier = false;\n")],
        [f"{BF}::test_a_grant_is_on_disk_before_it_is_answered[postgres]"], package="jit-broker"),
    Defence(
        "broker (PostgreSQL): rows read in write transactions locked (FOR UPDATE)", f"{BSRC}/store/postgres.rs",
        [("            \" FOR UPDATE\"\n        } else {", "            \"\"\n        } else {")],
        [f"{BR}::test_approvals_on_two_replicas_at_once_count_distinct_approvers[postgres]",
         f"{BR}::test_sealed_grants_used_and_revoked_on_two_replicas_at_once_count_once[postgres]"],
        package="jit-broker"),
    Defence(
        "broker (PostgreSQL): audit appends serialized (advisory lock on the chain head)", f"{BSRC}/store/postgres.rs",
        [("let mut pre = format!(\"SELECT pg_advisory_xact_lock({AUDIT_LOCK})\");",
          "let mut pre = format!(\"SELECT {AUDIT_LOCK}\");")],
        [f"{BR}::test_the_audit_chain_stays_one_chain_with_concurrent_writers[postgres]"], package="jit-broker"),
    Defence(
        "broker (PostgreSQL): one revocation list writer at a time (seq)", f"{BSRC}/store/postgres.rs",
        [("let pre = format!(\"SELECT pg_advisory_xact_lock({REVOCATIONS_LOCK})\");",
          "let pre = format!(\"SELECT {REVOCATIONS_LOCK}\");")],
        [f"{BR}::test_revocation_list_seq_strictly_increases_across_replicas[postgres]"], package="jit-broker"),
    Defence(
        "broker (PostgreSQL): a replayed attestation jti is refused (primary key)", f"{BSRC}/store/postgres.rs",
        [("ON CONFLICT (jti) DO NOTHING", "ON CONFLICT (jti) DO UPDATE SET exp = EXCLUDED.exp")],
        [f"{BR}::test_a_replayed_attestation_is_accepted_once_across_replicas[postgres]"], package="jit-broker"),
    Defence(
        "broker (PostgreSQL): a sealed grant's use on a host is recorded once (primary key)",
        f"{BSRC}/store/postgres.rs",
        [("ON CONFLICT (grant_id, host) DO NOTHING", "ON CONFLICT (grant_id, host) DO UPDATE SET reported = EXCLUDED.reported")],
        [f"{BR}::test_sealed_grants_used_and_revoked_on_two_replicas_at_once_count_once[postgres]"],
        package="jit-broker"),
    Defence(
        "broker: webhook deliveries claimed before they are sent (lease, SKIP LOCKED)", f"{BSRC}/store/postgres.rs",
        [("\"UPDATE outbox SET next_attempt_ms = $2 WHERE id IN (",
          "\"UPDATE outbox SET next_attempt_ms = next_attempt_ms + 0 * $2 WHERE id IN (")],
        [f"{BR}::test_each_webhook_is_delivered_once_by_the_replica_set[postgres]"], package="jit-broker"),
]


# ---- the scratch tree


def sync_tree(dest: Path) -> None:
    """Make dest hold the workspace sources (Cargo.toml, Cargo.lock, crates/, the OpenAPI
    document jit-broker includes). A file is written
    only when its content differs, and always with a fresh mtime (never an older one: cargo
    would take an older mtime for "unchanged" and keep a mutant's artifacts)."""
    wanted: dict[Path, Path] = {}
    # (jit-broker compiles docs/openapi.json in: it serves the document)
    for name in ("Cargo.toml", "Cargo.lock", "docs/openapi.json"):
        wanted[Path(name)] = REPO / name
    for p in (REPO / "crates").rglob("*"):
        if p.is_file() and "target" not in p.relative_to(REPO).parts:
            wanted[p.relative_to(REPO)] = p
    for rel, src in wanted.items():
        out = dest / rel
        data = src.read_bytes()
        if out.is_file() and out.read_bytes() == data:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    for p in sorted(dest.rglob("*"), reverse=True):
        rel = p.relative_to(dest)
        if p.is_file() and rel not in wanted:
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


def locate(text: str, snippet: str) -> tuple[int, int]:
    """(count, line number of the first occurrence)."""
    n = text.count(snippet)
    i = text.find(snippet)
    return n, (text[:i].count("\n") + 1 if i >= 0 else 0)


def check_snippets(defences: list[Defence]) -> list[str]:
    problems = []
    for d in defences:
        if not (REPO / d.file).is_file():
            problems.append(f"{d.name}: {d.file} does not exist")
            continue
        text = (REPO / d.file).read_text()
        for old, _ in d.edits:
            n, _ = locate(text, old)
            if n != 1:
                problems.append(f"{d.name}: snippet found {n} times in {d.file} (must be exactly once):\n{old}")
    return problems


FN = re.compile(r'^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+"C"\s+)?fn\s+(\w+)')
IMPL = re.compile(r"^(\s*)impl\b(?:<[^>]*>)?\s+(?:[\w:<>', ]+\s+for\s+)?(\w+)")


def enclosing(text: str, line: int) -> str | None:
    """The Rust function (`Type::method` inside an impl) that holds 1-based line `line`: the
    nearest `fn` above it that is indented less; None outside any function (or not Rust)."""
    lines = text.split("\n")
    here = lines[line - 1]
    indent = len(here) - len(here.lstrip())
    for i in range(line - 1, -1, -1):
        m = FN.match(lines[i])
        if m and len(m.group(1)) < indent:
            for j in range(i - 1, -1, -1):
                owner = IMPL.match(lines[j])
                if owner and len(owner.group(1)) < len(m.group(1)):
                    return f"{owner.group(2)}::{m.group(2)}"
                if lines[j].strip() and not lines[j].startswith((" ", "\t", "}", "#", "/")) and not owner:
                    break  # a top-level item that is not an impl: a free function
            return m.group(2)
    return None


def where(d: Defence) -> str:
    """The file and the functions that hold the snippets (names, not line numbers: they stay
    true while the code around them moves)."""
    text = (REPO / d.file).read_text()
    names = []
    for old, _ in d.edits:
        name = enclosing(text, locate(text, old)[1]) if d.file.endswith(".rs") else None
        if name and name not in names:
            names.append(name)
    return d.file.removeprefix("crates/") + (f" ({', '.join(names)})" if names else "")


# ---- building


def cargo_build(tree: Path, target: Path, packages: list[str], log: Path) -> bool:
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    cmd = [os.environ.get("CARGO", "cargo"), "build", "--quiet"]
    for p in packages:
        cmd += ["-p", p]
    with open(log, "wb") as f:
        p = subprocess.run(cmd, cwd=tree, env=env, stdout=f, stderr=subprocess.STDOUT)
    return p.returncode == 0


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ---- running tests


@dataclasses.dataclass
class Outcome:
    node: str
    result: str  # passed, failed, error, skipped
    message: str = ""


def run_tests(nodes: list[str], bins: dict[str, Path], junit: Path, log: Path) -> tuple[int, list[Outcome]]:
    env = dict(os.environ, JITRUN_BIN=str(bins["jitrun"]), JITCTL_BIN=str(bins["jitctl"]),
               JITBROKER=str(bins["jitbroker"]), JITBROKER_BIN=str(bins["jitbroker"]))
    env.pop("CARGO_TARGET_DIR", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *nodes]
    with open(log, "wb") as f:
        p = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    outcomes = []
    if junit.exists():
        for tc in ET.parse(junit).getroot().iter("testcase"):
            file = tc.get("classname", "").replace(".", "/") + ".py"
            node = f"{file}::{tc.get('name')}"
            kids = {c.tag: c for c in tc}
            if "failure" in kids:
                outcomes.append(Outcome(node, "failed", kids["failure"].get("message", "")))
            elif "error" in kids:
                outcomes.append(Outcome(node, "error", kids["error"].get("message", "")))
            elif "skipped" in kids:
                outcomes.append(Outcome(node, "skipped", kids["skipped"].get("message", "")))
            else:
                outcomes.append(Outcome(node, "passed"))
    return p.returncode, outcomes


def run_config_defence(d: Defence, i: int, bins: dict[str, Path], logs: Path) -> tuple[int, list[Outcome]]:
    """Make the edit to the repository's own file, run the tests against the unmodified build,
    put the file back whatever happens."""
    slug = f"{i:02d}"
    print(f"== [{slug}] {d.name}: {d.file} without it", flush=True)
    path = REPO / d.file
    original = path.read_bytes()
    text = original.decode()
    for old, new in d.edits:
        text = text.replace(old, new, 1)
    try:
        path.write_text(text)
        return run_tests(d.tests, bins, logs / f"{slug}.xml", logs / f"{slug}.log")
    finally:
        path.write_bytes(original)


def belongs(outcome: Outcome, node: str) -> bool:
    return outcome.node == node or outcome.node.startswith(node + "[")


def short(msg: str, n: int = 110) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= n else msg[: n - 1] + "…"


# ---- main


@dataclasses.dataclass
class Row:
    defence: Defence
    where: str
    result: str
    detail: list[str]
    ok: bool | None  # None: not testable end to end (see Defence.untestable)


def verdict(d: Defence, rc: int, outcomes: list[Outcome]) -> tuple[str, list[str], bool]:
    detail, ok = [], True
    for node in d.tests:
        mine = [o for o in outcomes if belongs(o, node)]
        if not mine:
            detail.append(f"{node}: NOT COLLECTED (pytest exit {rc})")
            ok = False
        for o in mine:
            if o.result == "failed":
                detail.append(f"{o.node}: failed: {short(o.message)}")
            else:
                detail.append(f"{o.node}: {o.result.upper()} {short(o.message)}".rstrip())
                ok = False
    n = sum(1 for o in outcomes if any(belongs(o, t) for t in d.tests))
    failed = sum(1 for o in outcomes if any(belongs(o, t) for t in d.tests) and o.result == "failed")
    return (f"detected: {failed}/{n} tests fail" if ok else f"NOT DETECTED: {failed}/{n} tests fail"), detail, ok


def markdown(rows: list[Row], started: datetime.datetime, seconds: float, command: str) -> str:
    testable = [r for r in rows if r.ok is not None]
    out = [f"Run on {started:%Y-%m-%d %H:%M} UTC with `{command}` ({seconds / 60:.0f} min): "
           f"{sum(r.ok is True for r in testable)} of {len(testable)} testable defences detected, "
           f"{len(rows) - len(testable)} not testable end to end (notes below the table).", "",
           "| # | defence | removed at | tests that must fail | result |", "|---|---|---|---|---|"]
    notes = []
    for i, r in enumerate(rows, 1):
        tests = "<br>".join(f"`{t.removeprefix('tests/e2e/')}`" for t in r.defence.tests) or "—"
        res = r.result
        if r.ok is None:
            res = "not testable end to end"
        for text in (r.defence.untestable, r.defence.note):
            if text:
                notes.append(f"{len(notes) + 1}. **{r.defence.name}**: {text}.")
                res += f" (note {len(notes)})"
        out.append(f"| {i} | {r.defence.name} | `{r.where}` | {tests} | {res} |")
    return "\n".join(out + [""] + notes) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print the table and check the snippets; build nothing")
    ap.add_argument("--only", action="append", default=[], help="defences whose name contains this (repeatable)")
    ap.add_argument("--work", default=str(REPO / "target" / "defence-check"),
                    help="scratch tree, target dir, binaries and logs (default: target/defence-check)")
    ap.add_argument("--markdown", help="also write the result table as Markdown to this file")
    args = ap.parse_args()

    defences = [d for d in DEFENCES if not args.only or any(o.lower() in d.name.lower() for o in args.only)]
    if not defences:
        print("no defence matches --only", file=sys.stderr)
        return 2
    problems = check_snippets(defences)
    if problems:
        print("defence_check: the table does not match the sources:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    if args.list:
        for d in defences:
            print(f"{d.name}\n    {where(d)}\n" + "".join(f"    {t}\n" for t in d.tests or ["(no test)"]))
        print(f"{len(defences)} defences; every snippet found exactly once")
        return 0
    if os.geteuid() != 0:
        print("defence_check needs root (the end-to-end tests create users and install setuid binaries)",
              file=sys.stderr)
        return 2

    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    work = Path(args.work)
    tree, target, bins, logs = work / "src", work / "target", work / "bins", work / "logs"
    for d in (tree, target, bins, logs):
        d.mkdir(parents=True, exist_ok=True)
    print(f"== scratch tree {tree}, CARGO_TARGET_DIR {target}", flush=True)
    sync_tree(tree)
    if not cargo_build(tree, target, ["jitrun", "jitctl", "jit-broker"], logs / "build-baseline.log"):
        print((logs / "build-baseline.log").read_text()[-4000:], file=sys.stderr)
        print("defence_check: the unmodified tree does not build", file=sys.stderr)
        return 1
    base = bins / "baseline"
    base.mkdir(exist_ok=True)
    baseline = {b: base / b for b in ("jitrun", "jitctl", "jitbroker")}
    for b, path in baseline.items():
        shutil.copy2(target / "debug" / b, path)

    # the unmodified build must pass every listed test
    every = list(dict.fromkeys(t for d in defences for t in d.tests))
    print(f"== baseline: {len(every)} test ids against the unmodified build", flush=True)
    rc, outcomes = run_tests(every, baseline, logs / "baseline.xml", logs / "baseline.log")
    bad = [o for o in outcomes if o.result != "passed"]
    missing = [t for t in every if not any(belongs(o, t) for o in outcomes)]
    if bad or missing or rc != 0:
        for o in bad:
            print(f"  {o.node}: {o.result}: {short(o.message)}", file=sys.stderr)
        for t in missing:
            print(f"  {t}: not collected", file=sys.stderr)
        print(f"defence_check: the unmodified build must pass every listed test (pytest exit {rc}; "
              f"log {logs / 'baseline.log'})", file=sys.stderr)
        return 1
    print(f"   {len(outcomes)} passed", flush=True)

    rows: list[Row] = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    pending: list[tuple[Defence, str, concurrent.futures.Future | None, str]] = []
    for i, d in enumerate(defences):
        slug = f"{i:02d}"
        if not d.is_source:
            pending.append((d, where(d), None, "CONFIG"))  # run once the pool is done
            continue
        path = tree / d.file
        original = path.read_text()
        text = original
        for old, new in d.edits:
            text = text.replace(old, new, 1)
        print(f"== [{slug}] {d.name}: build without it", flush=True)
        try:
            path.write_text(text)
            built = cargo_build(tree, target, [d.package], logs / f"build-{slug}.log")
        finally:
            path.write_text(original)  # a fresh mtime: the next build sees the change back
        if not built:
            pending.append((d, where(d), None, f"BUILD FAILED (log {logs / f'build-{slug}.log'})"))
            continue
        out = bins / slug
        out.mkdir(exist_ok=True)
        binary = BINARY[d.package]
        shutil.copy2(target / "debug" / binary, out / binary)
        if filecmp.cmp(out / binary, base / binary, shallow=False):
            pending.append((d, where(d), None, "BINARY UNCHANGED: the edit had no effect"))
            continue
        if d.untestable:
            pending.append((d, where(d), None, "not testable end to end (built; binary differs)"))
            continue
        if not d.tests:
            pending.append((d, where(d), None, "NO TEST: nothing fails without it"))
            continue
        fut = pool.submit(run_tests, d.tests, {**baseline, binary: out / binary}, logs / f"{slug}.xml",
                          logs / f"{slug}.log")
        pending.append((d, where(d), fut, ""))
    sync_tree(tree)  # the scratch tree ends as the sources are
    source_results = {id(d): fut.result() for d, _, fut, _ in pending if fut is not None}
    pool.shutdown()
    config_results = {id(d): run_config_defence(d, defences.index(d), baseline, logs)
                      for d, _, _, problem in pending if problem == "CONFIG"}
    for d, loc, fut, problem in pending:
        if problem == "CONFIG":
            rc, outcomes = config_results[id(d)]
            result, detail, ok = verdict(d, rc, outcomes)
            rows.append(Row(d, loc, result, detail, ok))
            continue
        if fut is None:
            untestable = problem.startswith("not testable")
            rows.append(Row(d, loc, problem, [d.untestable] if untestable else [], None if untestable else False))
            continue
        rc, outcomes = source_results[id(d)]
        result, detail, ok = verdict(d, rc, outcomes)
        rows.append(Row(d, loc, result, detail, ok))
    seconds = time.monotonic() - t0

    print("\n== Removing each defence once\n")
    w = max(len(r.defence.name) for r in rows)
    for r in rows:
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[r.ok]
        print(f"{mark} {r.defence.name:<{w}}  {r.where}\n     {r.result}")
        for line in r.detail:
            print(f"       {line}")
    detected = sum(r.ok is True for r in rows)
    testable = sum(r.ok is not None for r in rows)
    print(f"\n{detected} of {testable} testable defences detected by their tests; "
          f"{len(rows) - testable} not testable end to end ({seconds / 60:.1f} min); logs in {logs}")
    if args.markdown:
        command = "make defence-check" if not args.only else "python3 scripts/defence_check.py " + " ".join(
            f"--only {o!r}" for o in args.only)
        Path(args.markdown).write_text(markdown(rows, started, seconds, command))
        print(f"table written to {args.markdown}")
    return 0 if detected == testable else 1


if __name__ == "__main__":
    sys.exit(main())
