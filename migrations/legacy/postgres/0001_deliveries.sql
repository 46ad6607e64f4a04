-- cofre-legacy delivery store, PostgreSQL (services/legacy/adapter_store_pg.c). Several
-- cofre-legacy replicas share one database: each partition of cofre.ledger.events is leased to
-- one replica at a time (legacy_partition_leases), and a replica stores, sends and updates only
-- the deliveries of the partitions it leases (docs/legacy-iso8583.md, "Several replicas").
--
-- Roles: the role that runs `cofre-legacy migrate` owns every object here. Replicas may connect
-- as a login role that is a member of cofre_legacy_service, which gets only what the service
-- needs: a stored transfer never changes, only its delivery columns do, and a final delivery
-- never changes again. When the migrating role may not create roles, the role is not created
-- and the grants are skipped (replicas then connect as the owner).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cofre_legacy_service') THEN
        BEGIN
            CREATE ROLE cofre_legacy_service NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'role cofre_legacy_service not created (no CREATEROLE): grants skipped';
        END;
    END IF;
END
$$;

-- One row per posted transfer, in the order consumed (seq). Times are Unix microseconds, as
-- the protocol uses them (sent_at_us gives field 7 of the transmission a reversal names).
CREATE TABLE legacy_deliveries (
    seq               bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id       text    NOT NULL UNIQUE CHECK (length(transfer_id) BETWEEN 1 AND 36),
    event_id          text    NOT NULL CHECK (length(event_id) BETWEEN 1 AND 128),
    rrn               text    NOT NULL CHECK (length(rrn) = 12),
    debit_account_id  text    NOT NULL CHECK (length(debit_account_id) BETWEEN 1 AND 36),
    credit_account_id text    NOT NULL CHECK (length(credit_account_id) BETWEEN 1 AND 36),
    amount            bigint  NOT NULL CHECK (amount > 0),
    currency          text    NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    posted_at_us      bigint  NOT NULL,
    traceparent       text    CHECK (length(traceparent) <= 55),
    kafka_partition   integer NOT NULL CHECK (kafka_partition >= 0),
    kafka_offset      bigint  NOT NULL CHECK (kafka_offset >= 0),
    state             text    NOT NULL
        CHECK (state IN ('pending', 'sent', 'applied', 'declined', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    reversals         integer NOT NULL DEFAULT 0 CHECK (reversals >= 0),
    stan              integer CHECK (stan BETWEEN 1 AND 999999),
    sent_at_us        bigint,
    response_code     text    CHECK (length(response_code) <= 2),
    auth_id           text    CHECK (length(auth_id) <= 6),
    reason            text,
    created_at_us     bigint  NOT NULL,
    updated_at_us     bigint  NOT NULL,
    CHECK (state <> 'sent' OR (stan IS NOT NULL AND sent_at_us IS NOT NULL))
);
-- A replica reads the open deliveries of its partitions, each from its own cursor.
CREATE INDEX legacy_deliveries_open ON legacy_deliveries (kafka_partition, seq)
    WHERE state IN ('pending', 'sent');

-- A final delivery is a fact: no role changes it again (a replica that lost its lease, or a
-- bug, fails here instead of undoing an outcome the host answered).
CREATE FUNCTION legacy_delivery_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'delivery % is final (%)', OLD.seq, OLD.state
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER legacy_deliveries_final BEFORE UPDATE ON legacy_deliveries
    FOR EACH ROW WHEN (OLD.state IN ('applied', 'declined', 'failed'))
    EXECUTE FUNCTION legacy_delivery_is_final();

-- Dead letters: written in the same transaction as their cause, published to
-- cofre.legacy.dlq afterwards. A replica claims rows for a while before producing them, so two
-- replicas do not publish the same row at once.
CREATE TABLE legacy_dead_letters (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_key      text   NOT NULL UNIQUE CHECK (length(source_key) BETWEEN 1 AND 160),
    message_key     text   NOT NULL CHECK (length(message_key) BETWEEN 1 AND 160),
    reason          text   NOT NULL,
    payload         text   NOT NULL,
    created_at_us   bigint NOT NULL,
    claimed_by      text,
    claimed_until   timestamptz,
    published_at_us bigint
);
CREATE INDEX legacy_dead_letters_unpublished ON legacy_dead_letters (seq)
    WHERE published_at_us IS NULL;

-- Which replica (owner: a name unique to one process) may store and deliver the events of a
-- partition, until when (the database's clock). A lease is renewed by its owner, released when
-- Kafka moves the partition and nothing of it is in flight, and taken by another replica only
-- once released or expired.
CREATE TABLE legacy_partition_leases (
    partition   integer     PRIMARY KEY CHECK (partition >= 0),
    owner       text        NOT NULL CHECK (length(owner) BETWEEN 1 AND 128),
    lease_until timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    handovers   bigint      NOT NULL DEFAULT 0
);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'cofre_legacy_service') THEN
        GRANT SELECT ON cofre_legacy_schema_migrations TO cofre_legacy_service;
        GRANT SELECT, INSERT, DELETE ON legacy_deliveries TO cofre_legacy_service;
        GRANT UPDATE (state, attempts, reversals, stan, sent_at_us, response_code, auth_id,
                      reason, updated_at_us) ON legacy_deliveries TO cofre_legacy_service;
        GRANT SELECT, INSERT, DELETE ON legacy_dead_letters TO cofre_legacy_service;
        GRANT UPDATE (claimed_by, claimed_until, published_at_us)
            ON legacy_dead_letters TO cofre_legacy_service;
        GRANT SELECT, INSERT ON legacy_partition_leases TO cofre_legacy_service;
        GRANT UPDATE (owner, lease_until, acquired_at, renewed_at, handovers)
            ON legacy_partition_leases TO cofre_legacy_service;
    END IF;
END
$$;
