"""Fixtures of the events suite: `stack` starts the processes a test needs (cofre-kafka-dev,
cofre-core, cofre-audit) in the test's own directory and, at teardown, stops each one still
running with SIGTERM: each must exit 0 (a process a test killed on purpose is left alone)."""

import os

import pytest

from eventlib import Audit, Core, KafkaDev


class Stack:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []
        self.kafka_dev = None

    def _dir(self, name):
        d = os.path.join(str(self.workdir), name)
        os.makedirs(d, exist_ok=True)
        return d

    def kafka(self, **env):
        self.kafka_dev = KafkaDev(self._dir("kafka"), **env)
        self.procs.append(self.kafka_dev)
        return self.kafka_dev.start()

    def core(self, ready=True, **env):
        p = Core(self._dir("core"), self.kafka_dev.bootstrap if self.kafka_dev else "", **env)
        self.procs.append(p)
        return p.start(ready)

    def audit(self, ready=True, **env):
        brokers = env.pop("brokers", self.kafka_dev.bootstrap if self.kafka_dev else "")
        p = Audit(self._dir("audit"), brokers, **env)
        self.procs.append(p)
        return p.start(ready)

    def finish(self):
        problems = []
        for p in reversed(self.procs):
            if p.proc is None or p.returncode is not None:
                continue
            try:
                rc = p.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if rc != 0:
                problems.append(f"{p.name} exited {rc} on SIGTERM: {p.stderr()[-2000:]}")
        return problems


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    problems = s.finish()
    assert not problems, problems
