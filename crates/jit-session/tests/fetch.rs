//! Reassembly from session.io events: a recording made by the real recorder, its chunks
//! dropped, duplicated, reordered or altered on the way; each case is named by its sequence
//! numbers, and only a whole, matching set of chunks counts as complete.

use jit_audit::session_io::SessionIo;
use jit_audit::{Event, Framer, Framing};
use jit_session::{
    parse_line, Header, OnLimit, Options, Reassembler, Rebuilt, Recorder, SessionInfo, Source,
};
use std::time::Duration;

const ID: &str = "0123456789abcdef0123456789abcdef";

fn record() -> (Vec<u8>, Vec<Event>, String) {
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 1_795_626_901,
        command: "/bin/bash -l".into(),
        session: SessionInfo {
            id: ID.into(),
            user: "alice".into(),
            ..SessionInfo::default()
        },
        ..Header::default()
    };
    let session = SessionIo {
        session_id: ID.into(),
        host: "h".into(),
        user: "alice".into(),
    };
    let opts = Options {
        max_bytes: 1 << 24,
        on_limit: OnLimit::End,
        framer: Framer::new(Framing::Cee, "jitrun", "h", 1),
    };
    let (mut rec, step) = Recorder::start(Vec::new(), &header, session, opts).unwrap();
    let mut events = step.chunks;
    for i in 0..40u64 {
        let text = format!("{i:03} {}\r\n", "z".repeat(i as usize * 300));
        events.extend(
            rec.output(Duration::from_millis(i * 100), text.as_bytes())
                .chunks,
        );
    }
    let done = rec.finish(Duration::from_secs(5), 0);
    events.extend(done.step.chunks);
    (done.out, events, done.summary.sha256)
}

/// The events as the lines of a log file (cee JSON objects), in the given order.
fn rebuild(events: &[&Event], extra: &[String]) -> Rebuilt {
    let mut re = Reassembler::new(ID);
    let lines: Vec<String> = events
        .iter()
        .map(|e| e.to_json_string())
        .chain(extra.iter().cloned())
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let at = Source {
            file: "events.json".into(),
            line: i + 1,
        };
        match parse_line(line) {
            Some(Ok(r)) => re.add(r, at),
            Some(Err(why)) => re.malformed(at, why),
            None => {}
        }
    }
    re.finish()
}

fn messages(r: &Rebuilt) -> Vec<String> {
    r.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn all_chunks_in_order_rebuild_the_file() {
    let (file, events, sha) = record();
    assert!(events.len() > 5, "{}", events.len());
    let r = rebuild(&events.iter().collect::<Vec<_>>(), &[]);
    assert!(r.complete && r.problems.is_empty(), "{:?}", messages(&r));
    assert_eq!(r.bytes, file);
    assert_eq!(r.sha256, sha);
    assert_eq!(r.chunks, events.len() as u64);
}

#[test]
fn reordered_and_duplicated_chunks_are_harmless_and_reported() {
    let (file, events, _) = record();
    let mut order: Vec<&Event> = events.iter().collect();
    order.swap(2, 4);
    order.push(&events[1]);
    let r = rebuild(&order, &[]);
    assert!(r.complete, "{:?}", messages(&r));
    assert_eq!(r.bytes, file);
    assert_eq!(
        messages(&r),
        [
            "chunk seq 3 (events.json:4) arrived after chunk seq 4; put back in order",
            "chunk seq 2 (events.json:5) arrived after chunk seq 4; put back in order",
            &format!(
                "chunk seq 1 appears twice (events.json:2 and events.json:{}); the copy is ignored",
                events.len() + 1
            ),
        ]
    );
}

#[test]
fn missing_chunks_are_named_and_the_rest_still_plays() {
    let (file, events, _) = record();
    let order: Vec<&Event> = events
        .iter()
        .enumerate()
        .filter(|(i, _)| ![3, 5, 6].contains(i))
        .map(|(_, e)| e)
        .collect();
    let r = rebuild(&order, &[]);
    assert!(!r.complete);
    assert_eq!(
        messages(&r),
        ["chunk seq 3 is missing", "chunks seq 5 to 6 are missing"]
    );
    assert!(r.bytes.len() < file.len());
    // The partial file is still asciicast: header, events, a marker at each gap.
    let text = String::from_utf8(r.bytes).unwrap();
    let markers: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"m\", \"jitctl sessions fetch:"))
        .collect();
    assert_eq!(markers.len(), 2, "{text}");
    assert!(markers[0].contains("chunk seq 3 is missing here (bytes "));
    for line in text.lines().skip(1) {
        jit_session::cast::parse_event(line).unwrap();
    }
    // A lost first chunk: a stand-in header.
    let r = rebuild(&events[1..].iter().collect::<Vec<_>>(), &[]);
    assert_eq!(messages(&r), ["chunk seq 0 is missing"]);
    let first = String::from_utf8(r.bytes).unwrap();
    jit_session::cast::parse_header(first.lines().next().unwrap()).unwrap();
}

#[test]
fn a_cut_recording_has_no_final_chunk() {
    let (_, events, _) = record();
    let n = events.len();
    let r = rebuild(&events[..n - 2].iter().collect::<Vec<_>>(), &[]);
    assert_eq!(
        messages(&r),
        [format!(
            "no final chunk: the recording ends after chunk seq {} (the session is still running, or the rest was lost)",
            n - 3
        )]
    );
    assert!(!r.complete);
}

#[test]
fn altered_or_forged_chunks_do_not_match_their_hash() {
    let (_, events, sha) = record();
    // One character of output changed in chunk 2 (the hash no longer matches).
    let mut altered = events.clone();
    let jit_audit::Value::List(lines) = altered[2]
        .get(jit_audit::session_io::LINES)
        .cloned()
        .unwrap()
    else {
        panic!()
    };
    let changed: Vec<String> = lines.iter().map(|l| l.replacen('z', "Z", 1)).collect();
    altered[2].list(jit_audit::session_io::LINES, changed);
    let r = rebuild(&altered.iter().collect::<Vec<_>>(), &[]);
    assert_eq!(
        messages(&r),
        ["chunk seq 2 (events.json:3) does not match its SHA-256: the recording was altered before or in this chunk"]
    );
    // A second, different chunk 2 besides the real one: a conflict; the matching one is used.
    let mut both: Vec<&Event> = events.iter().collect();
    both.insert(3, &altered[2]);
    let r = rebuild(&both, &[]);
    assert_eq!(
        messages(&r),
        ["chunk seq 2 appears twice with different content (events.json:3 and events.json:4): one of them is not jitrun's"]
    );
    assert!(!r.complete);
    assert_eq!(r.sha256, sha);
}

#[test]
fn elevate_end_totals_are_checked_and_other_sessions_ignored() {
    let (file, events, sha) = record();
    let all: Vec<&Event> = events.iter().collect();
    let end = |size: usize, hash: &str| {
        format!(
            r#"{{"event":{{"action":"elevate.end"}},"jitrun":{{"session_id":"{ID}","recording":{{"size":{size},"hash":{{"sha256":"{hash}"}}}}}}}}"#
        )
    };
    let r = rebuild(&all, &[end(file.len(), &sha)]);
    assert!(r.complete && r.end_seen, "{:?}", messages(&r));
    let r = rebuild(&all, &[end(file.len() + 1, &"0".repeat(64))]);
    assert!(!r.complete);
    assert_eq!(messages(&r).len(), 2);
    assert!(messages(&r)[0].starts_with("elevate.end gives the recording's size as"));
    // Another session's chunks and unrelated lines change nothing.
    let other = events[1].to_json_string().replace(ID, &"f".repeat(32));
    let r = rebuild(
        &all,
        &[
            other,
            "not json".into(),
            r#"{"event":{"action":"elevate.start"}}"#.into(),
        ],
    );
    assert!(r.complete && r.problems.is_empty());
    // A session.io event of this session that cannot be read is reported.
    let broken = format!(
        r#"{{"event":{{"action":"session.io"}},"jitrun":{{"session_id":"{ID}","recording":{{"seq":1}}}}}}"#
    );
    let r = rebuild(&all, &[broken]);
    assert!(!r.complete);
    assert!(
        messages(&r)[0].contains("unreadable session.io event"),
        "{:?}",
        messages(&r)
    );
    // Nothing at all.
    let r = rebuild(&[], &[]);
    assert_eq!(
        messages(&r),
        ["no session.io event of this session was found"]
    );
}
