-- jitbroker store on PostgreSQL, version 3 (as ../0003_replicas.sql).
ALTER TABLE syslog_outbox ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE INDEX syslog_outbox_replica ON syslog_outbox(replica, id);

DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox(next_attempt_ms) WHERE delivered_at IS NULL AND failed_at IS NULL;

-- A durable commit that held the audit chain's lock commits without waiting for the disk
-- (so that the next writer need not wait either), then one row here per connection is
-- written with a synchronous commit, which waits for the disk up to and including it.
CREATE TABLE commit_barrier (
    pid BIGINT PRIMARY KEY,
    n BIGINT NOT NULL
);
