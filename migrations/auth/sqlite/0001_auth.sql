-- cofre-auth schema, SQLite: the client registry, the signing keys' public records and the
-- outbox of auth events (the same columns as cofre-core's outbox, so one relay reads both).

CREATE TABLE clients (
    client_id         TEXT    PRIMARY KEY,
    owner             TEXT    NOT NULL,
    scopes            TEXT    NOT NULL,       -- space-separated scope names
    secret_hash       TEXT    NOT NULL CHECK (secret_hash LIKE '$argon2id$%'),
    disabled_at       INTEGER,                -- Unix seconds; NULL while enabled
    created_at        TEXT    NOT NULL,
    secret_changed_at TEXT    NOT NULL
) WITHOUT ROWID;

-- Clients are disabled, never deleted: their id stays taken and their events stay meaningful.
CREATE TRIGGER clients_no_delete BEFORE DELETE ON clients
BEGIN
    SELECT RAISE(ABORT, 'clients are disabled, never deleted');
END;
CREATE TRIGGER clients_identity BEFORE UPDATE OF client_id, owner ON clients
BEGIN
    SELECT RAISE(ABORT, 'client identity is immutable');
END;

-- A signing key's public record: every replica publishes the same JWK Set from here. The
-- private key is a file (mode 0600) named <kid>.pem in the keys directory; it never enters
-- the database.
CREATE TABLE signing_keys (
    kid          TEXT    PRIMARY KEY,
    public_jwk   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL CHECK (activates_at >= created_at)
) WITHOUT ROWID;

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
