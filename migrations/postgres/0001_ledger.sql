-- cofre-core ledger schema, PostgreSQL. The service's own checks come first; these
-- constraints, triggers and grants are the second line of defence.
--
-- Roles: the role that runs `cofre-core migrate` owns every object here. The replicas connect
-- as a login role that is a member of cofre_core_service, which gets only what the service
-- needs: transfers and outbox rows can be inserted but never updated or deleted (the relay
-- may set outbox.published_at, nothing else), accounts only change their totals.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cofre_core_service') THEN
        CREATE ROLE cofre_core_service NOLOGIN;
    END IF;
END
$$;

CREATE TABLE accounts (
    id              uuid        PRIMARY KEY,
    seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    owner           text        NOT NULL CHECK (length(owner) BETWEEN 1 AND 128),
    currency        text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    no_overdraft    boolean     NOT NULL,
    debits_posted   bigint      NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  bigint      NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending  bigint      NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending bigint      NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    metadata        json        CHECK (octet_length(metadata::text) <= 4096),
    created_at      timestamptz NOT NULL,
    CONSTRAINT no_overdraft
        CHECK (NOT no_overdraft OR credits_posted >= debits_posted + debits_pending)
) WITH (fillfactor = 70); -- room on each page for HOT updates of the totals (no index writes)
CREATE INDEX accounts_owner ON accounts (owner, seq);

CREATE TABLE transfers (
    id                uuid        PRIMARY KEY,
    seq               bigint      GENERATED ALWAYS AS IDENTITY, -- pages: per account, below
    debit_account_id  uuid        NOT NULL REFERENCES accounts (id),
    credit_account_id uuid        NOT NULL REFERENCES accounts (id),
    amount            bigint      NOT NULL CHECK (amount > 0),
    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reference         text        CHECK (octet_length(reference) <= 560),
    client_id         text        NOT NULL,
    created_at        timestamptz NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX transfers_debit ON transfers (debit_account_id, seq);
CREATE INDEX transfers_credit ON transfers (credit_account_id, seq);

-- Posted transfers are facts, for every role, the owner included.
CREATE FUNCTION cofre_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION cofre_append_only();
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION cofre_append_only();

-- An account's identity never changes (the trigger fires only when these columns are set).
CREATE FUNCTION cofre_account_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.owner <> OLD.owner OR NEW.currency <> OLD.currency
       OR NEW.no_overdraft <> OLD.no_overdraft OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'account identity is immutable' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_identity BEFORE UPDATE OF id, owner, currency, no_overdraft, created_at
    ON accounts FOR EACH ROW EXECUTE FUNCTION cofre_account_identity();

CREATE TABLE idempotency (
    client_id    text        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL CHECK (length(request_hash) = 32),
    status       integer     NOT NULL CHECK (status BETWEEN 100 AND 599),
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (client_id, key)
);
-- Rows arrive in created_at order, so a BRIN index finds expired ones at almost no cost per
-- insert (a btree here would be one more index write per request).
CREATE INDEX idempotency_created ON idempotency USING brin (created_at);

-- The relay reads and marks unpublished rows only, by seq: the partial index serves it, and
-- seq needs no index of its own.
CREATE TABLE outbox (
    seq           bigint      GENERATED ALWAYS AS IDENTITY,
    event_id      uuid        PRIMARY KEY,
    topic         text        NOT NULL,
    partition_key text        NOT NULL,
    type          text        NOT NULL,
    payload       text        NOT NULL,
    traceparent   text,
    created_at    timestamptz NOT NULL,
    published_at  timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

-- An event, once written, never changes; it is only marked published, once.
CREATE FUNCTION cofre_outbox_mark_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> OLD.seq OR NEW.event_id <> OLD.event_id OR NEW.topic <> OLD.topic
       OR NEW.partition_key <> OLD.partition_key OR NEW.type <> OLD.type
       OR NEW.payload <> OLD.payload OR NEW.traceparent IS DISTINCT FROM OLD.traceparent
       OR NEW.created_at <> OLD.created_at OR OLD.published_at IS NOT NULL THEN
        RAISE EXCEPTION 'outbox rows only get published_at, once'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER outbox_mark_only BEFORE UPDATE ON outbox
    FOR EACH ROW EXECUTE FUNCTION cofre_outbox_mark_only();

-- What the service role may do, and nothing more.
GRANT SELECT ON cofre_schema_migrations TO cofre_core_service;
GRANT SELECT, INSERT ON accounts TO cofre_core_service;
GRANT UPDATE (debits_posted, credits_posted, debits_pending, credits_pending)
    ON accounts TO cofre_core_service;
GRANT SELECT, INSERT ON transfers TO cofre_core_service;
GRANT SELECT, INSERT, DELETE ON idempotency TO cofre_core_service;
GRANT SELECT, INSERT ON outbox TO cofre_core_service;
GRANT UPDATE (published_at) ON outbox TO cofre_core_service;
