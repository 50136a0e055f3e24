//! Events and their fields. Field names are dotted paths (ECS where ECS has one,
//! else under `jitrun.`): `event.action`, `event.outcome`, `user.name`, `user.id`,
//! `user.target.name`, `user.target.id`, `host.name`, `process.executable`, `process.args`,
//! `process.pid`, `process.exit_code`, `process.working_directory`,
//! `process.thread.capabilities.effective`, `jitrun.schema_version`, `jitrun.session_id`,
//! `jitrun.rule`, `jitrun.run_as`, `jitrun.tty`, `jitrun.grant.id`, `jitrun.grant.kid`,
//! `jitrun.grant.issuer`, `jitrun.grant.expires`, `jitrun.grant.approvers`, `jitrun.grant.ticket`,
//! `jitrun.grant.reason`, `jitrun.grant.break_glass`, `jitrun.deny_code`, `jitrun.deny_reason`,
//! `jitrun.end_reason`, `jitrun.signal`, `jitrun.duration_ms`, `jitrun.args_truncated`,
//! `jitrun.error` (policy.error).

/// Bumped when a field changes meaning or type, or is removed (adding a field does not bump it).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    ElevateStart,
    ElevateEnd,
    ElevateDeny,
    RequestCreate,
    RequestApprove,
    RequestDeny,
    GrantIssue,
    GrantRevoke,
    BreakGlass,
    PolicyError,
}

/// syslog severities (RFC 5424 numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl EventType {
    /// `elevate.start`, ...
    pub fn as_str(self) -> &'static str { todo!() }
    /// start/end: Notice; deny: Warning; request.*/grant.*: Notice/Info; break_glass: Alert;
    /// policy.error: Error.
    pub fn severity(self) -> Severity { todo!() }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

/// An event: its type and its fields in insertion order. `Event::new` sets `event.action`,
/// `event.kind` = "event", `jitrun.schema_version`. Setting a field twice replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub fields: Vec<(String, Value)>,
}

impl Event {
    pub fn new(kind: EventType) -> Event { todo!() }
    pub fn set(&mut self, key: &str, value: Value) -> &mut Event { todo!() }
    pub fn str(&mut self, key: &str, value: impl Into<String>) -> &mut Event { self.set(key, Value::Str(value.into())) }
    pub fn int(&mut self, key: &str, value: i64) -> &mut Event { self.set(key, Value::Int(value)) }
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Event { self.set(key, Value::Bool(value)) }
    pub fn list<I, S>(&mut self, key: &str, values: I) -> &mut Event where I: IntoIterator<Item = S>, S: Into<String> { self.set(key, Value::List(values.into_iter().map(Into::into).collect())) }
    /// argv-like bytes, escaped with [`crate::escape_bytes`].
    pub fn bytes_list<I, B>(&mut self, key: &str, values: I) -> &mut Event where I: IntoIterator<Item = B>, B: AsRef<[u8]> { self.set(key, Value::List(values.into_iter().map(|b| crate::escape_bytes(b.as_ref())).collect())) }
    pub fn get(&self, key: &str) -> Option<&Value> { self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v) }
    /// The nested JSON object (dotted keys become nested objects).
    pub fn to_json(&self) -> serde_json::Value { todo!() }
}
