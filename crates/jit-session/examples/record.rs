//! A real producer for the tests of the recording data plane (tests/session/): runs a
//! command with its standard output on a pipe, feeds every read to the [`Recorder`] as the pty
//! relay will, writes the asciicast file, and sends each `session.io` event to a syslog
//! socket with jit-audit's own sink, exactly as jitrun sends its events. Test-only: it is
//! not installed, and it elevates nothing.
//!
//! ```text
//! record --out FILE --socket PATH [--framing cee|rfc5424] [--sd-id ID] [--session-id ID]
//!        [--user NAME] [--max-bytes N] [--on-limit end|truncate] [--read-size N] -- CMD [ARG]...
//! ```
//!
//! Prints one JSON object: the recording's size, SHA-256, chunks and the datagrams sent.
use jit_audit::session_io::SessionIo;
use jit_audit::{Framer, Framing, SyslogSink, DEFAULT_SD_ID};
use jit_session::{command_line, Header, OnLimit, Options, Recorder, SessionInfo, Step};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Args {
    out: PathBuf,
    socket: PathBuf,
    framing: Framing,
    sd_id: String,
    session_id: String,
    user: String,
    max_bytes: u64,
    on_limit: OnLimit,
    read_size: usize,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        socket: PathBuf::new(),
        framing: Framing::Cee,
        sd_id: DEFAULT_SD_ID.to_owned(),
        session_id: "0123456789abcdef0123456789abcdef".to_owned(),
        user: "tester".to_owned(),
        max_bytes: 1 << 30,
        on_limit: OnLimit::End,
        read_size: 4096,
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--" {
            a.command = it.by_ref().collect();
            break;
        }
        let value = it.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--out" => a.out = value.into(),
            "--socket" => a.socket = value.into(),
            "--framing" => a.framing = value.parse()?,
            "--sd-id" => a.sd_id = value,
            "--session-id" => a.session_id = value,
            "--user" => a.user = value,
            "--max-bytes" => a.max_bytes = value.parse().map_err(|e| format!("{e}"))?,
            "--on-limit" => {
                a.on_limit = match value.as_str() {
                    "end" => OnLimit::End,
                    "truncate" => OnLimit::Truncate,
                    _ => return Err("--on-limit end|truncate".into()),
                }
            }
            "--read-size" => a.read_size = value.parse().map_err(|e| format!("{e}"))?,
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    if a.command.is_empty() || a.out.as_os_str().is_empty() || a.socket.as_os_str().is_empty() {
        return Err("usage: record --out FILE --socket PATH [options] -- CMD [ARG]...".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("record: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let sink = SyslogSink::connect(&a.socket).map_err(|e| e.to_string())?;
    let mut framer = Framer::new(a.framing, "jitrun", "jitlab-session", std::process::id());
    framer.sd_id = a.sd_id.clone();
    let mut sent = 0u64;
    let mut send = |step: &Step| -> Result<(), String> {
        for e in &step.chunks {
            let datagram = framer.render(e, time::OffsetDateTime::now_utc());
            sink.send(&datagram).map_err(|e| e.to_string())?;
            sent += 1;
        }
        match &step.write_error {
            Some(e) => Err(format!("writing the recording failed: {e}")),
            None => Ok(()),
        }
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&a.out)
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let header = Header {
        width: 80,
        height: 24,
        timestamp: now.as_secs() as i64,
        command: command_line(&a.command),
        term: std::env::var("TERM").ok(),
        shell: std::env::var("SHELL").ok(),
        session: SessionInfo {
            id: a.session_id.clone(),
            host: "jitlab-session".into(),
            user: a.user.clone(),
            uid: 1000,
            run_as: "root".into(),
            rule: "example".into(),
            input: false,
        },
    };
    let session = SessionIo {
        session_id: a.session_id.clone(),
        host: "jitlab-session".into(),
        user: a.user.clone(),
    };
    let options = Options {
        max_bytes: a.max_bytes,
        on_limit: a.on_limit,
        framer: framer.clone(),
    };
    let (mut rec, step) =
        Recorder::start(file, &header, session, options).map_err(|e| e.to_string())?;
    send(&step)?;
    let started = Instant::now();
    let mut child = Command::new(&a.command[0])
        .args(&a.command[1..])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", a.command[0]))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut buf = vec![0u8; a.read_size.max(1)];
    loop {
        let n = out.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        let step = rec.output(started.elapsed(), &buf[..n]);
        send(&step)?;
        if step.limit_reached && a.on_limit == OnLimit::End {
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let done = rec.finish(started.elapsed(), code);
    send(&done.step)?;
    done.out.sync_all().map_err(|e| e.to_string())?;
    let s = &done.summary;
    println!(
        "{}",
        serde_json::json!({
            "session_id": a.session_id,
            "size": s.size,
            "sha256": s.sha256,
            "chunks": s.chunks,
            "datagrams": sent,
            "truncated": s.truncated,
            "dropped_bytes": s.dropped_bytes,
            "replaced_bytes": s.replaced_bytes,
            "exit_status": code,
        })
    );
    Ok(())
}
