//! `/etc/jitrun/jitrun.toml`: every key optional; unknown keys are errors.
//!
//! ```toml
//! host = "web-1"            # default: uname nodename (the caller fills it in)
//! clock_skew = "60s"
//! secure_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
//! kill_grace = "5s"
//! [audit]
//! framing = "cee"           # "cee" (RFC 3164 header + @cee: JSON) | "rfc5424"
//! socket = "/dev/log"
//! fail_closed = true
//! sd_id = "jitrun@32473"
//! [pam]
//! service = "jitrun"        # /etc/pam.d/<service>, for rules with authenticate = true
//! auth_cache = "0s"         # "5m": no password again for 5 minutes on the same terminal
//! [revocations]
//! max_age = "15m"           # default unset: a list of any age counts as fresh
//! [record]                  # session recording: see crate::record
//! default = false
//! max_bytes = "1G"
//! on_max_bytes = "end"
//! on_failure = "end"
//! ```

use crate::error::PolicyError;
use crate::fields::{self, choice};
use crate::names::valid_host_name;
use crate::record::{parse_record, RecordSettings};
use crate::text::quote;
use crate::toml_doc::{Doc, Entry};
use std::time::Duration;

pub const DEFAULT_SECURE_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFraming {
    Cee,
    Rfc5424,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub framing: AuditFraming,
    pub socket: String,
    pub fail_closed: bool,
    /// RFC 5424 SD-ID; validated (SD-NAME chars, `name@number` form for private ids).
    pub sd_id: String,
}

/// PAM, for rules with `authenticate = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamSettings {
    /// The service name: `/etc/pam.d/<service>`.
    pub service: String,
    /// How long a successful authentication counts for the same user on the same terminal
    /// session (sudo's timestamp); zero (the default) asks every time.
    pub auth_cache: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// None = use the kernel's node name.
    pub host: Option<String>,
    pub clock_skew: Duration,
    /// Colon-separated, every entry absolute.
    pub secure_path: String,
    pub kill_grace: Duration,
    pub audit: AuditSettings,
    pub pam: PamSettings,
    pub revocations: RevocationSettings,
    /// `[record]`: session recording.
    pub record: RecordSettings,
}

/// `[revocations]`: how old `/var/lib/jitrun/revocations` may be for rules that set
/// `require_fresh_revocations = true` (docs/broker.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationSettings {
    /// Oldest list `iat` accepted (now - iat). None: any age.
    pub max_age: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: None,
            clock_skew: Duration::from_secs(60),
            secure_path: DEFAULT_SECURE_PATH.to_string(),
            kill_grace: Duration::from_secs(5),
            audit: AuditSettings {
                framing: AuditFraming::Cee,
                socket: "/dev/log".to_string(),
                fail_closed: true,
                sd_id: "jitrun@32473".to_string(),
            },
            pam: PamSettings {
                service: "jitrun".to_string(),
                auth_cache: Duration::ZERO,
            },
            revocations: RevocationSettings::default(),
            record: RecordSettings::default(),
        }
    }
}

impl Settings {
    /// Parse the file's text; `name` is used in messages (file:line: field: problem).
    pub fn parse(name: &str, text: &str) -> Result<Settings, PolicyError> {
        let (doc, root) = Doc::parse(name, text)?;
        doc.check_keys(&root, TOP_KEYS, "settings")?;
        let mut settings = Settings::default();
        for e in &root {
            let field = e.key.as_str();
            match field {
                "host" => settings.host = Some(host(&doc, e)?),
                "clock_skew" => settings.clock_skew = duration(&doc, e, field)?,
                "kill_grace" => settings.kill_grace = duration(&doc, e, field)?,
                "secure_path" => {
                    let p = doc.string(e, field)?;
                    check_secure_path(p).map_err(|m| doc.err(doc.entry_span(e), field, m))?;
                    settings.secure_path = p.to_string();
                }
                "audit" => parse_audit(&doc, doc.table(e, field)?, &mut settings.audit)?,
                "pam" => parse_pam(&doc, doc.table(e, field)?, &mut settings.pam)?,
                "record" => parse_record(&doc, doc.table(e, field)?, &mut settings.record)?,
                "revocations" => {
                    let table = doc.table(e, field)?;
                    parse_revocations(&doc, table, &mut settings.revocations)?
                }
                _ => unreachable!("keys were checked"),
            }
        }
        Ok(settings)
    }

    /// The entries of `secure_path`.
    pub fn secure_path_dirs(&self) -> impl Iterator<Item = &str> {
        self.secure_path.split(':').filter(|s| !s.is_empty())
    }
}

const TOP_KEYS: &[&str] = &[
    "host",
    "clock_skew",
    "secure_path",
    "kill_grace",
    "audit",
    "pam",
    "revocations",
    "record",
];
const REVOCATION_KEYS: &[&str] = &["max_age"];
const PAM_KEYS: &[&str] = &["service", "auth_cache"];

fn host(doc: &Doc<'_>, e: &Entry) -> Result<String, PolicyError> {
    let h = doc.string(e, "host")?;
    if !valid_host_name(h) {
        return Err(doc.err(
            doc.entry_span(e),
            "host",
            format!(
                "invalid host name {}: letters, digits, '.', '-' and '_', at most 253 characters (leave it out to use the kernel's node name)",
                quote(h)
            ),
        ));
    }
    Ok(h.to_string())
}

fn parse_revocations(
    doc: &Doc<'_>,
    table: &[Entry],
    revocations: &mut RevocationSettings,
) -> Result<(), PolicyError> {
    doc.check_keys(table, REVOCATION_KEYS, "revocations")?;
    for e in table {
        let field = format!("revocations.{}", e.key);
        match e.key.as_str() {
            "max_age" => {
                let d = duration(doc, e, &field)?;
                if d.is_zero() {
                    return Err(doc.err(
                        doc.entry_span(e),
                        &field,
                        "must be longer than zero, e.g. \"15m\" (leave it out for no limit)",
                    ));
                }
                revocations.max_age = Some(d);
            }
            _ => unreachable!("keys were checked"),
        }
    }
    Ok(())
}

fn parse_pam(doc: &Doc<'_>, table: &[Entry], pam: &mut PamSettings) -> Result<(), PolicyError> {
    doc.check_keys(table, PAM_KEYS, "pam")?;
    for e in table {
        let field = format!("pam.{}", e.key);
        match e.key.as_str() {
            "service" => {
                let s = doc.string(e, &field)?;
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && !s.starts_with('.')
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                if !ok {
                    return Err(doc.err(
                        doc.entry_span(e),
                        &field,
                        format!(
                            "invalid PAM service name {}: a file name in /etc/pam.d (letters, digits, '.', '-', '_'; not starting with '.')",
                            quote(s)
                        ),
                    ));
                }
                pam.service = s.to_string();
            }
            "auth_cache" => pam.auth_cache = duration(doc, e, &field)?,
            _ => unreachable!("keys were checked"),
        }
    }
    Ok(())
}
const AUDIT_KEYS: &[&str] = &["framing", "socket", "fail_closed", "sd_id"];

fn parse_audit(
    doc: &Doc<'_>,
    table: &[Entry],
    audit: &mut AuditSettings,
) -> Result<(), PolicyError> {
    doc.check_keys(table, AUDIT_KEYS, "audit")?;
    for e in table {
        let field = format!("audit.{}", e.key);
        match e.key.as_str() {
            "framing" => {
                audit.framing = choice(
                    doc,
                    e,
                    &field,
                    &[
                        ("cee", AuditFraming::Cee),
                        ("rfc5424", AuditFraming::Rfc5424),
                    ],
                    "\"cee\" or \"rfc5424\"",
                )?
            }
            "socket" => {
                let s = doc.string(e, &field)?;
                if !s.starts_with('/') || s.contains('\0') {
                    return Err(doc.err(
                        doc.entry_span(e),
                        &field,
                        format!("{} must be an absolute path such as /dev/log", quote(s)),
                    ));
                }
                audit.socket = s.to_string();
            }
            "fail_closed" => audit.fail_closed = doc.boolean(e, &field)?,
            "sd_id" => {
                let s = doc.string(e, &field)?;
                check_sd_id(s).map_err(|m| doc.err(doc.entry_span(e), &field, m))?;
                audit.sd_id = s.to_string();
            }
            _ => unreachable!("keys were checked"),
        }
    }
    Ok(())
}

fn duration(doc: &Doc<'_>, e: &Entry, field: &str) -> Result<Duration, PolicyError> {
    fields::duration(doc, e, field, "\"60s\" or \"5m\"")
}

/// Every entry absolute, none empty (an empty entry would mean the current directory).
fn check_secure_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err(format!(
            "empty; leave it out for the default {DEFAULT_SECURE_PATH}"
        ));
    }
    for dir in p.split(':') {
        if dir.is_empty() {
            return Err(format!(
                "{}: empty entry (it would mean the current directory); entries are absolute directories separated by ':'",
                quote(p)
            ));
        }
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(format!(
                "{}: entry {} is not an absolute directory; every entry must start with '/'",
                quote(p),
                quote(dir)
            ));
        }
    }
    Ok(())
}

/// Validate an RFC 5424 SD-ID meant for private use: `name@number` (the number an IANA
/// private enterprise number, optionally with dotted sub-identifiers), 1..=32 printable
/// US-ASCII characters except `=`, space, `]` and `"`.
pub fn check_sd_id(s: &str) -> Result<(), String> {
    const FORM: &str = "an SD-ID looks like name@number, e.g. \"jitrun@32473\" (your organisation's private enterprise number)";
    if s.is_empty() || s.len() > 32 {
        return Err(format!("{}: must be 1 to 32 characters; {FORM}", quote(s)));
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '=' | ']' | '"'))
    {
        return Err(format!(
            "{}: character {} is not allowed (printable US-ASCII except '=', ' ', ']' and '\"'); {FORM}",
            quote(s),
            quote(&c.to_string())
        ));
    }
    let Some((name, number)) = s.split_once('@') else {
        return Err(format!(
            "{}: no '@'; names without '@' are reserved for IANA; {FORM}",
            quote(s)
        ));
    };
    let number_ok = !number.is_empty()
        && number
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if name.is_empty() || !number_ok {
        return Err(format!("{}: {FORM}", quote(s)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{OnFailure, OnMaxBytes};

    const NAME: &str = "/etc/jitrun/jitrun.toml";

    fn err(text: &str) -> String {
        Settings::parse(NAME, text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Settings::parse(NAME, ""), Ok(Settings::default()));
        assert_eq!(
            Settings::parse(NAME, "# nothing\n\n[audit]\n"),
            Ok(Settings::default())
        );
        let d = Settings::default();
        assert_eq!(d.secure_path_dirs().count(), 6);
        assert_eq!(d.clock_skew, Duration::from_secs(60));
        assert_eq!(d.kill_grace, Duration::from_secs(5));
        assert_eq!(d.audit.sd_id, "jitrun@32473");
        assert_eq!(d.audit.framing, AuditFraming::Cee);
        assert!(d.audit.fail_closed);
    }

    #[test]
    fn full_file() {
        let s = Settings::parse(
            NAME,
            r#"
host = "web-1"
clock_skew = "2m"
secure_path = "/usr/bin:/bin"
kill_grace = "10s"
[audit]
framing = "rfc5424"
socket = "/run/systemd/journal/syslog"
fail_closed = false
sd_id = "acme@12345"
"#,
        )
        .unwrap();
        assert_eq!(s.host.as_deref(), Some("web-1"));
        assert_eq!(s.clock_skew, Duration::from_secs(120));
        assert_eq!(s.kill_grace, Duration::from_secs(10));
        assert_eq!(
            s.secure_path_dirs().collect::<Vec<_>>(),
            vec!["/usr/bin", "/bin"]
        );
        assert_eq!(s.audit.framing, AuditFraming::Rfc5424);
        assert_eq!(s.audit.socket, "/run/systemd/journal/syslog");
        assert!(!s.audit.fail_closed);
        assert_eq!(s.audit.sd_id, "acme@12345");
        // Dotted keys work as well as a table.
        let s = Settings::parse(NAME, "audit.framing = \"rfc5424\"\n").unwrap();
        assert_eq!(s.audit.framing, AuditFraming::Rfc5424);
    }

    #[test]
    fn revocations_max_age() {
        assert_eq!(Settings::default().revocations.max_age, None);
        let s = Settings::parse(NAME, "[revocations]\nmax_age = \"15m\"\n").unwrap();
        assert_eq!(s.revocations.max_age, Some(Duration::from_secs(900)));
        let e = err("[revocations]\nmax_age = \"0s\"\n");
        assert!(
            e.contains("revocations.max_age") && e.contains("longer than zero"),
            "{e}"
        );
        let e = err("[revocations]\nmax_age = 60\n");
        assert!(
            e.contains("revocations.max_age") && e.contains("expected a string"),
            "{e}"
        );
        let e = err("[revocations]\nmaxage = \"1m\"\n");
        assert!(e.contains("maxage"), "{e}");
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_valid_ones() {
        let e = err("host = \"a\"\nclock_skw = \"1m\"\n");
        assert_eq!(
            e,
            "/etc/jitrun/jitrun.toml:2: settings: unknown key \"clock_skw\" (did you mean \"clock_skew\"?); valid keys: host, clock_skew, secure_path, kill_grace, audit, pam, revocations, record"
        );
        let e = err("[audit]\nframing = \"cee\"\n\nfail_open = true\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:4: audit: unknown key \"fail_open\""),
            "{e}"
        );
        assert!(
            e.contains("valid keys: framing, socket, fail_closed, sd_id"),
            "{e}"
        );
        let e = err("[pam]\nservise = \"jitrun\"\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:2: pam: unknown key \"servise\""),
            "{e}"
        );
    }

    #[test]
    fn pam_settings() {
        let d = Settings::default();
        assert_eq!(d.pam.service, "jitrun");
        assert_eq!(d.pam.auth_cache, Duration::ZERO);
        let s = Settings::parse(
            NAME,
            "[pam]\nservice = \"jitrun-mfa\"\nauth_cache = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(s.pam.service, "jitrun-mfa");
        assert_eq!(s.pam.auth_cache, Duration::from_secs(300));
        for bad in ["../shadow", "", ".hidden", "a/b", "a b"] {
            let e = err(&format!("[pam]\nservice = {bad:?}\n"));
            assert!(
                e.contains(":2: pam.service: invalid PAM service name"),
                "{e}"
            );
        }
        let e = err("[pam]\nauth_cache = 300\n");
        assert!(e.contains(":2: pam.auth_cache: expected a string"), "{e}");
    }

    #[test]
    fn bad_values_have_lines_and_fields() {
        assert_eq!(
            err("\n\nsecure_path = \"/usr/bin:bin\"\n"),
            "/etc/jitrun/jitrun.toml:3: secure_path: \"/usr/bin:bin\": entry \"bin\" is not an absolute directory; every entry must start with '/'"
        );
        assert!(err("secure_path = \"/usr/bin::/bin\"\n").contains("empty entry"));
        assert!(err("secure_path = \"\"\n").contains("empty"));
        let e = err("clock_skew = \"1 m\"\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:1: clock_skew: \"1 m\": "),
            "{e}"
        );
        assert!(e.contains("expected a duration such as"), "{e}");
        let e = err("kill_grace = 5\n");
        assert_eq!(
            e,
            "/etc/jitrun/jitrun.toml:1: kill_grace: expected a string such as \"60s\" or \"5m\", found an integer"
        );
        let e = err("host = \"web 1\"\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:1: host: invalid host name \"web 1\""),
            "{e}"
        );
        let e = err("[audit]\nframing = \"json\"\n");
        assert_eq!(e, "/etc/jitrun/jitrun.toml:2: audit.framing: invalid value \"json\": expected \"cee\" or \"rfc5424\"");
        let e = err("[audit]\nsocket = \"dev/log\"\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:2: audit.socket: "),
            "{e}"
        );
        let e = err("[audit]\nfail_closed = \"yes\"\n");
        assert_eq!(
            e,
            "/etc/jitrun/jitrun.toml:2: audit.fail_closed: expected true or false, found a string"
        );
        let e = err("audit = 1\n");
        assert_eq!(
            e,
            "/etc/jitrun/jitrun.toml:1: audit: expected a table, found an integer"
        );
        let e = err("host = \"a\"\nhost = \"b\"\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:2: TOML syntax: "),
            "{e}"
        );
        let e = err("[audit]\nsd_id = \"jitrun\"\n");
        assert!(
            e.starts_with("/etc/jitrun/jitrun.toml:2: audit.sd_id: \"jitrun\": no '@'"),
            "{e}"
        );
    }

    #[test]
    fn sd_ids() {
        for good in [
            "jitrun@32473",
            "a@1",
            "acme-audit@12345",
            "x@32473.1.2",
            "abcdefghijklmnopqrstuvwxyz@12345",
        ] {
            assert_eq!(check_sd_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "jitrun",
            "@32473",
            "jitrun@",
            "jitrun@abc",
            "jit run@1",
            "jit=run@1",
            "jit]run@1",
            "jit\"run@1",
            "jitrun@1.",
            "jitrun@1..2",
            "abcdefghijklmnopqrstuvwxyzabcdef@1",
            "jitrün@1",
            "a@1@2",
            "timeQuality",
        ] {
            assert!(check_sd_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_table() {
        let s = Settings::parse("t", "").unwrap();
        assert_eq!(s.record, RecordSettings::default());
        let s = Settings::parse(
            "t",
            "[record]\ndefault = true\nmax_bytes = \"100M\"\non_max_bytes = \"truncate\"\non_failure = \"continue\"\n",
        )
        .unwrap();
        assert_eq!(
            s.record,
            RecordSettings {
                default: true,
                max_bytes: 100 << 20,
                on_max_bytes: OnMaxBytes::Truncate,
                on_failure: OnFailure::Continue,
            }
        );
        assert_eq!(
            Settings::parse("t", "[record]\nmax_bytes = 131072\n")
                .unwrap()
                .record
                .max_bytes,
            131_072
        );
        for (text, want) in [
            (
                "[record]\nmax_bytes = \"1K\"\n",
                "t:2: record.max_bytes: 1024 bytes is below the smallest recording cap",
            ),
            (
                "[record]\nmax_bytes = -5\n",
                "record.max_bytes: -5 is negative",
            ),
            (
                "[record]\nmax_bytes = true\n",
                "expected a size such as \"1G\"",
            ),
            (
                "[record]\non_max_bytes = \"stop\"\n",
                "invalid value \"stop\": expected \"end\"",
            ),
            (
                "[record]\non_failure = \"ignore\"\n",
                "record.on_failure: invalid value \"ignore\"",
            ),
            ("[record]\ninput = true\n", "unknown key"),
        ] {
            let e = Settings::parse("t", text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
