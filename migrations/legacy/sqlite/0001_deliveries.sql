-- cofre-legacy's delivery store, SQLite: one row per posted transfer to deliver, and the
-- dead letters waiting to be published (docs/legacy-iso8583.md).

CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transfer_id TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL,
    rrn TEXT NOT NULL,
    debit_account_id TEXT NOT NULL,
    credit_account_id TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    posted_at_us INTEGER NOT NULL,
    traceparent TEXT,
    kafka_partition INTEGER,
    kafka_offset INTEGER,
    state TEXT NOT NULL CHECK (state IN ('pending','sent','applied','declined','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reversals INTEGER NOT NULL DEFAULT 0,
    stan INTEGER,
    sent_at_us INTEGER,
    response_code TEXT,
    auth_id TEXT,
    reason TEXT,
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);
CREATE INDEX deliveries_open ON deliveries (seq) WHERE state IN ('pending','sent');
CREATE TABLE dlq (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source_key TEXT NOT NULL UNIQUE,
    message_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    published_at_us INTEGER
);
CREATE INDEX dlq_unpublished ON dlq (seq) WHERE published_at_us IS NULL;
