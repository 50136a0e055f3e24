//! Rendering: exact output of both framings, escaping round trips, the size limit.
use jit_audit::frame::{sd_param_name, summary, SD_ALIASES};
use jit_audit::{escape_bytes, Event, EventType, Framer, Framing, Value, DEFAULT_MAX_MESSAGE};
use serde_json::json;
use time::{OffsetDateTime, UtcOffset};

/// 2026-11-25T17:15:01.123456Z
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_795_626_901_123_456_000).unwrap()
}

fn framer(framing: Framing) -> Framer {
    Framer::new(framing, "jitrun", "web-01", 4242)
}

fn render(framing: Framing, e: &Event) -> String {
    String::from_utf8(framer(framing).render_with_offset(e, now(), UtcOffset::UTC)).unwrap()
}

fn sample() -> Event {
    let mut e = Event::new(EventType::ElevateStart);
    e.str("event.outcome", "success")
        .str("user.name", "alice")
        .str("user.id", "1000")
        .str("user.target.name", "alice")
        .str("process.executable", "/usr/sbin/ip")
        .list("process.args", ["ip", "link"])
        .int("process.pid", 31337)
        .list("process.thread.capabilities.effective", ["CAP_NET_ADMIN"])
        .str("jitrun.rule", "net-debug")
        .str("jitrun.run_as", "invoker")
        .str("jitrun.grant.id", "01JD5Q2V7Y")
        .bool("jitrun.grant.break_glass", false);
    e
}

#[test]
fn exact_cee() {
    assert_eq!(
        render(Framing::Cee, &sample()),
        concat!(
            r#"<85>Nov 25 17:15:01 jitrun[4242]: @cee:"#,
            r#"{"event":{"action":"elevate.start","kind":"event","outcome":"success"},"#,
            r#""jitrun":{"schema_version":1,"rule":"net-debug","run_as":"invoker","#,
            r#""grant":{"id":"01JD5Q2V7Y","break_glass":false}},"#,
            r#""user":{"name":"alice","id":"1000","target":{"name":"alice"}},"#,
            r#""process":{"executable":"/usr/sbin/ip","args":["ip","link"],"pid":31337,"#,
            r#""thread":{"capabilities":{"effective":["CAP_NET_ADMIN"]}}}}"#
        )
    );
}

#[test]
fn exact_rfc5424() {
    assert_eq!(
        render(Framing::Rfc5424, &sample()),
        concat!(
            r#"<85>1 2026-11-25T17:15:01.123456Z web-01 jitrun 4242 elevate.start "#,
            r#"[jitrun@32473 event.action="elevate.start" event.kind="event" "#,
            r#"jitrun.schema_version="1" event.outcome="success" user.name="alice" "#,
            r#"user.id="1000" user.target.name="alice" process.executable="/usr/sbin/ip" "#,
            r#"process.args="[\"ip\",\"link\"\]" process.pid="31337" "#,
            r#"process.thread.caps.effective="[\"CAP_NET_ADMIN\"\]" jitrun.rule="net-debug" "#,
            r#"jitrun.run_as="invoker" jitrun.grant.id="01JD5Q2V7Y" "#,
            r#"jitrun.grant.break_glass="false"] "#,
            r#"alice ran /usr/sbin/ip link as invoker with CAP_NET_ADMIN "#,
            r#"(rule net-debug, grant 01JD5Q2V7Y)"#
        )
    );
}

#[test]
fn cee_header_local_time_and_day_padding() {
    // 2026-11-05T23:59:58Z, shown at +01:00 (next day) and -05:30.
    let t = OffsetDateTime::from_unix_timestamp(1_793_923_198).unwrap();
    let e = Event::new(EventType::PolicyError);
    let f = framer(Framing::Cee);
    let plus1 =
        String::from_utf8(f.render_with_offset(&e, t, UtcOffset::from_hms(1, 0, 0).unwrap()))
            .unwrap();
    assert!(
        plus1.starts_with("<83>Nov  6 00:59:58 jitrun[4242]: @cee:{"),
        "{plus1}"
    );
    let minus =
        String::from_utf8(f.render_with_offset(&e, t, UtcOffset::from_hms(-5, -30, 0).unwrap()))
            .unwrap();
    assert!(
        minus.starts_with("<83>Nov  5 18:29:58 jitrun[4242]: @cee:{"),
        "{minus}"
    );
    // render() takes the offset from localtime_r: the same minute-second and shape.
    let local = String::from_utf8(f.render(&e, t)).unwrap();
    let (head, _) = local.split_once(" jitrun[4242]: @cee:{").unwrap();
    assert_eq!(head.len(), "<83>Nov  5 18:29:58".len(), "{local}");
    assert!(head.ends_with(":58"), "{local}");
    assert!(!local.ends_with('\n'));
    // RFC 5424 is always UTC.
    let r = String::from_utf8(framer(Framing::Rfc5424).render(&e, t)).unwrap();
    assert!(
        r.starts_with("<83>1 2026-11-05T23:59:58.000000Z web-01 jitrun 4242 policy.error ["),
        "{r}"
    );
}

#[test]
fn pri_is_authpriv_plus_severity() {
    for t in EventType::ALL {
        let out = render(Framing::Rfc5424, &Event::new(t));
        let pri = 80 + t.severity() as u8;
        assert!(out.starts_with(&format!("<{pri}>1 ")), "{out}");
        let msgid = out.split(' ').nth(5).unwrap();
        assert_eq!(msgid, t.as_str());
    }
}

#[test]
fn header_fields_sanitized() {
    let mut f = Framer::new(Framing::Rfc5424, "jit run", "", 7);
    f.sd_id = "bad id=\"x\"]".to_owned();
    let out = String::from_utf8(f.render_with_offset(&sample(), now(), UtcOffset::UTC)).unwrap();
    assert!(
        out.starts_with(
            "<85>1 2026-11-25T17:15:01.123456Z - jit_run 7 elevate.start [bad_id__x__ "
        ),
        "{out}"
    );
    let long = "h".repeat(300);
    let f = Framer::new(Framing::Rfc5424, &"a".repeat(60), &long, 7);
    let out = String::from_utf8(f.render_with_offset(&sample(), now(), UtcOffset::UTC)).unwrap();
    let parts: Vec<&str> = out.splitn(7, ' ').collect();
    assert_eq!(parts[2].len(), 255);
    assert_eq!(parts[3].len(), 48);
    let f = Framer::new(Framing::Cee, "a[b]:c d", "h", 7);
    let out = String::from_utf8(f.render_with_offset(&sample(), now(), UtcOffset::UTC)).unwrap();
    assert!(out.contains(" a_b__c_d[7]: @cee:"), "{out}");
}

#[test]
fn sd_param_names_fit_32() {
    for (field, alias) in SD_ALIASES {
        assert!(field.len() > 32 && alias.len() <= 32);
        assert_eq!(sd_param_name(field), *alias);
    }
    assert_eq!(sd_param_name("user.name"), "user.name");
    let long = "jitrun.some_future_field.with_a_very_long_name";
    let a = sd_param_name(long);
    assert_eq!(a.len(), 32);
    assert!(a.starts_with("jitrun.some_future_fiel~"), "{a}");
    assert_eq!(sd_param_name(long), a, "deterministic");
    assert_ne!(
        sd_param_name("jitrun.some_future_field.with_a_very_long_nam2"),
        a
    );
    assert_eq!(sd_param_name("a b=c]\"é"), "a_b_c___");
}

// ---- an independent RFC 5424 parser (header, one SD-ELEMENT, MSG) ----

struct Parsed {
    header: Vec<String>,
    sd_id: String,
    params: Vec<(String, String)>,
    msg: String,
}

fn parse_5424(line: &str) -> Parsed {
    let mut rest = line;
    let mut header = Vec::new();
    for _ in 0..6 {
        let (h, r) = rest.split_once(' ').expect("header field");
        header.push(h.to_owned());
        rest = r;
    }
    let b: Vec<char> = rest.chars().collect();
    assert_eq!(b[0], '[', "SD-ELEMENT starts with [");
    let mut i = 1;
    let mut sd_id = String::new();
    while b[i] != ' ' && b[i] != ']' {
        sd_id.push(b[i]);
        i += 1;
    }
    let mut params = Vec::new();
    while b[i] == ' ' {
        i += 1;
        let mut name = String::new();
        while b[i] != '=' {
            assert!(
                b[i].is_ascii_graphic() && b[i] != ']' && b[i] != '"' && b[i] != ' ',
                "bad name char {:?}",
                b[i]
            );
            name.push(b[i]);
            i += 1;
        }
        assert!(!name.is_empty() && name.len() <= 32, "{name}");
        i += 1;
        assert_eq!(b[i], '"');
        i += 1;
        let mut value = String::new();
        loop {
            match b[i] {
                '\\' if matches!(b[i + 1], '"' | '\\' | ']') => {
                    value.push(b[i + 1]);
                    i += 2;
                }
                '"' => {
                    i += 1;
                    break;
                }
                ']' => panic!("unescaped ] in PARAM-VALUE at {i}: {line}"),
                c => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        params.push((name, value));
    }
    assert_eq!(b[i], ']', "SD-ELEMENT ends with ]");
    i += 1;
    assert_eq!(b[i], ' ');
    let msg: String = b[i + 1..].iter().collect();
    Parsed {
        header,
        sd_id,
        params,
        msg,
    }
}

fn param<'a>(p: &'a Parsed, name: &str) -> &'a str {
    &p.params
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

fn cee_json(line: &str) -> serde_json::Value {
    let (_, json) = line.split_once(": @cee:").expect("cee cookie");
    serde_json::from_str(json).expect("valid JSON")
}

fn hostile_args() -> Vec<Vec<u8>> {
    let mut high: Vec<u8> = (0x80..=0xffu8).collect();
    high.extend_from_slice(b"end");
    vec![
        b"printf".to_vec(),
        b"line1\nline2\r\n".to_vec(),
        b"say \"hi\"".to_vec(),
        b"a]b] [fake@1 x=\"y\"]".to_vec(),
        b"back\\slash\\".to_vec(),
        b"\xff\xfeinvalid\xc3".to_vec(),
        b"tab\there".to_vec(),
        b"del\x7f".to_vec(),
        b"\x00nul\x1besc".to_vec(),
        high,
        "caf\u{e9} \u{1f600} \u{85}nel \u{2028}ls"
            .as_bytes()
            .to_vec(),
        b"\\xff literal".to_vec(),
    ]
}

fn hostile() -> Event {
    let mut e = Event::new(EventType::ElevateDeny);
    e.str("event.outcome", "failure")
        .str("user.name", "mallory")
        .str("process.executable", "/usr/bin/printf")
        .bytes_list("process.args", hostile_args())
        .str("process.working_directory", "/tmp/q\"b\\r]x")
        .str("jitrun.deny_reason", "no rule matches \"printf\" [x]");
    e
}

fn no_raw_controls(s: &str) {
    for c in s.chars() {
        assert!(
            !c.is_control() && c != '\u{2028}' && c != '\u{2029}',
            "raw control {c:?} in {s:?}"
        );
    }
}

#[test]
fn escaping_round_trips_through_json() {
    let out = render(Framing::Cee, &hostile());
    no_raw_controls(&out);
    let j = cee_json(&out);
    let args = j["process"]["args"].as_array().unwrap();
    let originals = hostile_args();
    assert_eq!(args.len(), originals.len());
    for (got, want) in args.iter().zip(&originals) {
        let got = got.as_str().unwrap();
        assert_eq!(got, escape_bytes(want));
        assert_eq!(
            jit_audit::escape::unescape_bytes(got).as_deref(),
            Some(&want[..])
        );
    }
    assert_eq!(j["process"]["working_directory"], "/tmp/q\"b\\r]x");
    assert_eq!(j["jitrun"]["deny_reason"], "no rule matches \"printf\" [x]");
}

#[test]
fn escaping_round_trips_through_structured_data() {
    let out = render(Framing::Rfc5424, &hostile());
    no_raw_controls(&out);
    let p = parse_5424(&out);
    assert_eq!(
        p.header,
        [
            "<84>1",
            "2026-11-25T17:15:01.123456Z",
            "web-01",
            "jitrun",
            "4242",
            "elevate.deny"
        ]
    );
    assert_eq!(p.sd_id, "jitrun@32473");
    let args: Vec<String> = serde_json::from_str(param(&p, "process.args")).unwrap();
    for (got, want) in args.iter().zip(hostile_args()) {
        assert_eq!(jit_audit::escape::unescape_bytes(got).unwrap(), want);
    }
    assert_eq!(args.len(), hostile_args().len());
    assert_eq!(param(&p, "process.working_directory"), "/tmp/q\"b\\r]x");
    assert_eq!(
        param(&p, "jitrun.deny_reason"),
        "no rule matches \"printf\" [x]"
    );
    assert_eq!(param(&p, "event.action"), "elevate.deny");
    assert!(
        p.msg
            .starts_with("mallory was denied /usr/bin/printf line1\\nline2\\r\\n say \"hi\""),
        "{}",
        p.msg
    );
}

#[test]
fn control_chars_in_string_fields_stay_on_one_line() {
    let mut e = Event::new(EventType::PolicyError);
    e.str(
        "jitrun.error",
        "policy.toml:3:5\n  |\n3 | x = \t\u{1b}[1m\n  |     ^ expected value",
    );
    let cee = render(Framing::Cee, &e);
    no_raw_controls(&cee);
    assert_eq!(
        cee_json(&cee)["jitrun"]["error"],
        "policy.toml:3:5\n  |\n3 | x = \t\u{1b}[1m\n  |     ^ expected value"
    );
    let r = render(Framing::Rfc5424, &e);
    no_raw_controls(&r);
    let p = parse_5424(&r);
    assert_eq!(
        param(&p, "jitrun.error"),
        "policy.toml:3:5\\n  |\\n3 | x = \\t\\u001b[1m\\n  |     ^ expected value"
    );
    assert_eq!(
        p.msg,
        "policy error: policy.toml:3:5\\n  |\\n3 | x = \\t\\u001b[1m\\n  |     ^ expected value"
    );
}

fn check_truncated(e: &Event, max: usize) {
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let mut f = framer(framing);
        f.max_message = max;
        let out = String::from_utf8(f.render_with_offset(e, now(), UtcOffset::UTC)).unwrap();
        assert!(out.len() <= max, "{framing:?}: {} > {max}", out.len());
        assert!(
            out.len() > max - 200,
            "{framing:?}: uses the room ({})",
            out.len()
        );
        assert!(out.contains("…[truncated "), "{framing:?}: marker");
        let (args, flag) = match framing {
            Framing::Cee => {
                let j = cee_json(&out);
                assert_eq!(j["event"]["action"], "elevate.start");
                let args: Vec<String> =
                    serde_json::from_value(j["process"]["args"].clone()).unwrap();
                (args, j["jitrun"]["args_truncated"].clone())
            }
            Framing::Rfc5424 => {
                let p = parse_5424(&out);
                assert_eq!(param(&p, "event.action"), "elevate.start");
                let args: Vec<String> = serde_json::from_str(param(&p, "process.args")).unwrap();
                (args, json!(param(&p, "jitrun.args_truncated") == "true"))
            }
        };
        assert_eq!(flag, json!(true), "{framing:?}");
        assert!(
            args.iter().any(|a| a.contains("…[truncated ")),
            "{framing:?}"
        );
        assert_eq!(args[0], "cat", "argv[0] kept");
    }
}

fn with_args(args: Vec<String>) -> Event {
    let mut e = sample();
    e.set("process.args", Value::List(args));
    e
}

#[test]
fn truncates_a_100k_argv() {
    let e = with_args(vec!["cat".into(), "é".repeat(50 * 1024), "tail".into()]);
    check_truncated(&e, DEFAULT_MAX_MESSAGE);
    let out = render(Framing::Cee, &e);
    let j = cee_json(&out);
    assert_eq!(j["process"]["args"][2], "tail", "short args untouched");
    let big = j["process"]["args"][1].as_str().unwrap();
    let (kept, marker) = big.split_once('…').unwrap();
    let removed: usize = marker
        .trim_start_matches("[truncated ")
        .trim_end_matches(" bytes]")
        .parse()
        .unwrap();
    assert_eq!(
        kept.len() + removed,
        100 * 1024,
        "N counts the removed bytes"
    );
}

#[test]
fn truncates_100_args_of_1k() {
    let mut args = vec!["cat".to_owned()];
    args.extend((1..100).map(|i| format!("{i:03}{}", "y".repeat(1021))));
    check_truncated(&with_args(args), DEFAULT_MAX_MESSAGE);
}

#[test]
fn truncates_many_tiny_args_and_long_other_fields() {
    let mut args = vec!["cat".to_owned()];
    args.extend((0..20_000).map(|i| i.to_string()));
    let e = with_args(args);
    check_truncated(&e, DEFAULT_MAX_MESSAGE);
    let j = cee_json(&render(Framing::Cee, &e));
    let last = j["process"]["args"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.starts_with("…[truncated ") && last.contains(" more args, "),
        "{last}"
    );

    let mut e = with_args(vec!["cat".into(), "z".repeat(20_000)]);
    e.str("process.working_directory", "w".repeat(30_000));
    e.list("jitrun.grant.approvers", vec!["v".repeat(10_000); 3]);
    check_truncated(&e, DEFAULT_MAX_MESSAGE);
    let j = cee_json(&render(Framing::Cee, &e));
    assert_eq!(j["jitrun"]["fields_truncated"], true);
    assert!(j["process"]["working_directory"]
        .as_str()
        .unwrap()
        .contains("…[truncated "));
}

#[test]
fn cut_never_splits_an_escape() {
    let mut big = b"cat".to_vec();
    big.extend(std::iter::repeat_n(0xffu8, 20_000));
    let mut e = sample();
    e.bytes_list("process.args", [b"cat".to_vec(), big]);
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let out = render(framing, &e);
        assert!(out.len() <= DEFAULT_MAX_MESSAGE);
        let arg = match framing {
            Framing::Cee => cee_json(&out)["process"]["args"][1]
                .as_str()
                .unwrap()
                .to_owned(),
            Framing::Rfc5424 => {
                let p = parse_5424(&out);
                let a: Vec<String> = serde_json::from_str(param(&p, "process.args")).unwrap();
                a[1].clone()
            }
        };
        let (kept, _) = arg.split_once('…').unwrap();
        assert!(jit_audit::escape::unescape_bytes(kept).is_some(), "{kept}");
    }
}

#[test]
fn absurdly_small_limit_still_bounded() {
    let e = with_args(vec!["cat".into(), "x".repeat(5000)]);
    for max in [0, 10, 100, 300, 600] {
        for framing in [Framing::Cee, Framing::Rfc5424] {
            let mut f = framer(framing);
            f.max_message = max;
            let out = f.render_with_offset(&e, now(), UtcOffset::UTC);
            assert!(out.len() <= max);
            assert!(std::str::from_utf8(&out).is_ok());
        }
    }
}

#[test]
fn summaries_never_fail() {
    for t in EventType::ALL {
        let e = Event::new(t);
        let s = summary(&e);
        assert!(!s.is_empty());
        let out = render(Framing::Rfc5424, &e);
        parse_5424(&out);
    }
    let mut end = Event::new(EventType::ElevateEnd);
    end.str("user.name", "alice")
        .str("process.executable", "/usr/sbin/ip")
        .list("process.args", ["ip", "link"])
        .str("jitrun.end_reason", "expired")
        .str("jitrun.signal", "SIGTERM")
        .int("jitrun.duration_ms", 3_600_000)
        .str("jitrun.grant.id", "g1");
    assert_eq!(
        summary(&end),
        "alice's command /usr/sbin/ip link ended: grant expired (signal SIGTERM) after 3600000 ms (grant g1)"
    );
    let mut deny = Event::new(EventType::ElevateDeny);
    deny.str("user.id", "1001")
        .str("jitrun.deny_code", "no_grant")
        .str("jitrun.deny_reason", "no valid grant");
    assert_eq!(
        summary(&deny),
        "uid 1001 was denied elevation: no valid grant (code no_grant)"
    );
    let mut bg = Event::new(EventType::BreakGlass);
    bg.str("user.name", "root-oncall")
        .list("process.args", ["/bin/bash"]);
    assert_eq!(summary(&bg), "BREAK-GLASS: root-oncall ran /bin/bash");
    let mut gi = Event::new(EventType::GrantIssue);
    gi.str("user.name", "alice")
        .str("jitrun.grant.id", "g9")
        .str("jitrun.rule", "net-debug")
        .str("jitrun.grant.expires", "2026-11-25T18:00:00Z");
    assert_eq!(
        summary(&gi),
        "grant g9 issued to alice, expires 2026-11-25T18:00:00Z (rule net-debug)"
    );
}

/// Shortening cuts other long fields (a huge working directory) before it touches argv[0]:
/// the program is what a reader of the event needs most.
#[test]
fn argv0_is_the_last_thing_shortened() {
    let mut e = Event::new(EventType::ElevateStart);
    e.str("user.name", "alice")
        .str(
            "process.working_directory",
            format!("/home/alice/{}", "d".repeat(20_000)),
        )
        .list(
            "process.args",
            [
                "/usr/local/sbin/a-rather-long-program-name-for-the-test".to_string(),
                "x".repeat(100_000),
            ],
        );
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let line = render(framing, &e);
        assert!(
            line.len() <= DEFAULT_MAX_MESSAGE,
            "{framing:?}: {} bytes",
            line.len()
        );
        assert!(
            line.contains("/usr/local/sbin/a-rather-long-program-name-for-the-test"),
            "{framing:?}: argv[0] was cut"
        );
    }
    let json = cee_json(&render(Framing::Cee, &e));
    assert_eq!(json["jitrun"]["fields_truncated"], json!(true));
    assert_eq!(
        json["process"]["args"][0],
        json!("/usr/local/sbin/a-rather-long-program-name-for-the-test")
    );
}
