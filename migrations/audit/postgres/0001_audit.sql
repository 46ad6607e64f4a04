-- cofre-audit's trail on PostgreSQL. The service's hash chain and signed checkpoints are what
-- make tampering evident; these grants and triggers make it hard in the first place.
--
-- Roles: the role that runs `cofre-audit migrate` owns every object here. The replicas
-- connect as a login role that is a member of cofre_audit_service, which may only read and
-- append: no UPDATE, no DELETE, no TRUNCATE of records or checkpoints. The triggers refuse
-- UPDATE, DELETE and TRUNCATE for every role, the owner included; only the owner can switch
-- them off (ALTER TABLE ... DISABLE TRIGGER), and what it then changes, `cofre-audit verify`
-- finds.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cofre_audit_service') THEN
        CREATE ROLE cofre_audit_service NOLOGIN;
    END IF;
END
$$;

-- seq is assigned by the appender under an advisory lock (one chain across replicas), not by
-- a sequence: a gap would be indistinguishable from a deleted record.
CREATE TABLE audit_records (
    seq               bigint  PRIMARY KEY CHECK (seq > 0),
    event_id          text    NOT NULL UNIQUE,
    type              text    NOT NULL,
    source            text    NOT NULL,
    subject           text,
    time              text,
    recorded_at       text    NOT NULL,
    client_id         text,
    owner             text,
    address           text,
    request_id        text,
    trace_id          text,
    outcome           text    NOT NULL,
    reason            text,
    currency          text,
    debit_account_id  text,
    credit_account_id text,
    topic             text,
    event             text    NOT NULL,
    amount            bigint,
    time_us           bigint,
    kafka_partition   integer NOT NULL,
    kafka_offset      bigint  NOT NULL,
    hash              bytea   NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_records_subject ON audit_records (subject, seq);
CREATE INDEX audit_records_type ON audit_records (type, seq);
CREATE INDEX audit_records_time ON audit_records (time_us);

CREATE TABLE audit_checkpoints (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq        bigint NOT NULL,
    hash       bytea  NOT NULL CHECK (length(hash) = 32),
    created_at text   NOT NULL,
    public_key bytea  NOT NULL CHECK (length(public_key) = 32),
    signature  bytea  NOT NULL CHECK (length(signature) = 64)
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);

CREATE FUNCTION cofre_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION cofre_audit_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION cofre_audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION cofre_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION cofre_audit_append_only();

-- What the service role may do, and nothing more.
GRANT SELECT ON cofre_audit_schema_migrations TO cofre_audit_service;
GRANT SELECT, INSERT ON audit_records TO cofre_audit_service;
GRANT SELECT, INSERT ON audit_checkpoints TO cofre_audit_service;
