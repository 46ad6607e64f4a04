"""Fixtures of the black-box suite: backends, real cofre-core processes, API clients.

Every test runs once per backend of COFRE_TEST_DBS (default "sqlite"): the session-scoped
`backend` fixture is parametrised here and pulled into every test by an autouse fixture, so
the whole suite repeats per backend without copies. `core_factory` starts servers on a fresh
database of that backend (or an existing one, to restart); on teardown each server still
running gets SIGTERM and must exit 0, and every line it printed must be a JSON log object.
"""

import json
import os

import pytest

import cofre_backends
from cofre_api import Api, TS_RE
from cofre_server import CoreProcess


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "remote: runs against any deployment through COFRE_E2E_BASE_URL "
                   "(the pipeline's staging stage); locally against a cofre-core of its own")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", cofre_backends.selected_names(), indirect=True,
                             scope="session")


@pytest.fixture(scope="session")
def backend(request, tmp_path_factory):
    b = cofre_backends.BACKENDS[request.param]()
    b.start(tmp_path_factory.mktemp("backend-" + b.name))
    yield b
    b.stop()


@pytest.fixture(autouse=True)
def _per_backend(backend):
    """Makes every test take the backend parameter."""
    return backend


def check_log_lines(proc):
    """Every stdout line is one JSON object with the contract's fields."""
    bad = []
    lines = list(proc.lines)
    if proc.returncode is not None and proc.returncode < 0:
        lines = lines[:-1]  # killed by a signal: the last line may have been cut
    for _t, line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(obj, dict):
            bad.append(line)
            continue
        missing = {"ts", "level", "service", "msg"} - set(obj)
        if missing or obj.get("service") != "cofre-core" or not TS_RE.match(str(obj.get("ts"))):
            bad.append(line)
    return bad


class Servers:
    """Starts cofre-core processes for one test (or one module) and stops them after."""

    def __init__(self, backend, workdir):
        self.backend = backend
        self.workdir = workdir
        self.started = []

    def start(self, db=None, env=None, ready=True):
        wd = os.path.join(str(self.workdir), f"core{len(self.started)}")
        os.makedirs(wd, exist_ok=True)
        db = db or self.backend.new_db(wd)
        env = dict(env or {})
        p = CoreProcess(db, wd, env, backend=self.backend)
        self.started.append(p)
        p.start(ready=ready)
        return p

    def finish(self):
        problems = []
        for p in self.started:
            if not p.stopped:
                try:
                    rc = p.stop()
                except AssertionError as e:
                    problems.append(str(e))
                    continue
                if rc != 0:
                    problems.append(f"exit code {rc} after SIGTERM; stderr: {p.stderr()!r}")
            bad = check_log_lines(p)
            if bad:
                problems.append(f"{len(bad)} stdout lines are not JSON log objects, e.g. {bad[:3]}")
        return problems


@pytest.fixture
def core_factory(backend, tmp_path):
    """start(db=None, env=None, ready=True) -> CoreProcess; all are stopped after the test."""
    servers = Servers(backend, tmp_path)
    yield servers.start
    problems = servers.finish()
    assert not problems, "; ".join(problems)


@pytest.fixture
def core(core_factory):
    return core_factory()


@pytest.fixture
def api(core):
    a = Api(core.base)
    yield a
    a.close()


@pytest.fixture(scope="module")
def module_core(backend, tmp_path_factory):
    """One server shared by a module's tests (for long tables of cases)."""
    servers = Servers(backend, tmp_path_factory.mktemp("module-core"))
    yield servers.start()
    problems = servers.finish()
    assert not problems, "; ".join(problems)
