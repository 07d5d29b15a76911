#!/usr/bin/env python3
"""Holds many idle SMTP sessions open on a relay and reports the relay's memory with them.

    bench/idle_sessions.py HOST:PORT COUNT PID [HOLD_SECONDS]

Opens COUNT connections to HOST:PORT, reads each greeting and says EHLO on each (so every
session is fully set up in the relay), then samples /proc/PID/status (VmRSS, VmHWM) while they
sit idle, checks that a message still goes through on a fresh connection meanwhile, and closes
them all. Prints one `key value` line per figure, for bench/idle.sh to read. Loopback only.
Exits 1 if a session was refused or a reply was not the expected one.
"""

import socket
import sys
import time

TIMEOUT = 60  # seconds: generous, so a busy machine does not fail the run; never a speed check


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def read_reply(f) -> str:
    """One SMTP reply (all its lines); returns the last line."""
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return line.decode("ascii", "replace").strip()


def open_session(addr, n: int):
    s = socket.create_connection(addr, timeout=TIMEOUT)
    f = s.makefile("rb")
    greeting = read_reply(f)
    if not greeting.startswith("220"):
        raise ConnectionError(f"session {n}: greeting {greeting!r}")
    s.sendall(f"EHLO idle{n}.lumen.sch.uk\r\n".encode())
    ehlo = read_reply(f)
    if not ehlo.startswith("250"):
        raise ConnectionError(f"session {n}: EHLO answered {ehlo!r}")
    return s, f


def send_one(addr) -> str:
    """A small clean message on a fresh session; returns the reply to the data."""
    s, f = open_session(addr, 0)
    try:
        for cmd, want in [
            ("MAIL FROM:<teacher@lumen.sch.uk>", "250"),
            ("RCPT TO:<colleague@lumen.sch.uk>", "250"),
            ("DATA", "354"),
        ]:
            s.sendall(cmd.encode() + b"\r\n")
            r = read_reply(f)
            if not r.startswith(want):
                return r
        s.sendall(
            b"From: teacher@lumen.sch.uk\r\nTo: colleague@lumen.sch.uk\r\n"
            b"Subject: while idle\r\n\r\nStill working.\r\n.\r\n"
        )
        r = read_reply(f)
        s.sendall(b"QUIT\r\n")
        return r
    finally:
        s.close()


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    addr = (host, int(port))
    count, pid = int(sys.argv[2]), int(sys.argv[3])
    hold = float(sys.argv[4]) if len(sys.argv) == 5 else 5.0

    print(f"rss_before_kb {status_kb(pid, 'VmRSS')}")
    print(f"hwm_before_kb {status_kb(pid, 'VmHWM')}")
    sessions = []
    try:
        for n in range(1, count + 1):
            sessions.append(open_session(addr, n))
        print(f"sessions_open {len(sessions)}")
        time.sleep(hold)
        print(f"rss_with_kb {status_kb(pid, 'VmRSS')}")
        print(f"hwm_with_kb {status_kb(pid, 'VmHWM')}")
        # The relay still serves a message beside them (one connection over the count: the
        # script raises max_connections to allow it).
        print(f"reply_while_idle {send_one(addr).split()[0]}")
        # Every idle session is still there and answers.
        alive = 0
        for s, f in sessions:
            s.sendall(b"NOOP\r\n")
            if read_reply(f).startswith("250"):
                alive += 1
        print(f"sessions_alive {alive}")
    finally:
        for s, f in sessions:
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            s.close()
    time.sleep(hold)
    print(f"rss_after_kb {status_kb(pid, 'VmRSS')}")
    print(f"hwm_after_kb {status_kb(pid, 'VmHWM')}")


if __name__ == "__main__":
    main()
