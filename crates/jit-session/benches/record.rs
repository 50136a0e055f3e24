//! In-process micro-benchmarks of session recording (issue 18): what the supervisor does with
//! every block a recorded command writes. `record` is the recorder alone (UTF-8, the asciicast
//! lines, their `session.io` chunks, SHA-256, the write to a file); `record_and_render` adds
//! rendering each chunk's datagram as the audit sink sends it (`cee` framing). The input is 1 MiB
//! of the text `make bench` records (lines of 99 printable characters, `"` and `\` included),
//! read in blocks of 64 KiB or 256 KiB (the relay's largest read).
//!
//! `cargo bench -p jit-session` (add `-- record` etc. to filter).

use divan::{black_box, Bencher};
use jit_audit::session_io::SessionIo;
use jit_audit::{Event, Framer, Framing};
use jit_session::{Header, OnLimit, Options, Recorder};
use std::io::sink;
use std::time::Duration;
use time::OffsetDateTime;

fn main() {
    divan::main();
}

const SIZE: usize = 1024 * 1024;

/// `make bench`'s text: lines of 99 printable characters (33..=126 in turn) and a newline.
fn text() -> Vec<u8> {
    let line: Vec<u8> = (0..99u8).map(|i| 33 + i % 94).chain([b'\n']).collect();
    line.iter().copied().cycle().take(SIZE).collect()
}

fn framer() -> Framer {
    Framer::new(Framing::Cee, "jitrun", "web-01", 4242)
}

fn recorder() -> Recorder<std::io::Sink> {
    let session = SessionIo {
        session_id: "4f6c2a9e0d3b41c7a8e25f1b9c07d3e6".into(),
        host: "web-01".into(),
        user: "alice".into(),
    };
    let header = Header {
        width: 80,
        height: 24,
        timestamp: 1_795_626_901,
        command: "/usr/bin/cat /var/cache/big.txt".into(),
        ..Header::default()
    };
    let options = Options {
        max_bytes: u64::MAX / 2,
        on_limit: OnLimit::End,
        framer: framer(),
    };
    let (rec, _) = Recorder::start(sink(), &header, session, options).expect("a recorder");
    rec
}

/// Every block of `data` through `rec`, as the relay reads it; `send` gets each chunk's event.
fn feed(
    mut rec: Recorder<std::io::Sink>,
    data: &[u8],
    read: usize,
    mut send: impl FnMut(&Event),
) -> Recorder<std::io::Sink> {
    for (i, block) in data.chunks(read).enumerate() {
        let step = rec.output(Duration::from_millis(i as u64), block);
        step.chunks.iter().for_each(&mut send);
    }
    rec
}

#[divan::bench(args = [64 * 1024, 256 * 1024], sample_count = 20)]
fn record(bencher: Bencher, read: usize) {
    let data = text();
    bencher
        .counter(divan::counter::BytesCount::new(SIZE))
        .with_inputs(recorder)
        .bench_local_values(|rec| {
            feed(rec, &data, read, |e| {
                black_box(e);
            })
        });
}

#[divan::bench(args = [64 * 1024, 256 * 1024], sample_count = 20)]
fn record_and_render(bencher: Bencher, read: usize) {
    let data = text();
    let framer = framer();
    let now = OffsetDateTime::from_unix_timestamp(1_795_626_901).expect("a time");
    bencher
        .counter(divan::counter::BytesCount::new(SIZE))
        .with_inputs(recorder)
        .bench_local_values(|rec| {
            feed(rec, &data, read, |e| {
                black_box(framer.render(e, now));
            })
        });
}
