//! The recorder against hostile streams: every file it writes parses line by line as
//! asciicast v2, keeps what the command wrote (U+FFFD for what is not UTF-8), respects its
//! cap with a marker, and its `session.io` events rebuild it exactly in both framings.

use jit_audit::session_io::SessionIo;
use jit_audit::{Event, Framer, Framing};
use jit_session::cast::{parse_event, parse_header, EventKind, TRUNCATED_MARKER};
use jit_session::sha::Sha256;
use jit_session::{
    parse_line, Header, OnLimit, Options, Reassembler, RecordError, Recorder, SessionInfo, Source,
    Summary, MAX_LINE,
};
use std::io::{self, Write};
use std::time::Duration;
use time::OffsetDateTime;

const ID: &str = "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6";

fn header() -> Header {
    Header {
        width: 80,
        height: 24,
        timestamp: 1_795_626_901,
        command: "/bin/sh -c 'hostile'".into(),
        term: Some("xterm-256color".into()),
        shell: Some("/bin/bash".into()),
        session: SessionInfo {
            id: ID.into(),
            host: "web-01".into(),
            user: "alice".into(),
            uid: 1000,
            run_as: "root".into(),
            rule: "break-glass".into(),
            input: true,
        },
    }
}

fn session() -> SessionIo {
    SessionIo {
        session_id: ID.into(),
        host: "web-01".into(),
        user: "alice".into(),
    }
}

fn framer(framing: Framing) -> Framer {
    Framer::new(framing, "jitrun", "web-01", 4242)
}

#[derive(Clone, Debug)]
enum Call {
    Out(Vec<u8>),
    In(Vec<u8>),
    Resize(u16, u16),
}

struct Recording {
    file: Vec<u8>,
    events: Vec<Event>,
    summary: Summary,
    limit_seen: bool,
}

fn record(calls: &[Call], max_bytes: u64, on_limit: OnLimit, framing: Framing) -> Recording {
    let opts = Options {
        max_bytes,
        on_limit,
        framer: framer(framing),
    };
    let (mut rec, step) = Recorder::start(Vec::new(), &header(), session(), opts).unwrap();
    let mut events = step.chunks;
    let mut limit_seen = false;
    for (i, call) in calls.iter().enumerate() {
        let at = Duration::from_millis(i as u64 * 7);
        let step = match call {
            Call::Out(b) => rec.output(at, b),
            Call::In(b) => rec.input(at, b),
            Call::Resize(c, r) => rec.resize(at, *c, *r),
        };
        assert!(step.write_error.is_none());
        limit_seen |= step.limit_reached;
        events.extend(step.chunks);
    }
    let done = rec.finish(Duration::from_secs(3600), 130);
    events.extend(done.step.chunks);
    Recording {
        file: done.out,
        events,
        summary: done.summary,
        limit_seen,
    }
}

/// Every line parses; the header first, then events with times that never go back, the
/// exit last; no line too long; no control character but the newlines. Returns the text
/// of the "o" events and of the "i" events.
fn check_file(file: &[u8]) -> (String, String, bool) {
    let text = std::str::from_utf8(file).expect("the file is UTF-8");
    assert!(text.ends_with('\n'));
    assert!(!text
        .chars()
        .any(|c| c != '\n' && (c.is_control() || c == '\u{2028}' || c == '\u{2029}')));
    let lines: Vec<&str> = text[..text.len() - 1].split('\n').collect();
    let head = parse_header(lines[0]).unwrap();
    assert_eq!(head.session.unwrap().id, ID);
    let (mut out, mut input, mut truncated) = (String::new(), String::new(), false);
    let mut last = 0.0;
    for (i, line) in lines.iter().enumerate() {
        assert!(line.len() <= MAX_LINE, "line {i} has {} bytes", line.len());
        if i == 0 {
            continue;
        }
        let e = parse_event(line).unwrap_or_else(|e| panic!("line {i}: {e}: {line}"));
        assert!(e.time >= last, "time goes back at line {i}");
        last = e.time;
        let is_last = i == lines.len() - 1;
        match e.kind {
            EventKind::Output(s) => out.push_str(&s),
            EventKind::Input(s) => input.push_str(&s),
            EventKind::Resize(s) => assert!(s.contains('x')),
            EventKind::Marker(m) => {
                assert!(m.starts_with(TRUNCATED_MARKER), "{m}");
                truncated = true;
            }
            EventKind::Exit(s) => {
                assert!(is_last, "exit before the end");
                assert_eq!(s, "130");
            }
            EventKind::Other(c, _) => panic!("unexpected code {c}"),
        }
        if is_last {
            assert!(matches!(
                parse_event(line).unwrap().kind,
                EventKind::Exit(_)
            ));
        }
    }
    (out, input, truncated)
}

/// The events, sent as datagrams of `framing`, carry the file exactly, chunk after chunk,
/// each whole within max_message; and the reassembler rebuilds it from the datagrams.
fn check_chunks(rec: &Recording, framing: Framing) {
    let f = framer(framing);
    let now = OffsetDateTime::from_unix_timestamp(1_795_626_901).unwrap();
    let mut re = Reassembler::new(ID);
    let mut rebuilt = Vec::new();
    let mut hash = Sha256::new();
    for (i, e) in rec.events.iter().enumerate() {
        let whole = f.render_whole(e, now).expect("a chunk fits one datagram");
        // Sent as it is: the framer never had to shorten it.
        assert_eq!(f.render(e, now), whole);
        let line = String::from_utf8(whole).unwrap();
        let Some(Ok(record)) = parse_line(&line) else {
            panic!("datagram {i} does not parse back: {line}")
        };
        let jit_session::Record::Chunk { chunk, .. } = &record else {
            panic!("not a chunk")
        };
        assert_eq!(chunk.seq, i as u64);
        assert_eq!(chunk.offset, rebuilt.len() as u64);
        assert_eq!(chunk.last, i == rec.events.len() - 1);
        for l in &chunk.lines {
            rebuilt.extend_from_slice(l.as_bytes());
            rebuilt.push(b'\n');
            hash.update(l.as_bytes());
            hash.update(b"\n");
        }
        assert_eq!(chunk.sha256, hash.hex());
        re.add(
            record,
            Source {
                file: "dgrams".into(),
                line: i + 1,
            },
        );
    }
    assert_eq!(rebuilt, rec.file);
    assert_eq!(rec.summary.sha256, hash.hex());
    assert_eq!(rec.summary.size, rec.file.len() as u64);
    assert_eq!(rec.summary.chunks, rec.events.len() as u64);
    let done = re.finish();
    assert!(done.complete, "{:?}", done.problems);
    assert_eq!(done.bytes, rec.file);
    assert_eq!(done.sha256, rec.summary.sha256);
}

#[test]
fn plain_session_round_trips() {
    let calls = [
        Call::Out(b"$ ".to_vec()),
        Call::In(b"ls\r".to_vec()),
        Call::Out(b"ls\r\n\x1b[01;34mdir\x1b[0m  file\r\n$ ".to_vec()),
        Call::Resize(120, 40),
        Call::Out("caf\u{e9} \u{1f600}\r\n".as_bytes().to_vec()),
    ];
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let rec = record(&calls, 1 << 20, OnLimit::End, framing);
        let (out, input, truncated) = check_file(&rec.file);
        assert_eq!(
            out,
            "$ ls\r\n\u{1b}[01;34mdir\u{1b}[0m  file\r\n$ caf\u{e9} \u{1f600}\r\n"
        );
        assert_eq!(input, "ls\r");
        assert!(!truncated && !rec.limit_seen && !rec.summary.truncated);
        let text = String::from_utf8(rec.file.clone()).unwrap();
        assert!(text.contains("[0.021000, \"r\", \"120x40\"]\n"), "{text}");
        assert!(text.ends_with("[3600.000000, \"x\", \"130\"]\n"), "{text}");
        check_chunks(&rec, framing);
    }
}

#[test]
fn utf8_split_across_reads_is_kept_and_invalid_bytes_are_counted() {
    let s = "€😀é".as_bytes();
    let mut calls: Vec<Call> = s.iter().map(|b| Call::Out(vec![*b])).collect();
    calls.push(Call::Out(b"\xff\xfeok\xe2\x82".to_vec()));
    calls.push(Call::Out(b"x\xf0\x9f".to_vec())); // left incomplete at the end
    let rec = record(&calls, 1 << 20, OnLimit::End, Framing::Cee);
    let (out, _, _) = check_file(&rec.file);
    assert_eq!(out, "€😀é\u{fffd}\u{fffd}ok\u{fffd}x\u{fffd}");
    assert_eq!(rec.summary.replaced_bytes, 2 + 2 + 2);
    check_chunks(&rec, Framing::Cee);
}

#[test]
fn nul_escapes_and_every_byte() {
    let all: Vec<u8> = (0..=255u8).collect();
    let calls = vec![
        Call::Out(all.clone()),
        Call::Out(b"\0\0\x1b]0;title\x07\x1b[2J\x1b[?1049h\"\\]\r\n".to_vec()),
        Call::Out("\u{2028}\u{2029}\u{202e}\u{feff}\u{85}".as_bytes().to_vec()),
    ];
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let rec = record(&calls, 1 << 20, OnLimit::End, framing);
        let (out, _, _) = check_file(&rec.file);
        let mut want = String::from_utf8_lossy(&all).into_owned();
        want.push_str("\0\0\u{1b}]0;title\u{7}\u{1b}[2J\u{1b}[?1049h\"\\]\r\n");
        want.push_str("\u{2028}\u{2029}\u{202e}\u{feff}\u{85}");
        assert_eq!(out, want);
        check_chunks(&rec, framing);
    }
}

#[test]
fn long_output_is_split_into_lines_that_fit_a_datagram() {
    // The worst escaping there is: backslashes and quotes (4 bytes each in RFC 5424).
    let nasty = b"\\\"]".repeat(40_000);
    // And none at all: a long run of plain text is cut into many lines.
    let plain = b"x".repeat(300_000);
    let calls = vec![
        Call::Out(nasty.clone()),
        Call::Out(vec![0x1b; 30_000]),
        Call::Out(plain.clone()),
    ];
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let rec = record(&calls, 1 << 24, OnLimit::End, framing);
        let (out, _, _) = check_file(&rec.file);
        assert_eq!(out.len(), nasty.len() + 30_000 + plain.len());
        assert!(out.ends_with(std::str::from_utf8(&plain).unwrap()));
        assert!(rec.events.len() > 20);
        check_chunks(&rec, framing);
    }
}

#[test]
fn the_cap_truncates_with_a_marker_and_still_ends_the_file() {
    for on_limit in [OnLimit::End, OnLimit::Truncate] {
        let calls: Vec<Call> = (0..200)
            .map(|i| Call::Out(format!("line {i} {}\r\n", "x".repeat(900)).into_bytes()))
            .collect();
        let max = 65_536;
        let rec = record(&calls, max, on_limit, Framing::Rfc5424);
        assert!(rec.file.len() as u64 <= max, "{} > {max}", rec.file.len());
        assert!(rec.file.len() as u64 > max - 2048, "the cap is used up");
        let (out, _, truncated) = check_file(&rec.file);
        assert!(truncated && rec.limit_seen && rec.summary.truncated);
        assert!(out.starts_with("line 0 "));
        let total: usize = calls
            .iter()
            .map(|c| match c {
                Call::Out(b) => b.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(out.len() as u64 + rec.summary.dropped_bytes, total as u64);
        let text = String::from_utf8(rec.file.clone()).unwrap();
        let marker = match on_limit {
            OnLimit::End => "reached; the command is ended",
            OnLimit::Truncate => "reached; what follows is not recorded",
        };
        assert!(text.contains(&format!("(65536 bytes) {marker}")), "{text}");
        check_chunks(&rec, Framing::Rfc5424);
    }
}

#[test]
fn a_huge_stream_is_capped_without_breaking_anything() {
    // 2 GiB of output through a 1 MiB cap, in 64 KiB reads.
    let opts = Options {
        max_bytes: 1 << 20,
        on_limit: OnLimit::Truncate,
        framer: framer(Framing::Cee),
    };
    let (mut rec, _) = Recorder::start(Vec::new(), &header(), session(), opts).unwrap();
    let block: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let reads = (2u64 << 30) / block.len() as u64;
    let mut events = 0;
    for i in 0..reads {
        events += rec.output(Duration::from_micros(i), &block).chunks.len();
    }
    let done = rec.finish(Duration::from_secs(1), 0);
    assert!(done.out.len() as u64 <= 1 << 20);
    assert!(events > 100);
    let (out, _, truncated) = check_file_status(&done.out, "0");
    assert!(truncated);
    assert!(done.summary.dropped_bytes > 2_000_000_000);
    assert!(out.len() > 100_000);
}

fn check_file_status(file: &[u8], status: &str) -> (String, String, bool) {
    let text = std::str::from_utf8(file)
        .unwrap()
        .replace(&format!("\"x\", \"{status}\"]\n"), "\"x\", \"130\"]\n");
    check_file(text.as_bytes())
}

#[test]
fn datagrams_too_small_or_a_tiny_cap_refuse_to_start() {
    let mut f = framer(Framing::Rfc5424);
    f.max_message = 2048;
    let opts = Options {
        max_bytes: 1 << 20,
        on_limit: OnLimit::End,
        framer: f,
    };
    let err = Recorder::start(Vec::new(), &header(), session(), opts)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            RecordError::MessageTooSmall {
                max_message: 2048,
                ..
            }
        ),
        "{err}"
    );
    let opts = Options {
        max_bytes: 600,
        on_limit: OnLimit::End,
        framer: framer(Framing::Cee),
    };
    let err = Recorder::start(Vec::new(), &header(), session(), opts)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("record.max_bytes = 600 is too small"),
        "{err}"
    );
}

/// A file that fails after some bytes (a full disk).
struct FullDisk {
    written: Vec<u8>,
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let n = buf.len().min(self.room);
        self.written.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_write_error_is_reported_once_and_the_chunks_go_on() {
    let opts = Options {
        max_bytes: 1 << 20,
        on_limit: OnLimit::End,
        framer: framer(Framing::Cee),
    };
    let disk = FullDisk {
        written: Vec::new(),
        room: 2000,
    };
    let (mut rec, first) = Recorder::start(disk, &header(), session(), opts).unwrap();
    let mut events = first.chunks;
    let mut errors = 0;
    for i in 0..50u64 {
        let step = rec.output(
            Duration::from_millis(i),
            format!("{i:04} {}\n", "y".repeat(100)).as_bytes(),
        );
        errors += usize::from(step.write_error.is_some());
        events.extend(step.chunks);
    }
    assert_eq!(errors, 1);
    let done = rec.finish(Duration::from_secs(1), 0);
    events.extend(done.step.chunks);
    assert!(!done.summary.file_complete);
    assert_eq!(done.out.written.len(), 2000);
    // The events still carry everything, and rebuild a recording with the exit.
    let mut re = Reassembler::new(ID);
    for (i, e) in events.iter().enumerate() {
        let line = e.to_json_string();
        re.add(
            parse_line(&line).unwrap().unwrap(),
            Source {
                file: "x".into(),
                line: i,
            },
        );
    }
    let rebuilt = re.finish();
    assert!(rebuilt.complete);
    assert_eq!(rebuilt.sha256, done.summary.sha256);
    assert!(rebuilt.bytes.starts_with(&done.out.written));
    assert!(String::from_utf8(rebuilt.bytes)
        .unwrap()
        .contains("0049 yyy"));
    // A header that cannot be written refuses the start.
    let opts = Options {
        max_bytes: 1 << 20,
        on_limit: OnLimit::End,
        framer: framer(Framing::Cee),
    };
    let full = FullDisk {
        written: Vec::new(),
        room: 10,
    };
    let err = Recorder::start(full, &header(), session(), opts)
        .err()
        .unwrap();
    assert!(matches!(err, RecordError::Write(_)), "{err}");
}

/// xorshift64*: reproducible streams without another crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    const PIECES: [&[u8]; 10] = [
        b"\x1b[31m",
        b"\\",
        b"\"",
        b"]",
        b"\0",
        b"\r\n",
        "€".as_bytes(),
        "😀".as_bytes(),
        b"\xff",
        b"\xe2\x82",
    ];
    let n = rng.below(3000) as usize;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        match rng.below(4) {
            0 => v.push(rng.below(256) as u8),
            1 => v.extend_from_slice(PIECES[rng.below(PIECES.len() as u64) as usize]),
            _ => v.push(b'a' + rng.below(26) as u8),
        }
    }
    v
}

#[test]
fn random_hostile_streams_always_give_a_well_formed_recording() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let calls: Vec<Call> = (0..rng.below(40))
            .map(|_| match rng.below(10) {
                0 => Call::In(random_bytes(&mut rng)),
                1 => Call::Resize(rng.below(500) as u16, rng.below(200) as u16),
                _ => Call::Out(random_bytes(&mut rng)),
            })
            .collect();
        let framing = if round % 2 == 0 {
            Framing::Cee
        } else {
            Framing::Rfc5424
        };
        let on_limit = if round % 3 == 0 {
            OnLimit::Truncate
        } else {
            OnLimit::End
        };
        let max_bytes = 4096 + rng.below(120_000);
        let rec = record(&calls, max_bytes, on_limit, framing);
        assert!(rec.file.len() as u64 <= max_bytes);
        let (out, input, truncated) = check_file(&rec.file);
        let all_out: Vec<u8> = calls
            .iter()
            .flat_map(|c| match c {
                Call::Out(b) => b.clone(),
                _ => Vec::new(),
            })
            .collect();
        let all_in: Vec<u8> = calls
            .iter()
            .flat_map(|c| match c {
                Call::In(b) => b.clone(),
                _ => Vec::new(),
            })
            .collect();
        let want_out = String::from_utf8_lossy(&all_out);
        let want_in = String::from_utf8_lossy(&all_in);
        if truncated {
            assert!(want_out.starts_with(&out), "round {round}");
        } else {
            assert_eq!(out, want_out, "round {round}");
            assert_eq!(input, want_in, "round {round}");
        }
        check_chunks(&rec, framing);
    }
}
