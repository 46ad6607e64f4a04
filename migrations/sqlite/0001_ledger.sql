-- cofre-core ledger schema, SQLite. The service's own checks come first; these constraints
-- and triggers are the second line of defence.

CREATE TABLE accounts (
    seq             INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    owner           TEXT    NOT NULL,
    currency        TEXT    NOT NULL CHECK (length(currency) = 3),
    no_overdraft    INTEGER NOT NULL CHECK (no_overdraft IN (0, 1)),
    debits_posted   INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending  INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    metadata        TEXT,
    created_at      TEXT    NOT NULL,
    CHECK (no_overdraft = 0 OR credits_posted >= debits_posted + debits_pending)
);
CREATE INDEX accounts_owner ON accounts (owner, seq);

CREATE TABLE transfers (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    debit_account_id  TEXT    NOT NULL REFERENCES accounts (id),
    credit_account_id TEXT    NOT NULL REFERENCES accounts (id),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    currency          TEXT    NOT NULL,
    reference         TEXT,
    client_id         TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX transfers_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers (credit_account_id, seq);

-- Posted transfers are facts: they are never changed or removed.
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers are append-only');
END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN
    SELECT RAISE(ABORT, 'transfers are append-only');
END;
-- Accounts are never removed, and their identity never changes.
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
BEGIN
    SELECT RAISE(ABORT, 'accounts are never deleted');
END;
CREATE TRIGGER accounts_identity BEFORE UPDATE OF id, owner, currency ON accounts
BEGIN
    SELECT RAISE(ABORT, 'account identity is immutable');
END;

CREATE TABLE idempotency (
    client_id    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (client_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY,
    event_id      TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    partition_key TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    traceparent   TEXT,
    created_at    TEXT    NOT NULL,
    published_at  TEXT
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
