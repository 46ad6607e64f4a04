#!/usr/bin/python3
"""Time from exec to the first 200 from /readyz, for a binary started N times.

Usage: startup.py BINARY PORT RUNS [fresh|existing]
With fresh, each run starts on a new empty SQLite database (the schema migration included);
with existing, every run reuses one database. Prints the median and the max in milliseconds.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def one_run(binary, port, db):
    env = dict(os.environ, COFRE_LISTEN=f"127.0.0.1:{port}", COFRE_DB=f"sqlite:{db}",
               COFRE_LOG_LEVEL="warn", COFRE_DRAIN_S="0", COFRE_AUTH="off")
    start = time.monotonic()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL)
    try:
        while not ready(port):
            if time.monotonic() - start > 10 or proc.poll() is not None:
                raise RuntimeError("cofre-core did not become ready")
            time.sleep(0.0005)
        return (time.monotonic() - start) * 1000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    binary, port, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fresh = len(sys.argv) < 5 or sys.argv[4] == "fresh"
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            db = os.path.join(tmp, f"core{i if fresh else 0}.db")
            times.append(one_run(binary, port, db))
    print(f"{statistics.median(times):.1f} {max(times):.1f}")


if __name__ == "__main__":
    main()
