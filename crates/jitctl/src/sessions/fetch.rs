//! `jitctl sessions fetch ID --from FILE… [-o OUT] [--partial] [--force]`: a recording
//! rebuilt from the `session.io` events syslog kept (docs/audit.md, "Session recordings").
use super::valid_id;
use crate::cli::SessionsFetchArgs;
use crate::error::{io_error, CliError, Result};
use jit_session::{parse_line, Reassembler, Rebuilt, Source};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn run(args: &SessionsFetchArgs) -> Result<i32> {
    if !valid_id(&args.session) {
        return Err(CliError(format!(
            "{:?} is not a session id (32 lowercase hex digits, jitrun.session_id of the audit events)",
            args.session
        )));
    }
    let out_path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.cast", args.session)));
    let mut re = Reassembler::new(&args.session);
    for input in &args.from {
        read_input(input, &args.session, &mut re)?;
    }
    let rebuilt = re.finish();
    for p in &rebuilt.problems {
        eprintln!("jitctl: {p}");
    }
    if rebuilt.complete || args.partial {
        write_output(&out_path, &rebuilt.bytes, args.force)?;
    }
    report(&rebuilt, &out_path, args.partial);
    Ok(if rebuilt.complete { 0 } else { 1 })
}

/// Feed every line of `input` that mentions the session to the reassembler.
fn read_input(input: &Path, session: &str, re: &mut Reassembler) -> Result<()> {
    let name = input.display().to_string();
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let f = File::open(input).map_err(|e| io_error("cannot read", input, &e))?;
        Box::new(BufReader::new(f))
    };
    let mut buf = Vec::new();
    let mut reader = reader;
    let mut line = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| io_error("cannot read", input, &e))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        // Most lines are other events: skip them before parsing any JSON.
        if !contains(&buf, session.as_bytes()) {
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let at = Source {
            file: name.clone(),
            line,
        };
        match parse_line(&text) {
            Some(Ok(record)) => re.add(record, at),
            Some(Err(why)) => re.malformed(at, why),
            None => {}
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn write_output(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    if path == Path::new("-") {
        let mut out = io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| {
                CliError(format!(
                    "cannot write the recording to standard output: {e}"
                ))
            });
    }
    // Recordings are as private as the directory jitrun keeps them in: 0600.
    let mut opts = OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            CliError(format!(
                "{} exists; choose another file with -o, or --force to replace it",
                path.display()
            ))
        } else {
            io_error("cannot write", path, &e)
        }
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error("cannot write", path, &e))
}

fn report(r: &Rebuilt, path: &Path, partial: bool) {
    let checked = if r.end_seen {
        "the final chunk's SHA-256 and elevate.end's size and SHA-256"
    } else {
        "the final chunk's SHA-256"
    };
    if r.complete {
        println!(
            "rebuilt {} from {} chunks: {} bytes, SHA-256 {} (matches {checked})",
            path.display(),
            r.chunks,
            r.bytes.len(),
            r.sha256
        );
    } else if partial {
        println!(
            "wrote what could be rebuilt to {} ({} chunks, {} bytes): INCOMPLETE, see above",
            path.display(),
            r.chunks,
            r.bytes.len()
        );
    } else {
        eprintln!(
            "jitctl: the recording could not be rebuilt whole ({} problem(s) above); nothing written (--partial writes what there is)",
            r.problems.iter().filter(|p| !p.is_harmless()).count()
        );
    }
}
