-- Each account's transfers as a chain through the transfers table, instead of two secondary
-- indexes on (debit_account_id, seq) and (credit_account_id, seq).
--
-- Why: with accounts spread over the index, every transfer wrote one random page in each
-- index, and SQLite writes whole pages to the WAL at each commit: these two indexes were more
-- than half of the bytes a commit wrote. Now the account row (rewritten anyway, for its
-- totals) holds the seq of its newest transfer, and each transfer holds, for each side, the
-- seq of that account's previous transfer. Appending a transfer touches no page but the
-- table's last one; listing an account's transfers newest first follows the chain, one rowid
-- lookup per transfer.

ALTER TABLE accounts ADD COLUMN last_transfer_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN prev_debit_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN prev_credit_seq INTEGER NOT NULL DEFAULT 0;

-- Link the transfers already posted. The append-only trigger is lifted for this, inside the
-- migration's transaction, and restored below.
DROP TRIGGER transfers_no_update;

CREATE TEMP TABLE chain AS
SELECT seq, side, lag(seq, 1, 0) OVER (PARTITION BY account ORDER BY seq) AS prev
FROM (SELECT seq, debit_account_id AS account, 'd' AS side FROM transfers
      UNION ALL
      SELECT seq, credit_account_id AS account, 'c' AS side FROM transfers);
CREATE INDEX temp.chain_seq ON chain (seq, side);

UPDATE transfers SET prev_debit_seq = chain.prev
FROM chain WHERE chain.seq = transfers.seq AND chain.side = 'd';
UPDATE transfers SET prev_credit_seq = chain.prev
FROM chain WHERE chain.seq = transfers.seq AND chain.side = 'c';

UPDATE accounts SET last_transfer_seq = heads.seq
FROM (SELECT account, max(seq) AS seq
      FROM (SELECT seq, debit_account_id AS account FROM transfers
            UNION ALL
            SELECT seq, credit_account_id AS account FROM transfers)
      GROUP BY account) AS heads
WHERE heads.account = accounts.id;

DROP TABLE temp.chain;

CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers are append-only');
END;

DROP INDEX transfers_debit;
DROP INDEX transfers_credit;
