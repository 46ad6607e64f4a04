"""Fixtures of the auth suite: a cofre-auth per module (and fresh ones for tests that need
their own settings), cofre-core with token checks on, and the checks every server passes on
the way out: SIGTERM ends it with exit 0, every stdout line is a JSON log object, and no
secret or token that the test handled appears in any log.

Every test that starts a cofre-auth runs once per registry backend of COFRE_TEST_DBS (default
"sqlite"; authdb.py): the session-scoped `backend` fixture is parametrised here and the server
fixtures depend on it, so the suite repeats per backend without copies."""

import os

import pytest

import authdb
from authlib import FAST_ARGON2, Auth


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", authdb.selected_names(), indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request):
    b = authdb.BACKENDS[request.param]()
    b.start()
    yield b
    b.stop()


class Servers:
    def __init__(self, workdir, backend):
        self.workdir = workdir
        self.backend = backend
        self.started = []
        self.secrets = []  # every secret and token the tests saw: never in a log

    def auth(self, db=None, keys_dir=None, start=True, **env):
        """A cofre-auth on a fresh registry of the backend, or on db (a replica: give it the
        first one's keys_dir too)."""
        wd = os.path.join(str(self.workdir), f"auth{len(self.started)}")
        os.makedirs(wd, exist_ok=True)
        merged = dict(FAST_ARGON2)
        merged.update(env)
        a = Auth(wd, db=db or self.backend.new_db(wd), backend=self.backend, keys_dir=keys_dir,
                 **merged)
        self.started.append(a)
        return a.start() if start else a

    def core(self, auth, **env):
        wd = os.path.join(str(self.workdir), f"core{len(self.started)}")
        os.makedirs(wd, exist_ok=True)
        c = auth.core(wd, **env)
        self.started.append(c)
        return c

    def finish(self):
        problems = []
        for p in self.started:
            try:
                rc = p.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if rc != 0:
                problems.append(f"{p.name} exited {rc}; stderr: {p.stderr()[-2000:]!r}")
            for line in p.lines:
                if not line.startswith("{"):
                    problems.append(f"{p.name}: not a JSON log line: {line[:200]!r}")
                    break
            text = p.text() + p.stderr()
            for s in self.secrets:
                if s and len(s) >= 16 and s in text:
                    problems.append(f"{p.name} logged a secret or token ({s[:8]}...)")
        return problems


@pytest.fixture(scope="module")
def servers(tmp_path_factory, backend):
    s = Servers(tmp_path_factory.mktemp("auth-suite"), backend)
    yield s
    problems = s.finish()
    assert not problems, "; ".join(problems)


@pytest.fixture
def fresh(tmp_path, backend):
    """Servers for one test only (their own settings)."""
    s = Servers(tmp_path, backend)
    yield s
    problems = s.finish()
    assert not problems, "; ".join(problems)


@pytest.fixture(scope="module")
def auth(servers):
    return servers.auth()


@pytest.fixture(scope="module")
def core(servers, auth):
    return servers.core(auth)
