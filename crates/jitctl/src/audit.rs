//! `jitctl audit flush`: send jitrun's spooled audit events (kept while the syslog socket was
//! missing or full) in order, each once. jitrun does the same at the start of its next run;
//! this is for hosts where no run comes soon, and for monitoring (exit 1 while events wait).
use crate::cli::FlushArgs;
use crate::error::{io_error, Result};
use jit_audit::{Spool, SyslogSink};
use jit_policy::Settings;

pub fn flush(args: &FlushArgs) -> Result<()> {
    // The spool is root-only: anyone else cannot open it, and is told to run this as root.
    let settings = match std::fs::read_to_string(&args.settings) {
        Ok(text) => Settings::parse(&args.settings.display().to_string(), &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
        Err(e) => return Err(io_error("cannot read", &args.settings, &e)),
    };
    let spool = match Spool::open(&args.spool) {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!("nothing to send: {} does not exist", args.spool.display());
            return Ok(());
        }
        Err(e) => return Err(format!("{e} (run jitctl audit flush as root)").into()),
    };
    let waiting = spool
        .pending()
        .map_err(|e| format!("{e} (run jitctl audit flush as root)"))?
        .len();
    if waiting == 0 {
        println!("nothing to send: {} is empty", args.spool.display());
        return Ok(());
    }
    let socket = std::path::Path::new(&settings.audit.socket);
    let sink = SyslogSink::connect(socket).map_err(|e| {
        format!(
            "{e}; {waiting} event(s) still wait in {}",
            args.spool.display()
        )
    })?;
    let sent = spool.flush(&sink).map_err(|e| e.to_string())?;
    let left = waiting.saturating_sub(sent);
    println!("sent {sent} spooled event(s) to {}", socket.display());
    if left > 0 {
        return Err(format!(
            "{left} event(s) still wait in {}: the socket stopped accepting them",
            args.spool.display()
        )
        .into());
    }
    Ok(())
}
