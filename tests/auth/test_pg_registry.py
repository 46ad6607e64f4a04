"""cofre-auth on PostgreSQL (run with COFRE_TEST_DBS=postgres; skipped on SQLite).

Migrations (from empty, again, four at once, a newer schema refused), the service role's
grants and the schema's triggers, several replicas on one database behaving as one service,
PgBouncer in transaction mode, and the database going away: the replicas stay up, report not
ready, fail requests fast, keep publishing their keys (so tokens keep verifying at cofre-core),
and recover by themselves; a replica started while the database is down serves once it is back.
"""

import concurrent.futures
import os
import time

import psycopg2
import pytest
import requests

import authdb
import pg_cluster
from authlib import FAST_ARGON2, SLOW, Auth, bearer


@pytest.fixture
def pg(backend):
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only (COFRE_TEST_DBS=postgres)")
    return backend


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout * SLOW:.0f}s waiting for {what} ({last!r})")


def status(url, **kw):
    try:
        return requests.get(url, timeout=5, **kw).status_code
    except requests.RequestException:
        return None


def sqlstate(cluster, db, user, sql):
    """Runs sql as user on db: None when it succeeded, else its SQLSTATE."""
    conn = cluster.connect(db, user)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return None
    except psycopg2.Error as e:
        return e.pgcode
    finally:
        conn.close()


def test_migrations(pg):
    """From empty, four migrators at once (one applies, the others wait and find it done),
    again as a no-op, the service role's check, and a schema newer than the binary refused by
    migrate and by serve."""
    name = pg.create_db()
    url = pg.owner_url(name)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        runs = list(ex.map(lambda _: authdb.run_migrate(url), range(4)))
    assert all(r.returncode == 0 for r in runs), [r.stdout + r.stderr for r in runs]
    applied = sum(r.stdout.count('"migration applied"') for r in runs)
    assert applied == 1, [r.stdout for r in runs]
    rows = pg.cluster.sql("SELECT version, name FROM cofre_auth_schema_migrations", db=name)
    assert rows == [(1, "0001_auth.sql")]
    again = authdb.run_migrate(url)
    assert again.returncode == 0 and '"schema up to date"' in again.stdout, again
    app = pg.cluster.url(name, user=authdb.APP)
    assert authdb.run_migrate(app).returncode == 0  # a check only: the role may create nothing
    # the service role cannot migrate an empty database
    empty = pg.create_db()
    r = authdb.run_migrate(pg.cluster.url(empty, user=authdb.APP))
    assert r.returncode == 1 and "migration failed" in r.stdout, r
    pg.cluster.sql("INSERT INTO cofre_auth_schema_migrations (version, name) "
                   "VALUES (99, '0099_future.sql')", db=name)
    r = authdb.run_migrate(url)
    assert r.returncode == 1 and "newer than this binary" in r.stdout, r


def test_service_role_grants_and_triggers(pg, fresh):
    """The replicas' role may add clients, change their secret and disable them, add keys and
    events, and mark events published once; nothing else. The triggers hold for the owner."""
    auth = fresh.auth()
    fresh.secrets.append(auth.add_client("shop", scopes="accounts:read"))
    auth.cli("client", "disable", "shop")
    fresh.secrets.append(auth.add_client("other", scopes="accounts:read"))
    c, db, app, owner = pg.cluster, pg.dbname(auth.db), authdb.APP, authdb.OWNER
    refused = {
        "DELETE FROM clients WHERE client_id = 'other'": "42501",
        "UPDATE clients SET owner = 'mallory' WHERE client_id = 'other'": "42501",
        "UPDATE clients SET scopes = 'ledger:admin' WHERE client_id = 'other'": "42501",
        "UPDATE clients SET disabled_at = NULL WHERE client_id = 'shop'": "42501",
        "UPDATE signing_keys SET public_jwk = '{}'": "42501",
        "DELETE FROM signing_keys": "42501",
        "DELETE FROM outbox": "42501",
        "UPDATE outbox SET payload = '{}'": "42501",
        "TRUNCATE outbox": "42501",
        "INSERT INTO clients (client_id, owner, scopes, secret_hash, created_at, "
        "secret_changed_at) VALUES ('weak', 'x', '', 'plaintext', now(), now())": "23514",
    }
    for sql, state in refused.items():
        assert sqlstate(c, db, app, sql) == state, sql
    # allowed: mark an unpublished event, once (the trigger refuses a second time)
    seq = c.sql("SELECT min(seq) FROM outbox WHERE published_at IS NULL", db=db)[0][0]
    assert sqlstate(c, db, app, f"UPDATE outbox SET published_at = now() WHERE seq = {seq}") is None
    assert sqlstate(c, db, app, f"UPDATE outbox SET published_at = now() WHERE seq = {seq}") == \
        "42501"
    # the owner is held by the triggers too
    for sql in ("DELETE FROM clients WHERE client_id = 'other'",
                "UPDATE clients SET owner = 'mallory' WHERE client_id = 'other'",
                "UPDATE clients SET disabled_at = NULL WHERE client_id = 'shop'",
                "UPDATE signing_keys SET activates_at = activates_at + interval '1 day'",
                "DELETE FROM outbox WHERE published_at IS NULL"):
        assert sqlstate(c, db, owner, sql) == "42501", sql
    assert c.sql("SELECT count(*) FROM clients", db=db)[0][0] == 2


def test_replicas_behave_as_one_service(pg, fresh):
    """Two replicas on one database and one keys directory: a client registered once gets
    tokens from either; a token from one is active at the other's introspection; a rotated
    key is published by both and then signs on both; a disabled client is refused by both and
    listed in both revocation lists."""
    a = fresh.auth()
    b = fresh.auth(db=a.db, keys_dir=a.keys_dir)
    secret = a.add_client("shop", scopes="accounts:read ledger:admin", owner="shop")
    fresh.secrets.append(secret)
    ta, tb = a.token("shop", secret), b.token("shop", secret)
    fresh.secrets += [ta, tb]
    assert b.introspect(ta, "shop", secret)["active"] is True
    assert a.introspect(tb, "shop", secret)["active"] is True
    assert a.jwks() == b.jwks() and len(a.jwks()["keys"]) == 1
    old_kid = a.jwks()["keys"][0]["kid"]

    a.env["COFRE_AUTH_KEY_LEAD_S"] = "3"  # for the command line only: a is running
    _, out, _ = a.cli("keys", "rotate")
    new_kid = out.split("kid: ", 1)[1].split()[0]
    wait_until(lambda: all(len(x.jwks()["keys"]) == 2 for x in (a, b)), 10, "both publish 2 keys")
    assert a.jwks() == b.jwks()

    def signs_new(x):
        import jwt
        t = x.token("shop", secret)
        fresh.secrets.append(t)
        return jwt.get_unverified_header(t)["kid"] == new_kid
    wait_until(lambda: signs_new(a) and signs_new(b), 15, "both to sign with the rotated key")
    assert new_kid != old_kid

    a.cli("client", "disable", "shop")
    wait_until(lambda: all(x.token_response("shop", secret).status_code == 401 for x in (a, b)),
               5, "both replicas to refuse the disabled client")
    for x in (a, b):
        listed = requests.get(x.url("/oauth/revocations"), timeout=5).json()["clients"]
        wait_until(lambda: [c["client_id"] for c in requests.get(
            x.url("/oauth/revocations"), timeout=5).json()["clients"]] == ["shop"], 5,
            f"the revocation list of {x.base}")
        assert isinstance(listed, list)


def test_through_pgbouncer_in_transaction_mode(pg, fresh):
    """No session state: the registry, the command line and the relay's lease work through
    PgBouncer's transaction pooling with a pool smaller than the connections."""
    bouncer = pg_cluster.PgBouncer(pg.cluster, pool_size=2).start()
    try:
        name = pg.create_db()
        assert authdb.run_migrate(bouncer.url(name, user=authdb.OWNER)).returncode == 0
        auth = fresh.auth(db=bouncer.url(name, user=authdb.APP), COFRE_AUTH_HASHERS="3")
        secret = auth.add_client("via-bouncer", scopes="accounts:read")
        fresh.secrets.append(secret)
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            codes = list(ex.map(lambda _: auth.token_response("via-bouncer", secret).status_code,
                                range(24)))
        assert codes == [200] * 24, codes
        issued = pg.cluster.sql("SELECT count(*) FROM outbox WHERE type = "
                                "'cofre.auth.token.issued'", db=name)[0][0]
        assert issued == 24
        auth.cli("client", "disable", "via-bouncer")
        assert auth.token_response("via-bouncer", secret).status_code == 401
        # the relay's lease statement, as the replicas run it, through the pooler
        conn = psycopg2.connect(host="127.0.0.1", port=bouncer.port, user=authdb.APP, dbname=name)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM relay_leases")
        conn.close()
    finally:
        bouncer.stop()


@pytest.fixture
def own_cluster(pg):
    """A cluster of this test's own, to stop and start without disturbing the others."""
    c = pg_cluster.PgCluster().init().start()
    b = authdb.PostgresDb(c)
    b.start()
    yield b
    c.destroy()


def test_database_outage(own_cluster, fresh, tmp_path):
    """The database stops under a running replica: it stays up (same process), /healthz 200,
    /readyz 503, token requests fail fast with 503, the JWK Set and the revocation list are
    still served, so cofre-core keeps verifying tokens (one it never saw before included) and
    refreshing its keys. The database returns: the replica is ready and issues tokens again
    without a restart."""
    b = own_cluster
    wd = tmp_path / "auth"
    wd.mkdir()
    auth = Auth(str(wd), db=b.new_db(str(wd)), backend=b, **FAST_ARGON2).start()
    fresh.started.append(auth)
    secret = auth.add_client("shop", scopes="accounts:read", owner="shop")
    fresh.secrets.append(secret)
    (tmp_path / "core").mkdir()
    core = auth.core(str(tmp_path / "core"), COFRE_JWKS_REFRESH_S="1")
    fresh.started.append(core)
    seen, unseen = auth.token("shop", secret), auth.token("shop", secret)
    fresh.secrets += [seen, unseen]
    assert requests.get(core.url("/v1/accounts"), headers=bearer(seen), timeout=5).status_code \
        == 200
    pid = auth.proc.pid

    b.cluster.stop("fast")
    wait_until(lambda: status(auth.url("/readyz")) == 503, 10, "auth /readyz 503")
    assert status(auth.url("/healthz")) == 200
    t0 = time.monotonic()
    r = auth.token_response("shop", secret)
    took = time.monotonic() - t0
    assert r.status_code == 503 and took < 2.0 * SLOW, (r.status_code, r.text, took)
    assert status(auth.url("/.well-known/jwks.json")) == 200
    assert status(auth.url("/oauth/revocations")) == 200
    refreshes = core.metric("cofre_jwks_refreshes_total", result="ok")
    wait_until(lambda: core.metric("cofre_jwks_refreshes_total", result="ok") > refreshes + 1, 10,
               "cofre-core to refresh its keys during the outage")
    for t in (seen, unseen):
        got = requests.get(core.url("/v1/accounts"), headers=bearer(t), timeout=5)
        assert got.status_code == 200, got.text
    assert status(core.url("/readyz")) == 200

    b.cluster.start()
    wait_until(lambda: status(auth.url("/readyz")) == 200, 20, "auth ready again")
    assert auth.proc.pid == pid and auth.proc.poll() is None
    fresh.secrets.append(auth.token("shop", secret))
    assert auth.find_log(lambda o: o.get("msg") == "registry unreachable")
    assert auth.find_log(lambda o: o.get("msg") == "registry reachable")


def test_start_while_the_database_is_down(own_cluster, fresh, tmp_path):
    """A replica started against a migrated database that is down (and has no key yet)
    listens, answers /healthz 200 and /readyz 503, and once the database is up makes the first
    signing key and becomes ready."""
    b = own_cluster
    wd = tmp_path / "auth"
    wd.mkdir()
    db = b.new_db(str(wd))
    b.cluster.stop("fast")
    auth = Auth(str(wd), db=db, backend=b, COFRE_MIGRATE="off", **FAST_ARGON2)
    fresh.started.append(auth)
    auth.start(ready=False)
    assert status(auth.url("/healthz")) == 200
    assert status(auth.url("/readyz")) == 503
    assert auth.token_response("x", "y" * 43).status_code == 503
    b.cluster.start()
    wait_until(lambda: status(auth.url("/readyz")) == 200, 20, "auth ready")
    assert len(auth.jwks()["keys"]) == 1
    assert len(os.listdir(auth.keys_dir)) == 1
