-- cofre-audit's trail, SQLite: append-only records in a hash chain, and signed checkpoints.
-- The triggers make both append-only (docs/audit.md).

CREATE TABLE audit_records (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT,
    time TEXT,
    recorded_at TEXT NOT NULL,
    client_id TEXT,
    owner TEXT,
    address TEXT,
    request_id TEXT,
    trace_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    currency TEXT,
    debit_account_id TEXT,
    credit_account_id TEXT,
    topic TEXT,
    event TEXT NOT NULL,
    amount INTEGER,
    time_us INTEGER,
    kafka_partition INTEGER NOT NULL,
    kafka_offset INTEGER NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_records_subject ON audit_records (subject, seq);
CREATE INDEX audit_records_type ON audit_records (type, seq);
CREATE INDEX audit_records_time ON audit_records (time_us);
CREATE TABLE audit_checkpoints (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    public_key BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
