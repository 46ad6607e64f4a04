#!/usr/bin/python3
"""Watches the event pipeline while a load runs and after it stops, for scripts/bench/events.sh.

Usage: events_probe.py CORE_DB CORE_URL AUDIT_URL AUDIT_DB LOAD_PID
Samples every 100 ms until LOAD_PID exits: the age of the oldest unpublished outbox row (read
straight from cofre-core's SQLite outbox, so it does not wait for the relay's 1 s gauge) and
cofre-audit's consumer lag. Then measures how long after the load stopped the outbox was empty,
and the audit caught up: its lag gauge back to 0 and one record per outbox row (the gauge alone
can be a second stale). Bounded: 60 s. Last, from the audit trail, the latency of each event
committed during the load, from its commit (the event's time) to its record in the trail
(recorded_at): the whole path, relay, Kafka and cofre-audit. Prints one JSON object.
"""

import json
import os
import re
import sqlite3
import sys
import time
import urllib.request
from datetime import datetime, timezone

LIMIT_S = 60.0


def oldest_age(conn):
    # Published rows are the prefix up to the watermark (migrations/sqlite/0003).
    row = conn.execute("SELECT count(*), min(created_at) FROM outbox "
                       "WHERE seq > (SELECT published_seq FROM outbox_cursor)").fetchone()
    if not row[0]:
        return 0, 0.0
    t = datetime.strptime(row[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return row[0], max(0.0, time.time() - t.timestamp())


def rows(conn):
    return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def metric_sum(url, name):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name:
            total += float(m.group(3))
    return total


def parse_ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def trail_latencies(audit_db, start_us, end_us):
    """Seconds from commit to the audit record, for events committed in [start, end]."""
    conn = sqlite3.connect(f"file:{audit_db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT time_us, recorded_at FROM audit_records "
                            "WHERE time_us BETWEEN ? AND ?", (start_us, end_us)).fetchall()
    finally:
        conn.close()
    return sorted(parse_ts(rec) - t / 1e6 for t, rec in rows)


def percentile(values, q):
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def main():
    db, core, audit, audit_db, pid = sys.argv[1:5] + [int(sys.argv[5])]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    started_us = int(time.time() * 1e6)
    peak_age, peak_pending, peak_lag, samples = 0.0, 0, 0.0, 0
    while alive(pid):
        pending, age = oldest_age(conn)
        peak_age, peak_pending = max(peak_age, age), max(peak_pending, pending)
        peak_lag = max(peak_lag, metric_sum(audit, "cofre_audit_consumer_lag"))
        samples += 1
        time.sleep(0.1)
    stopped = time.monotonic()
    stopped_us = int(time.time() * 1e6)
    pending_end, age_end = oldest_age(conn)
    drained_s = lag_zero_s = None
    records_start = metric_sum(audit, "cofre_audit_records")
    while time.monotonic() - stopped < LIMIT_S and (drained_s is None or lag_zero_s is None):
        now = time.monotonic() - stopped
        if drained_s is None and oldest_age(conn)[0] == 0:
            drained_s = now
        if drained_s is not None and lag_zero_s is None and \
                metric_sum(audit, "cofre_audit_consumer_lag") == 0 and \
                metric_sum(audit, "cofre_audit_records") >= rows(conn):
            lag_zero_s = now
        time.sleep(0.05)
    lat = trail_latencies(audit_db, started_us, stopped_us) if lag_zero_s is not None else []
    print(json.dumps({
        "trail_latency_p50_s": percentile(lat, 0.50), "trail_latency_p99_s": percentile(lat, 0.99),
        "trail_latency_max_s": percentile(lat, 1.0),
        "samples": samples, "peak_oldest_age_s": round(peak_age, 3), "peak_pending": peak_pending,
        "peak_audit_lag": peak_lag, "pending_at_end": pending_end,
        "oldest_age_at_end_s": round(age_end, 3),
        "outbox_drained_s": None if drained_s is None else round(drained_s, 2),
        "audit_lag_zero_s": None if lag_zero_s is None else round(lag_zero_s, 2),
        "audit_records_at_end": records_start,
        "published_total": metric_sum(core, "cofre_outbox_published_total"),
        "delivery_failures": metric_sum(core, "cofre_outbox_delivery_failures_total"),
    }))


if __name__ == "__main__":
    main()
