#!/usr/bin/env python3
"""A casework `process` plugin: JSON Lines on stdin and stdout.

It keeps a ledger of effects, one idempotency key (the action id) per line,
and shows what a real plugin must do: carry out each action ONCE per key,
however often casework sends it (after a crash, a timeout, a retry), and
answer the same way each time.

    ledger:
      kind: process
      command: [python3, ledger.py, --ledger, ledger.log]
      actions: [record, fail, flaky, hang, garbage, crash]

Actions:
  record   write the key to the ledger (once), answer ok with an event
           `agent.note` on the case when params.note is given
  fail     a permanent failure ("transient": false)
  flaky    fail transiently until the key was tried params.succeed_after
           times (default 2), then record it
  hang     never answer (casework's timeout kills us)
  garbage  answer a line that is not JSON
  crash    exit at once without answering

Every attempt is appended to the ledger's `.attempts` file, every effect to
the ledger itself. Both are guarded by a file lock, so two copies of the
plugin (an old one still finishing after casework was killed, and the new
one) never record one key twice.
"""

import argparse
import fcntl
import json
import os
import sys
import time


def locked_append_once(path, key):
    """Append `key` to `path` unless present; True if this call added it."""
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            seen = {line.rstrip("\n") for line in f}
            if key in seen:
                return False
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
            return True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def count_attempt(path, key):
    """Record one attempt of `key`; return how many there have been."""
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(key + "\n")
            f.flush()
            f.seek(0)
            return sum(1 for line in f if line.rstrip("\n") == key)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ledger", default=os.environ.get("LEDGER", "ledger.log"))
    args = parser.parse_args()
    attempts_path = args.ledger + ".attempts"

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            key, action = req["id"], req["action"]
            params = req.get("params") or {}
        except (ValueError, KeyError) as e:
            answer({"id": None, "ok": False, "error": f"bad request: {e}", "transient": False})
            continue
        tries = count_attempt(attempts_path, key)

        if action == "fail":
            answer({"id": key, "ok": False, "error": "refused: this action always fails", "transient": False})
        elif action == "hang":
            time.sleep(3600)
        elif action == "garbage":
            sys.stdout.write("this is not json\n")
            sys.stdout.flush()
        elif action == "crash":
            sys.exit(3)
        elif action == "flaky" and tries < int(params.get("succeed_after", 2)):
            answer({"id": key, "ok": False, "error": f"not yet (attempt {tries})", "transient": True})
        elif action in ("record", "flaky"):
            first = locked_append_once(args.ledger, key)
            events = []
            if params.get("note"):
                events.append({"kind": "agent.note", "agent": "ledger", "text": params["note"]})
            answer({"id": key, "ok": True, "result": {"first_time": first, "attempt": tries}, "events": events})
        else:
            answer({"id": key, "ok": False, "error": f"unknown action {action}", "transient": False})


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
