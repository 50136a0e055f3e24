//! Who may act as an approver or an admin. Group membership comes from the caller's host
//! (its attestation); with `approver_hosts` in broker.toml (or a workflow's own), those roles
//! count only when the caller is attested from one of the named hosts, so that a compromised
//! ordinary host can no longer approve or administer as anyone who has an account there.
//! People signed in on the web pages have no host: their groups come from the OpenID Connect
//! provider through `[web.groups]`, which says which provider groups hold which roles, and
//! `approver_hosts` does not apply to them (docs/broker.md, Trust).
use crate::auth::{Caller, Identity};
use crate::broker::Broker;
use crate::config::{host_allowed, in_any, Workflow};
use crate::error::ApiError;

/// Do roles count for `c` given the hosts they are limited to? Attested callers: when their
/// host matches; web sessions: always (their roles come from the provider's groups).
fn role_host_ok(c: &Caller, hosts: &[String]) -> bool {
    match &c.identity {
        Identity::Attestation { host, .. } => host_allowed(hosts, host),
        Identity::Oidc { .. } => true,
    }
}

/// Is `c` an approver for `rule` (an approving group of its workflow, from an approver host)?
pub fn approves(b: &Broker, c: &Caller, rule: &str) -> bool {
    b.config.workflow_for(rule).is_some_and(|wf| {
        in_any(&c.groups, &wf.approvers) && role_host_ok(c, b.config.approver_hosts_for(wf))
    })
}

/// Is `c` an admin (an admin group, from an approver host)?
pub fn is_admin(b: &Broker, c: &Caller) -> bool {
    b.config.is_admin(&c.groups) && role_host_ok(c, &b.config.approver_hosts)
}

fn wrong_host(c: &Caller, role: &str, hosts: &[String]) -> ApiError {
    ApiError::forbidden(
        "not_approver_host",
        format!(
            "{} is in {role} group, but the broker accepts that role only from hosts matching approver_hosts ({}); {} is not one of them: act from one of those hosts",
            c.user,
            hosts.join(", "),
            c.host()
        ),
    )
}

pub fn require_admin(b: &Broker, c: &Caller) -> Result<(), ApiError> {
    if !b.config.is_admin(&c.groups) {
        return Err(ApiError::forbidden(
            "not_admin",
            format!(
                "{} is not in an admin group ({})",
                c.user,
                b.config.admin_groups.join(", ")
            ),
        ));
    }
    if !role_host_ok(c, &b.config.approver_hosts) {
        return Err(wrong_host(c, "an admin", &b.config.approver_hosts));
    }
    Ok(())
}

/// `c` may decide (approve or deny) requests for `rule` under `wf`.
pub fn require_approver(b: &Broker, c: &Caller, wf: &Workflow, rule: &str) -> Result<(), ApiError> {
    if !in_any(&c.groups, &wf.approvers) {
        return Err(ApiError::forbidden(
            "not_approver",
            format!(
                "{} is not in an approving group for rule {rule} ({})",
                c.user,
                wf.approvers.join(", ")
            ),
        ));
    }
    let hosts = b.config.approver_hosts_for(wf);
    if !role_host_ok(c, hosts) {
        return Err(wrong_host(c, "an approving", hosts));
    }
    Ok(())
}
