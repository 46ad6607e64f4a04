"""Graceful shutdown under load (COFRE_DRAIN_S=2): on SIGTERM /readyz turns 503 at once,
requests keep being served through the drain, every request sent before the listeners closed
gets a complete answer, every acknowledged transfer is stored, and the exit code is 0."""

import concurrent.futures as cf
import datetime
import signal
import threading
import time

import requests

from cofre_api import Api, new_id
from cofre_server import SLOW

DRAIN_S = 2
READY_FAIL_S = 0.15 * SLOW  # "at once": within ~100 ms, plus scheduling slack on 2 busy cores
LOAD_MAX_S = 20


def log_time(obj):
    return datetime.datetime.strptime(obj["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_graceful_shutdown_under_load(core_factory):
    core = core_factory(env={"COFRE_DRAIN_S": DRAIN_S})
    api = Api(core.base)
    s = api.settlement("EUR")
    a = api.open_account(owner="drain")
    api.close()

    lock = threading.Lock()
    events = []  # (t_start, t_end, kind, status or exception name, transfer id)
    stop = threading.Event()
    hard_deadline = time.monotonic() + LOAD_MAX_S

    def load(n):
        c = Api(core.base, timeout=10)
        try:
            i = 0
            while not stop.is_set() and time.monotonic() < hard_deadline:
                i += 1
                tid = new_id() if (i + n) % 2 else None
                t0 = time.time()
                try:
                    if tid:
                        r = c.transfer(s, a, 1, id=tid)
                    else:
                        r = c.get(f"/v1/accounts/{a['id']}")
                    out = r.status_code
                    if out in (200, 201):
                        r.json()  # a complete, parseable body
                except requests.RequestException as e:
                    out = f"{type(e).__name__}: {str(e)[-120:]}"
                except ValueError:
                    out = "incomplete-body"
                with lock:
                    events.append((t0, time.time(), "post" if tid else "get", out, tid))
                if isinstance(out, str):
                    time.sleep(0.01)  # the listener is gone: don't spin
        finally:
            c.close()

    with cf.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(load, n) for n in range(4)]
        time.sleep(0.7)
        t_term = time.time()
        core.signal(signal.SIGTERM)
        probes = []  # (t_answer, status) of /readyz on fresh connections
        while time.time() - t_term < DRAIN_S + 5:
            try:
                r = requests.get(core.url("/readyz"), timeout=2,
                                 headers={"Connection": "close"})
                probes.append((time.time(), r.status_code, r.json().get("status")))
            except requests.RequestException:
                break  # listeners closed
            time.sleep(0.01)
        rc = core.wait(DRAIN_S + 20 * SLOW)
        t_exit = time.time()
        stop.set()
        for f in futs:
            f.result(timeout=30)

    assert rc == 0, f"exit code {rc} after SIGTERM; stderr: {core.stderr()!r}"
    closing = [o for o in core.logs() if o.get("msg", "").startswith("stopped accepting")]
    assert closing, "no 'stopped accepting' log line"
    t_close = log_time(closing[0])

    # /readyz: 503 within READY_FAIL_S of the signal, and never 200 again.
    first_503 = next((p for p in probes if p[1] == 503), None)
    assert first_503, f"/readyz never answered 503 after SIGTERM: {probes[:5]}"
    assert first_503[0] - t_term <= READY_FAIL_S, (
        f"/readyz took {first_503[0] - t_term:.3f}s to fail")
    after = [p for p in probes if p[0] >= first_503[0]]
    assert all(p[1] == 503 and p[2] == "draining" for p in after), after[:5]
    assert t_close - t_term >= DRAIN_S - 0.1, f"listeners closed {t_close - t_term:.2f}s in"
    assert t_exit - t_term <= DRAIN_S + 5 * SLOW, f"exit {t_exit - t_term:.2f}s after SIGTERM"

    # Served during the drain; complete answers for everything sent before the close.
    during = [e for e in events if t_term + 0.1 < e[0] and e[1] < t_close - 0.05]
    assert len(during) >= 20, f"only {len(during)} requests served during the drain"
    # t_start is taken before requests builds and writes the request: allow 2 ms for that.
    before_close = [e for e in events if e[0] < t_close - 0.002]
    failed = [e for e in before_close if e[3] not in (200, 201)]
    assert not failed, (
        f"{len(failed)} requests sent before the close failed (close at {t_close - t_term:.4f}s, "
        f"exit at {t_exit - t_term:.4f}s after SIGTERM): "
        f"{[(round(e[0] - t_term, 4), round(e[1] - t_term, 4)) + e[2:] for e in failed[:4]]}")
    late = [e for e in events if e[0] >= t_close]
    assert all(e[3] in (200, 201) or isinstance(e[3], str) for e in late), late[:5]

    # Every acknowledged transfer is stored; nothing is stored that nobody sent.
    acked = {e[4] for e in events if e[3] == 201}
    sent = {e[4] for e in events if e[2] == "post"}
    stored = set(core.transfer_ids())
    assert acked <= stored, f"{len(acked - stored)} acknowledged transfers missing"
    assert stored <= sent, f"transfers stored that nobody sent: {sorted(stored - sent)[:3]}"
