-- What one `cxj forget` request erases (issue 11): its keys, identifiers, journey ids and the dead-letter
-- text pattern, inserted as data so that the `ALTER TABLE … DELETE` mutations name only the request id
-- (`customer_key IN (SELECT value FROM {db}.erasure_subjects WHERE request_id = '…' AND kind = 'key')`) and
-- no customer key or identifier reaches system.mutations, system.query_log or system.processes.
-- A mutation reads this table when it rewrites each part, not when it is issued: the command deletes a
-- request's rows only after its mutations are done. Rows older than a day belong to an interrupted run and
-- are removed by the next one. On a cluster every server holds all of it (sinks/cluster.py).
CREATE TABLE IF NOT EXISTS {db}.erasure_subjects
(
    request_id String,
    kind       String,
    value      String,
    added_at   DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY (request_id, kind, value);
