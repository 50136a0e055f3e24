"""Session recording, fail closed (docs/policy.md, "Session recording"): a rule that records
its sessions (`record = true`, or `[record] default = true` in the settings) does not run in a
jitrun that cannot record yet. The refusal is a `policy.error` with deny code
`recording_unavailable` naming the rule, and the command never starts."""

from e2e_support import TEST_SECURE_PATH, assert_ok


def recording_rule(world, name="rec", record="record = true\n") -> str:
    return (f'[[rule]]\nname = "{name}"\nusers = ["{world.alice}"]\n'
            f'commands = ["/usr/bin/sh -c *"]\n{record}')


def assert_recording_refused(res, rule: str, why: str, marker) -> None:
    assert not res.timed_out, str(res)
    assert res.returncode == 1, str(res)
    assert len(res.err_lines) == 1, str(res)
    line = res.err_lines[0]
    assert line.startswith(f'jitrun: rule "{rule}" records its sessions ({why})'), line
    assert "cannot record them yet; nothing runs unrecorded" in line, line
    assert "elevate.start" not in res.actions(), str(res)
    err = res.event("policy.error")
    assert err.get("jitrun.deny_code") == "recording_unavailable", str(res)
    assert err.get("jitrun.rule") == rule, str(res)
    assert err.get("event.outcome") == "failure"
    assert not marker.exists(), "the command ran"


def test_a_rule_that_records_does_not_run(lab, world):
    a = world.alice
    marker = a.home / "recording-refused-ran"
    argv = ["/usr/bin/sh", "-c", f"echo ran > {marker}"]
    lab.set_policy(world.policy, dropins={"50-rec.toml": recording_rule(world)})
    # With a grant for it...
    assert_recording_refused(lab.run_as_user(a, argv, grant=lab.mint(a, "rec")), "rec", "record = true", marker)
    # ...and as standing access.
    standing = recording_rule(world, "rec-standing", 'grant = "none"\nrecord = true\n')
    lab.set_policy(world.policy, dropins={"50-rec.toml": standing})
    assert_recording_refused(lab.run_as_user(a, argv), "rec-standing", "record = true", marker)
    # record = false, or no record key with the default settings: it runs.
    lab.set_policy(world.policy, dropins={"50-rec.toml": recording_rule(world, record="record = false\n")})
    assert_ok(lab.run_as_user(a, argv, grant=lab.mint(a, "rec")))
    assert marker.read_text() == "ran\n"
    marker.unlink()
    lab.set_policy(world.policy, dropins={"50-rec.toml": recording_rule(world, record="")})
    assert_ok(lab.run_as_user(a, argv, grant=lab.mint(a, "rec")))
    marker.unlink()


def test_the_settings_default_makes_every_rule_without_record_record(lab, world):
    a = world.alice
    marker = a.home / "recording-default-ran"
    argv = ["/usr/bin/sh", "-c", f"echo ran > {marker}"]
    lab.set_policy(world.policy, dropins={
        "50-rec.toml": recording_rule(world, "quiet", "record = false\n") + "\n"
        + recording_rule(world, "inherits", "").replace('"/usr/bin/sh -c *"', '"/usr/bin/true"'),
    })
    lab.write_settings(secure_path=TEST_SECURE_PATH)
    settings = lab.conf_files / "jitrun.toml"
    lab._write_conf(settings, settings.read_text() + "\n[record]\ndefault = true\n")
    # A rule of the default policy (no record key) now records, so it is refused.
    res = lab.run_as_user(a, argv, grant=lab.mint(a, "plain"))
    assert_recording_refused(res, "plain", "record.default = true in /etc/jitrun/jitrun.toml", marker)
    # A rule that says record = false still runs.
    assert_ok(lab.run_as_user(a, argv, grant=lab.mint(a, "quiet")))
    assert marker.exists()
    marker.unlink()


def test_policy_explain_says_which_rules_record(lab, world, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(recording_rule(world, "rec", "record = true\nrecord_input = true\n")
                      + recording_rule(world, "plain-rule", "").replace("/usr/bin/sh -c *", "/usr/bin/true"))
    out = lab.jitctl("policy", "explain", "--policy", policy, "--user", world.alice.name, "--host", "h",
                     "--rule", "rec", "--grant", "-", "--", "/usr/bin/sh", "-c", "x",
                     input=lab.mint(world.alice, "rec").encode()).stdout.decode()
    assert "record:   yes, output and input (record = true in the rule)" in out, out
    assert "refuses such runs (recording_unavailable)" in out, out
    out = lab.jitctl("policy", "explain", "--policy", policy, "--user", world.alice.name, "--host", "h",
                     "--grant", "-", "--", "/usr/bin/true", input=lab.mint(world.alice, "plain-rule").encode()).stdout.decode()
    assert "record:   no (settings record.default = false)" in out, out
