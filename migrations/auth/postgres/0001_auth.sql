-- cofre-auth schema, PostgreSQL: the client registry, the signing keys' public records, the
-- outbox of auth events (the same columns as cofre-core's outbox) and the relay's lease. The
-- service's own checks come first; these constraints, triggers and grants are the second line
-- of defence.
--
-- cofre-auth keeps its own database (as cofre-core, cofre-audit and cofre-legacy do): its
-- tables are named like the SQLite ones, and its versions are counted in
-- cofre_auth_schema_migrations, so it never mistakes another service's schema for its own.
--
-- Roles: the role that runs `cofre-auth migrate` owns every object here. The replicas connect
-- as a login role that is a member of cofre_auth_service, which gets only what the service
-- needs: clients are added, disabled (once) and given new secrets, never deleted or renamed;
-- signing key records and outbox rows are only added (the relay may set
-- outbox.published_at, once).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cofre_auth_service') THEN
        CREATE ROLE cofre_auth_service NOLOGIN;
    END IF;
END
$$;

CREATE TABLE clients (
    client_id         text        PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    owner             text        NOT NULL CHECK (owner ~ '^[A-Za-z0-9._:@-]{1,128}$'),
    scopes            text        NOT NULL CHECK (length(scopes) <= 96), -- space-separated
    secret_hash       text        NOT NULL CHECK (secret_hash LIKE '$argon2id$%'
                                                  AND length(secret_hash) < 128),
    disabled_at       timestamptz,             -- NULL while enabled
    created_at        timestamptz NOT NULL,
    secret_changed_at timestamptz NOT NULL
);

-- Clients are disabled, never deleted: their id stays taken and their events stay meaningful.
-- A client's identity never changes, and a disabled client stays disabled.
CREATE FUNCTION cofre_auth_client_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'clients are disabled, never deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.client_id <> OLD.client_id OR NEW.owner <> OLD.owner
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'client identity is immutable' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.disabled_at IS NOT NULL AND NEW.disabled_at IS DISTINCT FROM OLD.disabled_at THEN
        RAISE EXCEPTION 'a disabled client stays disabled'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER clients_guard BEFORE UPDATE OR DELETE ON clients
    FOR EACH ROW EXECUTE FUNCTION cofre_auth_client_guard();

-- A signing key's public record: every replica publishes the same JWK Set from here. The
-- private key is a file (mode 0600) named <kid>.pem in COFRE_AUTH_KEYS_DIR, shared by the
-- replicas; it never enters the database. Records are facts: never changed or removed (a
-- key leaves the JWK Set by its times alone).
CREATE TABLE signing_keys (
    kid          text        PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{43}$'),
    public_jwk   text        NOT NULL CHECK (octet_length(public_jwk) < 320),
    created_at   timestamptz NOT NULL,
    activates_at timestamptz NOT NULL,
    CHECK (activates_at >= created_at)
);
CREATE INDEX signing_keys_order ON signing_keys (activates_at, created_at, kid);

CREATE FUNCTION cofre_auth_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER signing_keys_append_only BEFORE UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION cofre_auth_append_only();

-- The relay reads and marks unpublished rows only, by seq: the partial index serves it.
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
CREATE FUNCTION cofre_auth_outbox_mark_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
    FOR EACH ROW EXECUTE FUNCTION cofre_auth_outbox_mark_only();
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
    FOR EACH ROW WHEN (OLD.published_at IS NULL) EXECUTE FUNCTION cofre_auth_append_only();

-- Which replica relays the outbox: one row per outbox, held for a short lease that the holder
-- renews while it runs (a row, not an advisory lock, so that it works through PgBouncer in
-- transaction mode). Another replica takes over when the lease runs out.
CREATE TABLE relay_leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    expires_at timestamptz NOT NULL
);

-- What the service role may do, and nothing more.
GRANT SELECT ON cofre_auth_schema_migrations TO cofre_auth_service;
GRANT SELECT, INSERT ON clients TO cofre_auth_service;
GRANT UPDATE (secret_hash, secret_changed_at, disabled_at) ON clients TO cofre_auth_service;
GRANT SELECT, INSERT ON signing_keys TO cofre_auth_service;
GRANT SELECT, INSERT ON outbox TO cofre_auth_service;
GRANT UPDATE (published_at) ON outbox TO cofre_auth_service;
GRANT SELECT, INSERT ON relay_leases TO cofre_auth_service;
GRANT UPDATE (holder, expires_at) ON relay_leases TO cofre_auth_service;
