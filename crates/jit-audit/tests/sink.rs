//! The datagram sink against a real unix datagram socket.
use jit_audit::{Event, EventType, Framer, Framing, SyslogSink};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// A fresh private directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("jit-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn recv(sock: &UnixDatagram) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn sends_the_exact_bytes() {
    let dir = TempDir::new("send");
    let path = dir.0.join("log");
    let server = UnixDatagram::bind(&path).unwrap();
    let sink = SyslogSink::connect(&path).unwrap();
    assert_eq!(sink.path(), path);

    let mut e = Event::new(EventType::ElevateStart);
    e.str("user.name", "alice")
        .bytes_list("process.args", [&b"ls"[..], b"a\nb\xff"]);
    for framing in [Framing::Cee, Framing::Rfc5424] {
        let datagram =
            Framer::new(framing, "jitrun", "h", 1).render(&e, time::OffsetDateTime::now_utc());
        sink.send(&datagram).unwrap();
        assert_eq!(recv(&server), datagram);
    }
    // a large (but permitted) datagram goes out whole
    let big = vec![b'x'; 60_000];
    sink.send(&big).unwrap();
    assert_eq!(recv(&server), big);
}

#[test]
fn missing_socket_names_the_path() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("no-such-log");
    let err = SyslogSink::connect(&path).unwrap_err();
    assert_eq!(err.path(), path);
    let msg = err.to_string();
    assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(msg.contains("is the syslog daemon running?"), "{msg}");
}

#[test]
fn reconnects_after_the_daemon_restarts() {
    let dir = TempDir::new("restart");
    let path = dir.0.join("log");
    let server = UnixDatagram::bind(&path).unwrap();
    let sink = SyslogSink::connect(&path).unwrap();
    sink.send(b"one").unwrap();
    assert_eq!(recv(&server), b"one");
    drop(server);
    std::fs::remove_file(&path).unwrap();
    let server = UnixDatagram::bind(&path).unwrap();
    sink.send(b"two").unwrap();
    assert_eq!(recv(&server), b"two");
}

#[test]
fn gone_daemon_is_an_error_naming_the_path() {
    let dir = TempDir::new("gone");
    let path = dir.0.join("log");
    let server = UnixDatagram::bind(&path).unwrap();
    let sink = SyslogSink::connect(&path).unwrap();
    drop(server);
    std::fs::remove_file(&path).unwrap();
    let err = sink.send(b"lost").unwrap_err();
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn full_queue_times_out_with_an_error() {
    let dir = TempDir::new("full");
    let path = dir.0.join("log");
    let _server = UnixDatagram::bind(&path).unwrap();
    let sink = SyslogSink::connect(&path).unwrap();
    // Nobody reads: the receive queue fills, then sends block, time out and are retried a
    // few times before the error comes back (bounded: no hang).
    let datagram = vec![b'q'; 4096];
    let err = loop {
        if let Err(e) = sink.send(&datagram) {
            break e;
        }
    };
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let jit_audit::AuditError::Socket { source, .. } = &err;
    assert!(
        matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

/// Every datagram names the sender's pid and effective uid/gid (SCM_CREDENTIALS): the receiver
/// sees them once it asks (SO_PASSCRED), as rsyslog's imuxsock and journald do.
#[test]
fn datagrams_carry_the_effective_credentials() {
    use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    let dir = TempDir::new("creds");
    let path = dir.0.join("log");
    let server = UnixDatagram::bind(&path).unwrap();
    setsockopt(&server, sockopt::PassCred, &true).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let sink = SyslogSink::connect(&path).unwrap();
    sink.send(b"<85>Nov 25 17:15:01 jitrun[1]: @cee:{}")
        .unwrap();

    let mut buf = vec![0u8; 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(libc::ucred);
    let msg = recvmsg::<()>(
        server.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let creds: Vec<_> = msg
        .cmsgs()
        .unwrap()
        .filter_map(|c| match c {
            ControlMessageOwned::ScmCredentials(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(creds.len(), 1, "one SCM_CREDENTIALS message");
    assert_eq!(creds[0].pid(), nix::unistd::getpid().as_raw());
    assert_eq!(creds[0].uid(), nix::unistd::geteuid().as_raw());
    assert_eq!(creds[0].gid(), nix::unistd::getegid().as_raw());
}
