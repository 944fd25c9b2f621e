-- Audit of `cxj forget`: which stages erased a request, how much, when. Holds the request id and counts,
-- never the customer key or identifiers it erased (the audit must not undo the erasure).
-- Replacing by (request_id, stage, item): a replayed acknowledgement is written again, not twice.
CREATE TABLE IF NOT EXISTS {db}.erasures
(
    request_id String,
    stage      String,
    item       UInt32,
    partition  Int32,
    expected   UInt32,
    erased     UInt64,
    done_at    DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY (request_id, stage, item);
