//! Prints sample audit datagrams, one JSON object per line:
//! `{"name":…, "framing":"cee"|"rfc5424", "max_message":N, "datagram":"…"}`.
//! Used by tests/audit/test_rfc5424_parse.py to check the output with independent parsers.
//! Fixed time, pid and host, so the output is reproducible (the cee header uses UTC here).
use jit_audit::session_io::{Chunk, SessionIo};
use jit_audit::{Event, EventType, Framer, Framing, Value, DEFAULT_MAX_MESSAGE};
use time::{OffsetDateTime, UtcOffset};

fn start() -> Event {
    let mut e = Event::new(EventType::ElevateStart);
    e.str("event.outcome", "success")
        .str("jitrun.session_id", "01JD5Q3ZK9M2B8X4T7RW6N0VYE")
        .str("host.name", "web-01.example.com")
        .str("user.name", "alice")
        .str("user.id", "1000")
        .str("user.target.name", "alice")
        .str("user.target.id", "1000")
        .str("process.executable", "/usr/sbin/ip")
        .list("process.args", ["ip", "link", "set", "eth0", "up"])
        .str("process.working_directory", "/home/alice")
        .int("process.pid", 31337)
        .list("process.thread.capabilities.effective", ["CAP_NET_ADMIN"])
        .str("jitrun.rule", "net-debug")
        .str("jitrun.run_as", "invoker")
        .str("jitrun.tty", "/dev/pts/3")
        .str("jitrun.grant.id", "01JD5Q2V7Y3K8M1N4P6R9S0TAB")
        .str("jitrun.grant.kid", "k2026")
        .str("jitrun.grant.issuer", "jitbroker@broker.example.com")
        .str("jitrun.grant.expires", "2026-11-25T18:15:01Z")
        .list("jitrun.grant.approvers", ["bob", "carol"])
        .str("jitrun.grant.ticket", "OPS-1234")
        .str(
            "jitrun.grant.reason",
            "debug \"flapping\" link [eth0] \\ see ticket",
        )
        .bool("jitrun.grant.break_glass", false);
    e
}

fn hostile() -> Event {
    let mut e = Event::new(EventType::ElevateDeny);
    e.str("event.outcome", "failure")
        .str("user.name", "mallory")
        .str("user.id", "1001")
        .str("process.executable", "/usr/bin/printf")
        .bytes_list(
            "process.args",
            [
                &b"printf"[..],
                b"line1\nline2",
                b"tab\there",
                b"quote\"q",
                b"close]bracket",
                b"back\\slash",
                b"del\x7f",
                b"\x80\x81\xfe\xff",
                "caf\u{e9} \u{1f600}".as_bytes(),
                b"esc\x1b[31m",
                b"fake] [x@1 a=\"b\"]",
            ],
        )
        .str("process.working_directory", "/tmp/dir]with\"odd\\chars")
        .str("jitrun.deny_code", "no_rule")
        .str(
            "jitrun.deny_reason",
            "no rule allows \"printf\" for mallory",
        );
    e
}

fn end() -> Event {
    let mut e = Event::new(EventType::ElevateEnd);
    e.str("event.outcome", "success")
        .str("user.name", "alice")
        .str("process.executable", "/usr/sbin/ip")
        .list("process.args", ["ip", "link"])
        .int("process.exit_code", 0)
        .str("jitrun.end_reason", "exit")
        .int("jitrun.duration_ms", 1234)
        .str("jitrun.rule", "net-debug");
    e
}

fn policy_error() -> Event {
    let mut e = Event::new(EventType::PolicyError);
    e.str("event.outcome", "failure").str(
        "jitrun.error",
        "/etc/jitrun/policy.toml: line 3: expected `=`",
    );
    e
}

fn huge_arg() -> Event {
    let mut e = start();
    let big = "A".repeat(100 * 1024);
    e.list("process.args", ["cat".to_owned(), big, "tail".to_owned()]);
    e
}

fn many_args() -> Event {
    let mut e = start();
    let args: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "x".repeat(1021)))
        .collect();
    e.set("process.args", Value::List(args));
    e
}

/// A chunk of a session recording: asciicast lines as the jit-session writer escapes them
/// (quotes, backslashes, `]`, an SD lookalike, escape sequences, non-ASCII, NUL as `\u0000`).
fn session_io() -> Event {
    let session = SessionIo {
        session_id: "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6".into(),
        host: "web-01.example.com".into(),
        user: "alice".into(),
    };
    let lines = [
        r#"[0.248848, "o", "\u001b[1;31m\"quoted\" ] [x@1 a=\"b\"] back\\slash\r\n"]"#,
        "[1.001376, \"o\", \"caf\u{e9} \u{1f600} \\u0000\\u0007 \\u2028\\r\\n\"]",
        r#"[1.500000, "r", "120x40"]"#,
        r#"[2.000000, "x", "0"]"#,
    ];
    session.event(&Chunk {
        seq: 3,
        offset: 2048,
        lines: lines.iter().map(|l| l.to_string()).collect(),
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        last: true,
    })
}

fn main() {
    let now = OffsetDateTime::from_unix_timestamp_nanos(1_795_626_901_123_456_000).expect("time");
    let samples = [
        ("start", start()),
        ("hostile", hostile()),
        ("end", end()),
        ("policy_error", policy_error()),
        ("huge_arg", huge_arg()),
        ("many_args", many_args()),
        ("session_io", session_io()),
    ];
    for (name, event) in &samples {
        for framing in [Framing::Cee, Framing::Rfc5424] {
            let framer = Framer::new(framing, "jitrun", "web-01.example.com", 4242);
            let datagram = framer.render_with_offset(event, now, UtcOffset::UTC);
            let line = serde_json::json!({
                "name": name,
                "framing": framing.as_str(),
                "max_message": DEFAULT_MAX_MESSAGE,
                "datagram": String::from_utf8(datagram).expect("datagrams are UTF-8"),
            });
            println!("{line}");
        }
    }
}
