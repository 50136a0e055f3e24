"""Writes docs/openapi.json (the broker's API, served at /v1/openapi.json): edit this file, then
run `python3 scripts/gen_openapi.py > docs/openapi.json`. tests/broker/test_openapi.py checks that
the committed document is this script's output and tests the server against it with schemathesis.

The patterns are exactly what the broker accepts, so that every schema-valid request is accepted
or refused for a documented reason (schemathesis' positive-data check).
"""
import json

# Text a person writes: no control characters but tab and newline, no invisible formatting
# characters (bidi overrides and isolates, zero-width ones), not blank (the broker's check).
INVISIBLE = "\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff"
NOCTL = "\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f" + INVISIBLE
TEXT = f"^[^{NOCTL}]*[^\\s{NOCTL}][^{NOCTL}]*$"
# A command pattern in the policy's string form (split on ASCII whitespace; absolute, canonical
# program without globs; no quotes or NUL; "**" only as the last word).
_WS = "[ \\t\\n\\f\\r]"
_W = f"[^ \\t\\n\\f\\r\"'\\u0000{INVISIBLE}]"
_P = f"[^ \\t\\n\\f\\r\"'\\u0000/*?\\[{INVISIBLE}]"
_COMP = f"(?!\\.\\.?(?:/|{_WS}|$)){_P}+"
CMD = f"^{_WS}*/{_COMP}(?:/{_COMP})*(?:{_WS}+(?!\\*\\*{_WS}+[^ \\t\\n\\f\\r]){_W}+)*{_WS}*$"
TTL = "^(?=[0-9])([0-9]{1,6}d)?([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?([0-9]{1,6}ms)?$"
RUN_AS = "^(?!-)(?![0-9]+\\$?$)[A-Za-z0-9_.-]{1,255}\\$?$"
HOST_GLOB = "^[A-Za-z0-9._*?\\[\\]-]{1,128}$"
HOST_NAME = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,252}$"
PUBLIC_KEY = "^k4\\.public\\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$"
S = lambda t, **kw: {"type": t, **kw}
nullable = lambda t, **kw: {"type": [t, "null"], **kw}
ref = lambda n: {"$ref": f"#/components/schemas/{n}"}
ulid = {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$", "description": "ULID"}
time = {"type": "string", "format": "date-time", "description": "RFC 3339 UTC, whole seconds"}
ntime = {"type": ["string", "null"], "format": "date-time"}
strings = {"type": "array", "items": {"type": "string"}}
cmd = {"type": "string", "pattern": CMD,
       "description": "One command pattern in the policy's string form, narrowing the rule's commands (e.g. `/usr/sbin/tcpdump -i * **`). The array form of the grant claim (one string per word, for arguments with spaces) is accepted too."}
cmd_out = {"description": "the cmd as requested: a string, or an array of words",
           "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

schemas = {
    "Error": S("object", required=["error"], additionalProperties=False, properties={
        "error": S("object", required=["code", "message"], additionalProperties=False, properties={
            "code": S("string", pattern="^[a-z][a-z0-9_]*$", description="machine-readable, snake_case"),
            "message": S("string", description="what happened and what to do")})}),
    "Health": S("object", required=["status"], properties={"status": {"const": "ok"}}),
    "Ready": S("object", required=["status"], properties={"status": {"const": "ready"}}),
    "Approval": S("object", required=["user", "host", "at", "comment"], additionalProperties=False, properties={
        "user": S("string"), "host": S("string"), "at": time, "comment": nullable("string")}),
    "Request": S("object", additionalProperties=False,
        required=["id", "user", "uid", "host", "rule", "cmd", "ttl", "reason", "ticket", "run_as", "hosts",
                  "break_glass", "state", "created", "expires", "approvals", "needed", "denied_by",
                  "deny_reason", "grant_id"],
        properties={
            "id": ulid, "user": S("string"), "uid": S("integer", minimum=0), "host": S("string"),
            "rule": S("string"), "cmd": {"oneOf": [cmd_out, {"type": "null"}]},
            "ttl": S("string", description="duration, e.g. 30m"), "reason": S("string"),
            "ticket": nullable("string"), "run_as": nullable("string"), "hosts": strings,
            "break_glass": S("boolean"),
            "state": {"enum": ["pending", "approved", "denied", "cancelled", "expired"]},
            "created": time, "expires": {**time, "description": "when a pending request expires"},
            "approvals": {"type": "array", "items": ref("Approval")},
            "needed": S("object", required=["approvals", "groups"], additionalProperties=False, properties={
                "approvals": S("integer", minimum=0, description="approvals the workflow requires in total (distinct approvers, never the requester)"),
                "groups": strings}),
            "denied_by": nullable("string"), "deny_reason": nullable("string"),
            "grant_id": {"type": ["string", "null"], "description": "the grant issued when approved"}}),
    "CreateRequest": S("object", required=["rule", "reason"], additionalProperties=False, properties={
        "rule": S("string", pattern="^[A-Za-z0-9._-]{1,128}$"), "cmd": cmd,
        "ttl": S("string", pattern=TTL, description="duration such as 30m; default and maximum: the workflow's max_ttl (longer or under 1s: 403)"),
        "reason": S("string", pattern=TEXT, maxLength=2000), "ticket": S("string", pattern=TEXT, maxLength=200),
        "break_glass": S("boolean"), "run_as": S("string", pattern=RUN_AS, maxLength=256, description="invoker, root or a user name"),
        "hosts": {"type": "array", "items": S("string", pattern=HOST_GLOB), "minItems": 1, "maxItems": 64,
                  "description": "default: the requesting host"}}),
    "ApproveBody": S("object", additionalProperties=False, properties={"comment": S("string", pattern=TEXT, maxLength=2000)}),
    "ReasonBody": S("object", required=["reason"], additionalProperties=False, properties={
        "reason": S("string", pattern=TEXT, maxLength=2000)}),
    "RevokeBody": S("object", required=["reason"], additionalProperties=False, properties={
        "reason": S("string", pattern=TEXT, maxLength=2000),
        "token": S("string", description="the grant token (v4.public…): lets its user or an approver revoke a grant the broker has no record of; its claims give the expiry of the list entry")}),
    "Grant": S("object", additionalProperties=False,
        required=["id", "request_id", "user", "rule", "hosts", "iat", "exp", "token", "revoked"],
        description="request_id, user, rule and iat are null only for a grant the broker has no record of, revoked by id (user, rule, iat come from its token when it was presented)",
        properties={
            "id": ulid, "request_id": {"oneOf": [ulid, {"type": "null"}]}, "user": nullable("string"),
            "rule": nullable("string"), "hosts": strings, "iat": ntime, "exp": time,
            "token": {"type": ["string", "null"], "description": "the signed grant (v4.public…); only for the grant's own user"},
            "break_glass": S("boolean"), "revoked": S("boolean"), "revoked_at": ntime,
            "revoked_by": nullable("string"), "revoke_reason": nullable("string")}),
    "Revocations": S("object", required=["token", "seq"], additionalProperties=False, properties={
        "token": S("string", description="jitrun:revocations:v1 token signed by the broker key"),
        "seq": S("integer", minimum=1), "iat": time}),
    "HostBody": S("object", required=["name", "public_key"], additionalProperties=False, properties={
        "name": S("string", pattern=HOST_NAME), "public_key": S("string", pattern=PUBLIC_KEY, description="k4.public PASERK (Ed25519)"),
        "enrollment_token": S("string", pattern="^jitenroll-[0-9a-f]{48}$", description="from `jitbroker host enroll-token NAME`; the call is then attested by the key being enrolled")}),
    "Host": S("object", required=["name", "public_key", "kid", "state", "created", "retired"],
              additionalProperties=False, properties={
        "name": S("string"), "public_key": S("string"), "kid": S("string"),
        "state": {"enum": ["enrolled", "retired"]}, "created": time, "retired": ntime}),
    "AuditEvent": S("object", additionalProperties=False,
        required=["id", "event_id", "at", "type", "actor", "host", "subject", "data", "prev_hash", "hash"],
        properties={
            "id": S("integer", minimum=1), "event_id": ulid, "at": time, "type": S("string"),
            "actor": S("string"), "host": S("string"), "subject": S("string"), "data": {},
            "prev_hash": S("string", pattern="^[0-9a-f]{64}$"), "hash": S("string", pattern="^[0-9a-f]{64}$")}),
}
schemas["RequestList"] = S("object", required=["requests"], additionalProperties=False,
                           properties={"requests": {"type": "array", "items": ref("Request")}})
schemas["GrantList"] = S("object", required=["grants"], additionalProperties=False,
                         properties={"grants": {"type": "array", "items": ref("Grant")}})
schemas["HostList"] = S("object", required=["hosts"], additionalProperties=False,
                        properties={"hosts": {"type": "array", "items": ref("Host")}})
schemas["AuditList"] = S("object", required=["events"], additionalProperties=False,
                         properties={"events": {"type": "array", "items": ref("AuditEvent")}})

ERRS = {
    "400": "invalid body, query or path (`invalid_body`, `invalid_query`, `invalid_path`, `invalid_ttl`, `invalid_cmd`, `invalid_key`)",
    "401": "no, invalid, stale, replayed or mismatched attestation (`attestation_missing`, `attestation_invalid`, `attestation_bad_signature`, `attestation_expired`, `attestation_not_yet_valid`, `attestation_too_long`, `attestation_mismatch`, `attestation_replayed`, `unknown_host`, `host_retired`)",
    "403": "not allowed (`not_requester`, `not_approver`, `not_approver_host`, `self_approval`, `not_admin`, `no_workflow`, `host_not_allowed`, `break_glass_not_allowed`, `ttl_too_long`, `ttl_too_short`, `enrollment_token_invalid`, `grant_token_invalid`)",
    "404": "no such object, or not visible to the caller (`not_found`)",
    "405": "method not allowed (`method_not_allowed`)",
    "408": "the body did not arrive within http.header_timeout (`body_timeout`)",
    "409": "the object is not in a state for this (`not_pending`, `already_approved`, `already_revoked`, `grant_expired`, `request_expired`, `host_exists`, `key_in_use`, `host_retired`)",
    "413": "body over 64 KiB (`body_too_large`)",
    "415": "a body without `Content-Type: application/json` (`unsupported_media_type`)",
    "500": "the broker failed (`internal`)",
    "503": "the store cannot take a write, or its file system is full or read-only (`not_ready`)",
}

def err(code):
    return {"description": ERRS[code], "content": {"application/json": {"schema": ref("Error")}}}

def op(summary, ok_status, ok_schema, body=None, params=(), errors=("400", "401", "403", "404", "405", "408", "409", "413", "415", "500"), auth=True, body_required=True, description=None):
    o = {"summary": summary, "responses": {ok_status: {"description": "OK", "content": {"application/json": {"schema": ref(ok_schema)}}}}}
    if description:
        o["description"] = description
    for e in errors:
        o["responses"][e] = err(e)
    if body:
        o["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": ref(body)}}}
    if params:
        o["parameters"] = list(params)
    if not auth:
        o["security"] = []
    return o

def qbool(name, d):
    return {"name": name, "in": "query", "required": False, "schema": {"type": "boolean"}, "description": d}

pid = lambda n="id", d="ULID": {"name": n, "in": "path", "required": True, "schema": {"type": "string"}, "description": d}

paths = {
    "/healthz": {"get": {**op("Liveness: the process answers", "200", "Health", auth=False, errors=("405",),
                              description="Looks at nothing else: for restarting a hung process, not for routing traffic (that is /readyz)."),
                         "operationId": "healthz"}},
    "/readyz": {"get": {**op("Readiness: the store takes a write and has room", "200", "Ready", auth=False, errors=("405", "500", "503"),
                             description="A write to the store (a probe row) and free space on its file system; 503 `not_ready` naming the cause (full, read-only, unwritable) otherwise. Results are reused for a second. For load balancers: route to brokers that are ready."),
                        "operationId": "readyz"}},
    "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4)", "operationId": "metrics", "security": [],
                         "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                                       "405": err("405"), "500": err("500")}}},
    "/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "security": [],
                                 "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
                                               "405": err("405")}}},
    "/v1/requests": {
        "post": {**op("Ask for access to a rule", "201", "Request", body="CreateRequest",
                      description="Pending until the workflow's approvals arrive; issued at once (state approved, grant_id set) for auto-approve, break-glass, or min_approvals 0."),
                 "operationId": "createRequest"},
        "get": {**op("List requests: yours and those you approve (admins: all)", "200", "RequestList",
                     params=[qbool("mine", "only your own"), qbool("pending", "only pending ones")]), "operationId": "listRequests"},
    },
    "/v1/requests/{id}": {"get": {**op("Show a request", "200", "Request", params=[pid()]), "operationId": "showRequest"}},
    "/v1/requests/{id}/approve": {"post": {**op("Approve (an approver who is not the requester)", "200", "Request", body="ApproveBody", params=[pid()], body_required=False), "operationId": "approveRequest"}},
    "/v1/requests/{id}/deny": {"post": {**op("Deny (an approver who is not the requester)", "200", "Request", body="ReasonBody", params=[pid()]), "operationId": "denyRequest"}},
    "/v1/requests/{id}/cancel": {"post": {**op("Cancel your own pending request", "200", "Request", params=[pid()]), "operationId": "cancelRequest"}},
    "/v1/grants": {"get": {**op("List grants: yours and those for rules you approve (admins: all)", "200", "GrantList",
                                params=[qbool("mine", "only your own"), qbool("active", "only not revoked, not expired")]), "operationId": "listGrants"}},
    "/v1/grants/{id}": {"get": {**op("Show a grant (its user, an approver for its rule, an admin)", "200", "Grant", params=[pid()]), "operationId": "showGrant"}},
    "/v1/grants/{id}/revoke": {"post": {**op("Revoke a grant: it goes on the signed revocation list", "200", "Grant", body="RevokeBody", params=[pid()],
                                              description="Works for a grant the broker has no record of too: an admin by id (listed until the longest max_ttl of the workflows), or its user or an approver presenting its token (listed until its exp)."),
                                         "operationId": "revokeGrant"}},
    "/v1/revocations": {"get": {**op("The current signed revocation list", "200", "Revocations"), "operationId": "revocations"}},
    "/v1/hosts": {
        "post": {**op("Enroll a host (admin, or the new host itself with an enrollment token)", "201", "Host", body="HostBody"), "operationId": "addHost"},
        "get": {**op("List hosts (admin)", "200", "HostList"), "operationId": "listHosts"},
    },
    "/v1/hosts/{name}/retire": {"post": {**op("Retire a host (admin)", "200", "Host", params=[pid("name", "host name")]), "operationId": "retireHost"}},
    "/v1/audit": {"get": {**op("Audit trail, oldest first (admin)", "200", "AuditList", params=[
        {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}, "description": "rows with id greater than this"},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "description": "at most this many (default 100)"}]),
        "operationId": "audit"}},
}

doc = {
    "openapi": "3.1.0",
    "info": {"title": "jitbroker", "version": "1",
             "description": "jitrun's broker: requests, approvals, signed grants, revocation lists. Every /v1 call except this document carries an attestation (`Authorization: JitAttest <token>`, a `jitrun:attest:v1` token from `jitrun attest`, bound to the method, path and body hash; see docs/broker.md). Bodies are JSON, at most 64 KiB; unknown fields are refused. Every error is `{\"error\":{\"code\",\"message\"}}`. With a PostgreSQL store, any call may answer 503 `store_unavailable` while the database cannot be reached (nothing was changed; try again, or another replica), and a change racing another on the same record may answer 409 `concurrent_change`."},
    "servers": [{"url": "http://127.0.0.1:7443"}],
    "security": [{"JitAttest": []}],
    "paths": paths,
    "components": {"schemas": schemas, "securitySchemes": {"JitAttest": {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "`JitAttest <token>`: PASETO v4.public with implicit assertion jitrun:attest:v1, signed by an enrolled host key"}}},
}
if __name__ == "__main__":
    print(json.dumps(doc, indent=2))
