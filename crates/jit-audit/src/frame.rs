//! Rendering an event as one syslog datagram.
//!
//! # Framings
//!
//! * [`Framing::Cee`]: `<PRI>Mmm dd hh:mm:ss APP[PID]: @cee:{json}` — the RFC 3164 local form
//!   glibc's syslog(3) writes (local time, day padded with a space: `Nov  5`, no HOSTNAME),
//!   then the event as one nested JSON object ([`Event::to_json_string`]). No trailing newline.
//! * [`Framing::Rfc5424`]: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v" …] MSG`
//!   with TIMESTAMP in UTC with microseconds (`2026-11-25T17:15:01.123456Z`), MSGID = the event
//!   type, one SD-ELEMENT holding every field under its dotted name, and MSG a one-line human
//!   summary ([`summary`]; no BOM, so it is RFC 5424 `MSG-ANY`).
//!
//! PRI = facility authpriv (10) × 8 + [`crate::EventType::severity`].
//!
//! # Structured data
//!
//! * PARAM-NAME is the dotted field name. RFC 5424 allows at most 32 characters, so longer
//!   names use an alias from [`SD_ALIASES`]:
//!
//!   | field | SD-PARAM name |
//!   |---|---|
//!   | `process.thread.capabilities.effective` | `process.thread.caps.effective` |
//!
//!   A longer field name without an alias (none of the documented fields) becomes its first
//!   23 characters, `~`, and the 8 hex digits of the FNV-1a 32-bit hash of the full name
//!   (32 characters). Characters that SD-NAME forbids (`=`, space, `]`, `"`, non-printable,
//!   non-ASCII) become `_`. See [`sd_param_name`].
//! * PARAM-VALUE: strings as they are, integers in decimal, booleans `true`/`false`, lists as
//!   one JSON array (`["/usr/sbin/ip","link"]`); then `"`, `\` and `]` are escaped with a
//!   backslash (RFC 5424 §6.3.3). To keep every datagram on one line (a raw newline would let
//!   argv or a directory name forge a log line on newline-framed transports), control
//!   characters in string values (C0, DEL, C1, U+2028, U+2029) are written JSON-style
//!   (`\n`, `\t`, `\u001b`) — the exact value is always in the `@cee` framing, and list values
//!   (argv) are exact in both framings.
//! * HOSTNAME, APP-NAME, PROCID, MSGID: printable US-ASCII without spaces (anything else
//!   becomes `_`), at most 255/48/128/32 characters, `-` when empty.
//!
//! # Size
//!
//! A datagram never exceeds [`Framer::max_message`] bytes and an event is never split or
//! dropped. When too long, in this order (each step searches the least shortening that fits):
//! 1. the longest `process.args` entries are cut to a common length, but not below
//!    [`MIN_ARG_KEEP`] bytes (cut on a UTF-8 character boundary, never inside a `\\`/`\xNN`
//!    escape, `…[truncated N bytes]` appended, N = bytes removed) and `jitrun.args_truncated`
//!    is set to `true`;
//! 2. trailing arguments are replaced by one entry `…[truncated N more args, M bytes]`
//!    (`argv[0]` always stays);
//! 3. every other long string (and list entry) is cut the same way, longest first, except
//!    `event.action`, `event.kind` and `event.outcome`; `jitrun.fields_truncated` is set to `true`;
//! 4. only then is `argv[0]` cut below [`MIN_ARG_KEEP`] (the program is what a reader needs most);
//! 5. only if `max_message` is smaller than the fixed part of the event (header and field
//!    names, a few hundred bytes), the datagram is cut at `max_message` on a character
//!    boundary. Do not configure a value that small (RFC 5424 receivers accept at least 480).
use crate::event::{needs_unicode_escape, push_u_escape, write_json_list};
use crate::{Event, EventType, Value};
use std::borrow::Cow;
use std::str::FromStr;
use time::{OffsetDateTime, UtcOffset};

/// rsyslog's default maximum message size; a longer event is shortened by truncating the
/// longest `process.args` entries (marker `…[truncated N bytes]`, `jitrun.args_truncated` = true),
/// never split into two messages and never dropped.
///
/// rsyslog's `maxMessageSize` is documented as "8k" but its default is 8096 bytes of raw
/// message (checked against rsyslogd 8.2302: a longer datagram is cut there, which would
/// break the `@cee` JSON), so the whole datagram is kept within 8096 bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 8096;

/// The default SD-ID (the documentation enterprise number: deployments set their own).
pub const DEFAULT_SD_ID: &str = "jitrun@32473";

/// syslog facility authpriv.
pub const FACILITY_AUTHPRIV: u8 = 10;

/// RFC 5424 limit on SD-NAME (SD-ID and PARAM-NAME) length.
pub const SD_NAME_MAX: usize = 32;

/// SD-PARAM names for field names longer than [`SD_NAME_MAX`]: `(field, alias)`.
pub const SD_ALIASES: &[(&str, &str)] = &[(
    "process.thread.capabilities.effective",
    "process.thread.caps.effective",
)];

/// Size-limit step 1 does not cut an argument below this many bytes (see module doc).
pub const MIN_ARG_KEEP: usize = 64;

/// The command in the human summary is cut to this many bytes (the full argv is in the SD).
pub const SUMMARY_COMMAND_MAX: usize = 256;

/// Fields the size limit never shortens.
const PROTECTED: &[&str] = &["event.action", "event.kind", "event.outcome"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Cee,
    Rfc5424,
}

impl Framing {
    /// `cee` or `rfc5424` (the settings spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Cee => "cee",
            Framing::Rfc5424 => "rfc5424",
        }
    }
}

impl FromStr for Framing {
    type Err = String;
    fn from_str(s: &str) -> Result<Framing, String> {
        match s {
            "cee" => Ok(Framing::Cee),
            "rfc5424" => Ok(Framing::Rfc5424),
            _ => Err(format!(
                "unknown audit framing {s:?} (expected \"cee\" or \"rfc5424\")"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Framer {
    pub framing: Framing,
    /// `jitrun` or `jitbroker`.
    pub app_name: String,
    /// RFC 5424 HOSTNAME (the 3164 local form has none, as glibc's syslog(3)).
    pub hostname: String,
    pub pid: u32,
    pub sd_id: String,
    pub max_message: usize,
}

impl Framer {
    /// A framer with [`DEFAULT_SD_ID`] and [`DEFAULT_MAX_MESSAGE`].
    pub fn new(framing: Framing, app_name: &str, hostname: &str, pid: u32) -> Framer {
        Framer {
            framing,
            app_name: app_name.to_owned(),
            hostname: hostname.to_owned(),
            pid,
            sd_id: DEFAULT_SD_ID.to_owned(),
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }

    /// Whole datagram. `now` in UTC; the 3164 header uses local time (localtime_r), RFC 5424 uses
    /// RFC 3339 UTC with microseconds. The RFC 5424 MSG part is a one-line human summary.
    pub fn render(&self, event: &Event, now: OffsetDateTime) -> Vec<u8> {
        let local = match self.framing {
            Framing::Cee => local_offset(now),
            Framing::Rfc5424 => UtcOffset::UTC,
        };
        self.render_with_offset(event, now, local)
    }

    /// As [`Framer::render`], with the local UTC offset for the `cee` header given instead of
    /// taken from the C library (reproducible output; the RFC 5424 framing ignores it).
    pub fn render_with_offset(
        &self,
        event: &Event,
        now: OffsetDateTime,
        local_offset: UtcOffset,
    ) -> Vec<u8> {
        let prefix = self.prefix(event.kind, now, local_offset);
        fit(&prefix, event, self.max_message, |e| self.body(e))
    }

    /// The whole datagram, never shortened: `None` when it would be longer than
    /// [`Framer::max_message`]. For events that must arrive exactly as built or not at all
    /// (`session.io` chunks, which are sized with [`Framer::list_entry_len`] to fit).
    pub fn render_whole(&self, event: &Event, now: OffsetDateTime) -> Option<Vec<u8>> {
        let local = match self.framing {
            Framing::Cee => local_offset(now),
            Framing::Rfc5424 => UtcOffset::UTC,
        };
        let mut out = self.prefix(event.kind, now, local).into_bytes();
        out.extend_from_slice(self.body(event).as_bytes());
        (out.len() <= self.max_message).then_some(out)
    }

    /// How many bytes the string `s` takes as one entry of a list field in this framing
    /// (quotes and escapes included, the separating comma not): the JSON string literal
    /// for `cee`; for `rfc5424` that literal with `"`, `\` and `]` escaped once more. The
    /// header and every other field have a fixed size for a given event, so a datagram's
    /// length grows by exactly this (plus one comma after the first entry) per entry.
    pub fn list_entry_len(&self, s: &str) -> usize {
        // Counted, not rendered (a session recording sizes every line of it here): per
        // character, its JSON form, and in rfc5424 one more byte for each `"`, `\` and `]`
        // of that form.
        if let Some(len) = self.list_entry_len_plain(s) {
            return len;
        }
        let (mut json, mut sd) = (2, 2); // the quotes
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let run = crate::event::plain_ascii_prefix(&bytes[i..]);
            if run > 0 {
                json += run;
                if self.framing == Framing::Rfc5424 {
                    sd += bytes[i..i + run].iter().filter(|&&b| b == b']').count();
                }
                i += run;
                continue;
            }
            let c = s[i..].chars().next().expect("i is on a character boundary");
            i += c.len_utf8();
            let (j, extra) = match c {
                '"' | '\\' => (2, 2),
                '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => (2, 1),
                c if needs_unicode_escape(c) => (6, 1),
                ']' => (1, 1),
                c => (c.len_utf8(), 0),
            };
            json += j;
            sd += extra;
        }
        match self.framing {
            Framing::Cee => json,
            Framing::Rfc5424 => json + sd,
        }
    }

    /// [`Framer::list_entry_len`] of a string in which only `"` and `\` need escaping (no
    /// control character, no C1 control, no U+2028/U+2029: no 0x00-0x1f, 0x7f, and no lead
    /// byte 0xc2 or 0xe2, which is more than needed), as every line of a session recording
    /// is: whole-string counts the compiler vectorizes. None for any other string.
    fn list_entry_len_plain(&self, s: &str) -> Option<usize> {
        // One pass, in blocks whose per-byte counts fit a u8: a loop the compiler turns into
        // vector compares and adds.
        const BLOCK: usize = 128;
        let (mut escaped, mut brackets) = (0usize, 0usize);
        for block in s.as_bytes().chunks(BLOCK) {
            let (mut odd, mut esc, mut br) = (0u8, 0u8, 0u8);
            for &b in block {
                odd |= u8::from(b < 0x20) | u8::from(b == 0x7f) | u8::from(b == 0xc2);
                odd |= u8::from(b == 0xe2);
                esc += u8::from(b == b'"') + u8::from(b == b'\\');
                br += u8::from(b == b']');
            }
            if odd != 0 {
                return None;
            }
            escaped += usize::from(esc);
            brackets += usize::from(br);
        }
        let json = 2 + s.len() + escaped;
        Some(match self.framing {
            Framing::Cee => json,
            Framing::Rfc5424 => json + 2 + 2 * escaped + brackets,
        })
    }

    fn prefix(&self, kind: EventType, now: OffsetDateTime, local_offset: UtcOffset) -> String {
        match self.framing {
            Framing::Cee => self.cee_prefix(kind, now.to_offset(local_offset)),
            Framing::Rfc5424 => self.rfc5424_prefix(kind, now),
        }
    }

    fn body(&self, e: &Event) -> String {
        match self.framing {
            Framing::Cee => e.to_json_string(),
            Framing::Rfc5424 => {
                let mut s = self.structured_data(e);
                s.push(' ');
                s.push_str(&summary(e));
                s
            }
        }
    }

    fn pri(&self, kind: EventType) -> u8 {
        FACILITY_AUTHPRIV * 8 + kind.severity().code()
    }

    fn cee_prefix(&self, kind: EventType, local: OffsetDateTime) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        // The RFC 3164 TAG: no spaces, and none of `[`, `]`, `:` that delimit it.
        let tag = sanitize_ascii(&self.app_name, 48, |c| !matches!(c, '[' | ']' | ':'));
        format!(
            "<{}>{} {:>2} {:02}:{:02}:{:02} {}[{}]: @cee:",
            self.pri(kind),
            MONTHS[usize::from(u8::from(local.month())) - 1],
            local.day(),
            local.hour(),
            local.minute(),
            local.second(),
            tag,
            self.pid
        )
    }

    fn rfc5424_prefix(&self, kind: EventType, now: OffsetDateTime) -> String {
        let t = now.to_offset(UtcOffset::UTC);
        format!(
            "<{}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z {} {} {} {} ",
            self.pri(kind),
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond(),
            sanitize_ascii(&self.hostname, 255, |_| true),
            sanitize_ascii(&self.app_name, 48, |_| true),
            sanitize_ascii(&self.pid.to_string(), 128, |_| true),
            sanitize_ascii(kind.as_str(), 32, |_| true),
        )
    }

    fn structured_data(&self, e: &Event) -> String {
        let mut out = String::with_capacity(512);
        out.push('[');
        out.push_str(&sd_id(&self.sd_id));
        for (key, value) in &e.fields {
            out.push(' ');
            out.push_str(&sd_param_name(key));
            out.push_str("=\"");
            match value {
                Value::Str(s) => sd_escape_into(&escape_controls(s), &mut out),
                Value::Int(i) => out.push_str(&i.to_string()),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::List(l) => {
                    let mut json = String::new();
                    write_json_list(l, &mut json);
                    sd_escape_into(&json, &mut out);
                }
            }
            out.push('"');
        }
        out.push(']');
        out
    }
}

/// The local UTC offset at `now`, from the C library's `localtime_r` (as glibc's syslog(3)),
/// through the `time` crate (UTC when the C library cannot say). The time zone comes from `TZ`
/// or /etc/localtime, read once per process by the C library. Sound in jitbroker's threads too:
/// `localtime_r` is thread-safe, and only a concurrent change of the environment could race
/// with it, which neither jitrun (it clears its environment before any thread or event) nor
/// jitbroker (it never writes its environment) does.
fn local_offset(now: OffsetDateTime) -> UtcOffset {
    UtcOffset::local_offset_at(now).unwrap_or(UtcOffset::UTC)
}

/// Printable US-ASCII (33..=126) that `extra` allows, others as `_`; at most `max` bytes;
/// `-` (NILVALUE) when empty.
fn sanitize_ascii(s: &str, max: usize, extra: impl Fn(char) -> bool) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_graphic() && extra(c);
    if s.is_empty() {
        return Cow::Borrowed("-");
    }
    if s.len() <= max && s.chars().all(ok) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if ok(c) { c } else { '_' })
            .take(max)
            .collect(),
    )
}

fn sd_name_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"')
}

/// The SD-ID: SD-NAME characters (others become `_`), at most 32; [`DEFAULT_SD_ID`] if empty.
pub fn sd_id(configured: &str) -> Cow<'_, str> {
    if configured.is_empty() {
        return Cow::Borrowed(DEFAULT_SD_ID);
    }
    if configured.len() <= SD_NAME_MAX && configured.chars().all(sd_name_char) {
        return Cow::Borrowed(configured);
    }
    Cow::Owned(
        configured
            .chars()
            .map(|c| if sd_name_char(c) { c } else { '_' })
            .take(SD_NAME_MAX)
            .collect(),
    )
}

/// The SD-PARAM name of a field: the dotted name, or its alias from [`SD_ALIASES`]; see the
/// module documentation for names that are longer still or hold forbidden characters.
pub fn sd_param_name(field: &str) -> Cow<'_, str> {
    if let Some((_, alias)) = SD_ALIASES.iter().find(|(f, _)| *f == field) {
        return Cow::Borrowed(alias);
    }
    let name: Cow<'_, str> = if field.is_empty() {
        Cow::Borrowed("_")
    } else if field.chars().all(sd_name_char) {
        Cow::Borrowed(field)
    } else {
        Cow::Owned(
            field
                .chars()
                .map(|c| if sd_name_char(c) { c } else { '_' })
                .collect(),
        )
    };
    if name.len() <= SD_NAME_MAX {
        return name;
    }
    // `name` is ASCII here, so byte slicing is on character boundaries.
    Cow::Owned(format!("{}~{:08x}", &name[..23], fnv1a32(field.as_bytes())))
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` get a backslash.
fn sd_escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Control characters (C0, DEL, C1, U+2028, U+2029) as JSON-style escapes; the rest as is.
fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_unicode_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_unicode_escape(c) => push_u_escape(c, &mut out),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(l) => l.join(","),
    }
}

/// A field as text, if set and not empty.
fn field(e: &Event, key: &str) -> Option<String> {
    e.get(key).map(text).filter(|s| !s.is_empty())
}

/// `process.executable` followed by `process.args[1..]` (ECS args start with argv[0]),
/// else the args alone; cut to [`SUMMARY_COMMAND_MAX`].
fn command(e: &Event) -> Option<String> {
    let exe = field(e, "process.executable");
    let args: Vec<String> = match e.get("process.args") {
        Some(Value::List(l)) => l.clone(),
        Some(other) => vec![text(other)],
        None => Vec::new(),
    };
    let mut words: Vec<&str> = Vec::with_capacity(args.len() + 1);
    match (&exe, args.split_first()) {
        (Some(exe), Some((_, rest))) => {
            words.push(exe);
            words.extend(rest.iter().map(String::as_str));
        }
        (Some(exe), None) => words.push(exe),
        (None, Some(_)) => words.extend(args.iter().map(String::as_str)),
        (None, None) => return None,
    }
    let cmd = words.join(" ");
    if cmd.len() <= SUMMARY_COMMAND_MAX {
        return Some(cmd);
    }
    let cut = floor_char_boundary(&cmd, SUMMARY_COMMAND_MAX);
    Some(format!("{}…", &cmd[..cut]))
}

/// The one-line human summary (RFC 5424 MSG), built from whatever fields are present, e.g.
/// `alice ran /usr/sbin/ip link as invoker with CAP_NET_ADMIN (rule net-debug, grant 01J…)`.
/// Never fails; control characters are escaped JSON-style.
pub fn summary(e: &Event) -> String {
    let who = field(e, "user.name")
        .or_else(|| field(e, "user.id").map(|id| format!("uid {id}")))
        .unwrap_or_else(|| "unknown user".to_owned());
    let cmd = command(e);
    let run_as = field(e, "jitrun.run_as").or_else(|| field(e, "user.target.name"));
    let caps = match e.get("process.thread.capabilities.effective") {
        Some(Value::List(l)) if l.is_empty() => Some("no capabilities".to_owned()),
        Some(v) => Some(text(v)).filter(|s| !s.is_empty()),
        None => None,
    };
    let as_with = |s: &mut String| {
        if let Some(r) = &run_as {
            s.push_str(" as ");
            s.push_str(r);
        }
        if let Some(c) = &caps {
            s.push_str(" with ");
            s.push_str(c);
        }
    };
    let grant_in_ctx = !matches!(e.kind, EventType::GrantIssue | EventType::GrantRevoke);
    let mut ctx: Vec<String> = Vec::new();
    if let Some(r) = field(e, "jitrun.rule") {
        ctx.push(format!("rule {r}"));
    }
    if grant_in_ctx {
        if let Some(g) = field(e, "jitrun.grant.id") {
            ctx.push(format!("grant {g}"));
        }
    }
    if let Some(t) = field(e, "jitrun.grant.ticket") {
        ctx.push(format!("ticket {t}"));
    }
    if let Some(c) = field(e, "jitrun.deny_code") {
        ctx.push(format!("code {c}"));
    }

    let mut s = String::with_capacity(128);
    match e.kind {
        EventType::ElevateStart | EventType::BreakGlass => {
            if e.kind == EventType::BreakGlass {
                s.push_str("BREAK-GLASS: ");
            }
            s.push_str(&who);
            s.push_str(" ran ");
            s.push_str(cmd.as_deref().unwrap_or("a command"));
            as_with(&mut s);
        }
        EventType::ElevateEnd => {
            s.push_str(&format!("{who}'s command "));
            if let Some(c) = &cmd {
                s.push_str(c);
                s.push(' ');
            }
            s.push_str("ended: ");
            let status = field(e, "process.exit_code").map(|c| format!("exit status {c}"));
            let signal = field(e, "jitrun.signal").map(|n| format!("signal {n}"));
            let detail = status.clone().or(signal.clone());
            let reason = field(e, "jitrun.end_reason");
            let how = match reason.as_deref() {
                Some("exit") => status.unwrap_or_else(|| "exited".to_owned()),
                Some("signal") => format!("killed by {}", signal.as_deref().unwrap_or("a signal")),
                Some("expired") => with_detail("grant expired", detail),
                Some("revoked") => with_detail("grant revoked", detail),
                Some("supervisor_killed") => with_detail("supervisor killed", detail),
                Some(other) => with_detail(other, detail),
                None => detail.unwrap_or_else(|| "unknown".to_owned()),
            };
            s.push_str(&how);
            if let Some(ms) = field(e, "jitrun.duration_ms") {
                s.push_str(&format!(" after {ms} ms"));
            }
        }
        EventType::ElevateDeny => {
            s.push_str(&who);
            s.push_str(" was denied ");
            s.push_str(cmd.as_deref().unwrap_or("elevation"));
            if let Some(r) = &run_as {
                s.push_str(" as ");
                s.push_str(r);
            }
            s.push_str(": ");
            s.push_str(
                &field(e, "jitrun.deny_reason").unwrap_or_else(|| "no reason given".to_owned()),
            );
        }
        EventType::RequestCreate => {
            s.push_str(&who);
            s.push_str(" requested ");
            match &cmd {
                Some(c) => {
                    s.push_str("to run ");
                    s.push_str(c);
                }
                None => s.push_str("access"),
            }
            as_with(&mut s);
        }
        EventType::RequestApprove | EventType::RequestDeny => {
            s.push_str(&who);
            s.push_str(if e.kind == EventType::RequestApprove {
                " approved a request"
            } else {
                " denied a request"
            });
            if let Some(c) = &cmd {
                s.push_str(" to run ");
                s.push_str(c);
            }
            as_with(&mut s);
        }
        EventType::GrantIssue => {
            s.push_str("grant ");
            if let Some(g) = field(e, "jitrun.grant.id") {
                s.push_str(&g);
                s.push(' ');
            }
            s.push_str("issued to ");
            s.push_str(&who);
            if let Some(c) = &cmd {
                s.push_str(" for ");
                s.push_str(c);
            }
            as_with(&mut s);
            if let Some(x) = field(e, "jitrun.grant.expires") {
                s.push_str(", expires ");
                s.push_str(&x);
            }
        }
        EventType::GrantRevoke => {
            s.push_str("grant ");
            if let Some(g) = field(e, "jitrun.grant.id") {
                s.push_str(&g);
                s.push(' ');
            }
            s.push_str("revoked by ");
            s.push_str(&who);
        }
        EventType::SessionIo => {
            s.push_str("session ");
            s.push_str(&field(e, "jitrun.session_id").unwrap_or_else(|| "?".to_owned()));
            s.push_str(" recording, chunk ");
            s.push_str(&field(e, crate::session_io::SEQ).unwrap_or_else(|| "?".to_owned()));
            s.push_str(" at offset ");
            s.push_str(&field(e, crate::session_io::OFFSET).unwrap_or_else(|| "?".to_owned()));
            if e.get(crate::session_io::FINAL) == Some(&Value::Bool(true)) {
                s.push_str(", final");
            }
        }
        EventType::PolicyError => {
            s.push_str("policy error");
            if e.get("user.name").is_some() || e.get("user.id").is_some() {
                s.push_str(" for ");
                s.push_str(&who);
            }
            s.push_str(": ");
            s.push_str(&field(e, "jitrun.error").unwrap_or_else(|| "unknown error".to_owned()));
        }
    }
    if !ctx.is_empty() {
        s.push_str(" (");
        s.push_str(&ctx.join(", "));
        s.push(')');
    }
    escape_controls(&s).into_owned()
}

fn with_detail(what: &str, detail: Option<String>) -> String {
    match detail {
        Some(d) => format!("{what} ({d})"),
        None => what.to_owned(),
    }
}

/// The largest index `<= i` on a character boundary of `s`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Move `cut` back so it does not fall inside a `\\` or `\xNN` escape of [`crate::escape_bytes`].
fn avoid_split_escape(s: &str, cut: usize) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    while i < cut {
        if b[i] == b'\\' {
            let len = if b.get(i + 1) == Some(&b'x') { 4 } else { 2 };
            if i + len > cut {
                return i;
            }
            i += len;
        } else {
            i += 1;
        }
    }
    cut
}

/// `s` cut to at most `cap` bytes plus the marker, or `None` when that would not shorten it.
fn cap_str(s: &str, cap: usize) -> Option<String> {
    if s.len() <= cap {
        return None;
    }
    let cut = avoid_split_escape(s, floor_char_boundary(s, cap));
    let out = format!("{}…[truncated {} bytes]", &s[..cut], s.len() - cut);
    (out.len() < s.len()).then_some(out)
}

/// How an event is shortened (see the module doc for the steps).
#[derive(Clone, Copy, Default)]
struct Plan {
    /// cut each `process.args` entry to this many bytes
    args_cap: Option<usize>,
    /// keep this many `process.args` entries, the rest become one marker entry
    args_keep: Option<usize>,
    /// cut every other unprotected string to this many bytes
    other_cap: Option<usize>,
}

fn apply(event: &Event, plan: Plan) -> Event {
    let mut e = event.clone();
    let mut args_changed = false;
    let mut fields_changed = false;
    for (key, value) in &mut e.fields {
        if key == "process.args" {
            let Value::List(args) = value else { continue };
            let mut marker = 0;
            if let Some(keep) = plan.args_keep {
                if keep < args.len() {
                    let dropped = args.len() - keep;
                    let bytes: usize = args[keep..].iter().map(String::len).sum();
                    args.truncate(keep);
                    args.push(format!("…[truncated {dropped} more args, {bytes} bytes]"));
                    args_changed = true;
                    marker = 1;
                }
            }
            if let Some(cap) = plan.args_cap {
                let n = args.len() - marker;
                for a in &mut args[..n] {
                    if let Some(t) = cap_str(a, cap) {
                        *a = t;
                        args_changed = true;
                    }
                }
            }
        } else if let Some(cap) = plan.other_cap {
            if PROTECTED.contains(&key.as_str()) {
                continue;
            }
            match value {
                Value::Str(s) => {
                    if let Some(t) = cap_str(s, cap) {
                        *s = t;
                        fields_changed = true;
                    }
                }
                Value::List(l) => {
                    for s in l.iter_mut() {
                        if let Some(t) = cap_str(s, cap) {
                            *s = t;
                            fields_changed = true;
                        }
                    }
                }
                Value::Int(_) | Value::Bool(_) => {}
            }
        }
    }
    if args_changed {
        e.bool("jitrun.args_truncated", true);
    }
    if fields_changed {
        e.bool("jitrun.fields_truncated", true);
    }
    e
}

/// The largest `v` in `lo..=hi` for which `f` gives a datagram (assuming that the larger `v`,
/// the larger the datagram), with that datagram; `None` if not even `lo` fits.
fn search_largest(
    lo: usize,
    hi: usize,
    mut f: impl FnMut(usize) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let mut best = f(lo)?;
    let (mut good, mut bad) = (lo, hi.saturating_add(1).max(lo + 1));
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        match f(mid) {
            Some(out) => {
                good = mid;
                best = out;
            }
            None => bad = mid,
        }
    }
    Some(best)
}

fn longest(values: impl Iterator<Item = usize>) -> usize {
    values.max().unwrap_or(0)
}

/// Render `prefix` + `body(event)`, shortened per the module doc to at most `max` bytes.
fn fit(prefix: &str, event: &Event, max: usize, body: impl Fn(&Event) -> String) -> Vec<u8> {
    let render = |e: &Event| -> Vec<u8> {
        let b = body(e);
        let mut out = Vec::with_capacity(prefix.len() + b.len());
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(b.as_bytes());
        out
    };
    let full = render(event);
    if full.len() <= max {
        return full;
    }
    let try_plan = |p: Plan| -> Option<Vec<u8>> {
        let out = render(&apply(event, p));
        (out.len() <= max).then_some(out)
    };

    let mut base = Plan::default();
    let mut argv0_floor = None;
    if let Some(Value::List(args)) = event.get("process.args") {
        if !args.is_empty() {
            let longest_arg = longest(args.iter().map(String::len));
            let floor = MIN_ARG_KEEP.min(longest_arg);
            // 1. cut the longest args to a common length >= floor
            let step1 = search_largest(floor, longest_arg, |cap| {
                try_plan(Plan {
                    args_cap: Some(cap),
                    ..Plan::default()
                })
            });
            if let Some(out) = step1 {
                return out;
            }
            // 2. keep fewer args (argv[0] stays)
            let step2 = search_largest(1, args.len(), |keep| {
                try_plan(Plan {
                    args_cap: Some(floor),
                    args_keep: Some(keep),
                    ..Plan::default()
                })
            });
            if let Some(out) = step2 {
                return out;
            }
            // then: other fields first; argv[0] below the floor only as the last resort
            base = Plan {
                args_cap: Some(floor),
                args_keep: Some(1),
                other_cap: None,
            };
            argv0_floor = Some(floor);
        }
    }
    // 3. every other unprotected string
    let longest_other = longest(event.fields.iter().flat_map(|(k, v)| {
        let skip = k == "process.args" || PROTECTED.contains(&k.as_str());
        let lens: Vec<usize> = match v {
            _ if skip => Vec::new(),
            Value::Str(s) => vec![s.len()],
            Value::List(l) => l.iter().map(String::len).collect(),
            Value::Int(_) | Value::Bool(_) => Vec::new(),
        };
        lens
    }));
    let step4 = search_largest(0, longest_other, |cap| {
        try_plan(Plan {
            other_cap: Some(cap),
            ..base
        })
    });
    if let Some(out) = step4 {
        return out;
    }
    // 4. argv[0] below the floor, every other string already cut
    if let Some(floor) = argv0_floor {
        let step = search_largest(0, floor, |cap| {
            try_plan(Plan {
                args_cap: Some(cap),
                args_keep: Some(1),
                other_cap: Some(0),
            })
        });
        if let Some(out) = step {
            return out;
        }
        base.args_cap = Some(0);
    }
    // 5. max_message is below the fixed part of the event: cut the bytes.
    let out = render(&apply(
        event,
        Plan {
            other_cap: Some(0),
            ..base
        },
    ));
    // The datagram is valid UTF-8 (built from `String`s).
    let text = String::from_utf8_lossy(&out);
    let cut = floor_char_boundary(&text, max);
    text.as_bytes()[..cut].to_vec()
}
