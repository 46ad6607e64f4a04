-- The BRIN index that finds expired idempotency records summarizes each block range as soon
-- as it fills (autovacuum does it in the background).
--
-- Why: a BRIN index returns every unsummarized range as a candidate. Without autosummarize
-- ranges waited for a VACUUM, so the committer's periodic prune read the recent part of the
-- table, often all of it, to find no expired row.

ALTER INDEX idempotency_created SET (autosummarize = on);
