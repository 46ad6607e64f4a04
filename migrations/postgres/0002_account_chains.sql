-- Each account's transfers as a chain through the transfers table, instead of two secondary
-- indexes on (debit_account_id, seq) and (credit_account_id, seq), as in SQLite's 0002.
--
-- Why: each of those indexes took one random page write per transfer. Now the account row
-- (updated anyway for its totals; the new column is not indexed, so the update stays HOT)
-- holds the seq of its newest transfer, each transfer holds, per side, the seq of that
-- account's previous one, and an index on seq (appended in order) serves the chain's lookups.

ALTER TABLE accounts ADD COLUMN last_transfer_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN prev_debit_seq bigint NOT NULL DEFAULT 0,
                      ADD COLUMN prev_credit_seq bigint NOT NULL DEFAULT 0;

-- Link the transfers already posted: the append-only trigger is off for this, inside the
-- migration's transaction.
ALTER TABLE transfers DISABLE TRIGGER transfers_append_only;
WITH postings AS (
    SELECT seq, debit_account_id AS account, 'd' AS side FROM transfers
    UNION ALL
    SELECT seq, credit_account_id AS account, 'c' AS side FROM transfers
), chain AS (
    SELECT seq, side, lag(seq, 1, 0::bigint) OVER (PARTITION BY account ORDER BY seq) AS prev
    FROM postings
)
UPDATE transfers t SET prev_debit_seq = d.prev, prev_credit_seq = c.prev
FROM chain d, chain c
WHERE d.seq = t.seq AND d.side = 'd' AND c.seq = t.seq AND c.side = 'c';
ALTER TABLE transfers ENABLE TRIGGER transfers_append_only;

UPDATE accounts a SET last_transfer_seq = heads.seq
FROM (SELECT account, max(seq) AS seq
      FROM (SELECT seq, debit_account_id AS account FROM transfers
            UNION ALL
            SELECT seq, credit_account_id AS account FROM transfers) AS postings
      GROUP BY account) AS heads
WHERE heads.account = a.id;

CREATE UNIQUE INDEX transfers_seq ON transfers (seq);
DROP INDEX transfers_debit;
DROP INDEX transfers_credit;

-- The committer numbers a batch's transfers ahead (nextval), and moves the chain heads.
GRANT USAGE ON SEQUENCE transfers_seq_seq TO cofre_core_service;
GRANT UPDATE (last_transfer_seq) ON accounts TO cofre_core_service;
