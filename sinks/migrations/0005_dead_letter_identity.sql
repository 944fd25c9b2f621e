-- Dead letters (issue 12 and 11): what makes a rejection the same one, and whom it is about.
-- payload_hash: a keyed hash of the payload; with (topic, partition, offset, idx) it is the dead letter's
-- identity, so offsets that repeat (a recreated topic, a broker that lost its log, a mirrored cluster)
-- never hide a new rejection, and a replay of the same input still stores nothing twice.
-- subjects: the customer id and hashed identifiers the payload names, as the pipeline keys them, so
-- `cxj forget` erases a customer's dead letters by value rather than by searching their text.
ALTER TABLE {db}.dead_letters ADD COLUMN payload_hash String DEFAULT '';
ALTER TABLE {db}.dead_letters ADD COLUMN subjects Array(String) DEFAULT emptyArrayString()
