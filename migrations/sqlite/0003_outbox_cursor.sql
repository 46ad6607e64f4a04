-- The outbox's published rows: a watermark instead of a published_at per row.
--
-- With one writer, outbox seqs are assigned in commit order without gaps, so "published" is a
-- prefix: every row up to outbox_cursor.published_seq has been acknowledged by the broker.
-- The relay moves the watermark with one single-row update per round of acknowledgements,
-- where marking each row rewrote it (about a kilobyte of CloudEvent) and an index entry, under
-- the write lock the committer needs. The partial index of unpublished rows goes with it: the
-- relay reads rows above the watermark by rowid. (PostgreSQL, with concurrent committers whose
-- seqs do not commit in order, keeps published_at.)

CREATE TABLE outbox_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    published_seq INTEGER NOT NULL CHECK (published_seq >= 0)
);
INSERT INTO outbox_cursor (id, published_seq)
VALUES (1, coalesce((SELECT min(seq) - 1 FROM outbox WHERE published_at IS NULL),
                    (SELECT max(seq) FROM outbox), 0));

DROP INDEX outbox_pending;
