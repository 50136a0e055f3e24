-- jitbroker store, version 3: several broker processes may share a store (PostgreSQL).

-- Each queued syslog event belongs to the replica that committed it: that replica sends it to
-- its own syslog socket (rows queued before version 3 go to the first replica that opens the
-- store).
ALTER TABLE syslog_outbox ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE INDEX syslog_outbox_replica ON syslog_outbox(replica, id);

-- Webhook deliveries are claimed (next_attempt_ms moved to the end of the claim) before they
-- are sent; the due ones are found by this index.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE delivered_at IS NULL AND failed_at IS NULL;
