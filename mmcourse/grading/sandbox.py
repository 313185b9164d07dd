"""Run a student's functions on hidden cases in a fresh, isolated, limited Python process.

The grader's side of the conversation with ``boot.py`` (read it for the sandbox's side):

* the process starts through ``isolation.command`` (bubblewrap where it works; an own uid as
  root) with a scratch directory as its only writable place, stdin a pipe for requests, another
  pipe for answers, stdout to ``/dev/null`` and stderr to a capped log;
* the first request is the *setup*: the extracted definitions, already scanned by
  ``extract.scan_module`` (statements that name what no graded code needs are not sent), the
  names the exercise forbids, the limits -- no hidden case. The process answers ``ready``;
* then one case at a time, each with a fresh random nonce; the next case is sent only when the
  answer for this one has come back. An answer must be exactly one JSON line carrying that
  nonce: anything else (a line written ahead of time, garbage, a second answer) ends the process
  and fails the case as tampering;
* every wait has a wall-clock deadline, whatever the child does with signals or output:
  ``startup_timeout`` for the definitions, ``case_timeout`` + ``GRACE`` per case, and the
  caller's ``deadline`` for the whole submission. At a deadline the process, its group and
  (with an own uid) every process of that uid are killed (``isolation.end``).

A case in flight when the process dies, is killed or tampers fails; the rest of its part is
skipped; a fresh process takes the other parts. Answers are decoded with ``codec.decode`` (no
pickle) and at most ``MAX_RESULT_BYTES`` are read.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmcourse.grading import codec, isolation

MAX_RESULT_BYTES = 64 * 2**20
MEMORY_LIMIT = 6 * 2**30
GRACE = 2.0
BOOT = Path(__file__).with_name("boot.py")


@dataclass
class CaseResult:
    value: object = None
    error: str | None = None
    stub: bool = False
    timeout: bool = False


class _Ended(Exception):
    """The sandbox process is over: died, timed out, or broke the protocol."""

    def __init__(self, why: str, timeout: bool = False):
        super().__init__(why)
        self.why, self.timeout = why, timeout


def _env(home: str) -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"HOME": home, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                "MPLBACKEND": "Agg", "TMPDIR": home})
    return env


class _Process:
    """One sandbox process and its two pipes."""

    def __init__(self, scratch: str, log, uid: int, margin: int):
        self.uid = uid
        req_r, self.req_w = os.pipe()
        self.ans_r, ans_w = os.pipe()
        argv = [sys.executable, "-I", str(BOOT), str(Path(codec.__file__).resolve()), str(uid), str(margin),
                str(ans_w)]
        try:
            self.proc = subprocess.Popen(isolation.command(argv, scratch), cwd=scratch, env=_env(scratch),
                                         stdin=req_r, stdout=subprocess.DEVNULL, stderr=log,
                                         pass_fds=(ans_w,), start_new_session=True)
        finally:
            os.close(req_r)
            os.close(ans_w)
        self.buffer = b""

    def send(self, obj) -> None:
        data = pickle.dumps(obj)
        try:
            os.write(self.req_w, len(data).to_bytes(8, "big"))
            view = memoryview(data)
            while view:
                view = view[os.write(self.req_w, view[: 1 << 16]):]
        except (BrokenPipeError, OSError):
            raise _Ended(self.status()) from None

    def status(self) -> str:
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "the process stopped reading its cases"
        if 128 < code < 160 and isolation.mode() == "bwrap":   # bwrap passes a signal on as 128 + n
            code = 128 - code
        return ("the process finished early" if code == 0 else f"the process died (signal {-code})"
                if code < 0 else f"the process exited with code {code}")

    def receive(self, seconds: float, what: str) -> dict:
        """The next line as a dict, waiting at most ``seconds`` of wall-clock time."""
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Ended(f"killed: no answer within {seconds:.0f} s ({what})", timeout=True)
            ready, _, _ = select.select([self.ans_r], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(self.ans_r, 1 << 20)
            if not chunk:
                raise _Ended(self.status())
            self.buffer += chunk
            if len(self.buffer) > MAX_RESULT_BYTES:
                raise _Ended("killed: its answer exceeded 64 MB")
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            msg = None
        if not isinstance(msg, dict):
            raise _Ended("tampering: something other than the grader's answer was written to its "
                         "result channel")
        return msg

    def close(self) -> None:
        isolation.end(self.proc, self.uid)
        for fd in (self.req_w, self.ans_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _result(msg: dict) -> CaseResult:
    if "value" in msg:
        try:
            return CaseResult(value=codec.decode(msg["value"]))
        except (ValueError, TypeError, KeyError, RecursionError) as err:
            return CaseResult(error=f"unreadable result ({err})"[:200])
    return CaseResult(error=str(msg.get("error"))[:300], stub=msg.get("stub") is True,
                      timeout=msg.get("timeout") is True)


def _run_once(setup: dict, jobs: list, case_timeout: float, startup_timeout: float, deadline: float,
              results: dict, notes: list, timeouts: dict | None = None,
              part_banned: dict | None = None) -> tuple[bool, str]:
    """One sandbox process over ``jobs``; fills ``results``; returns (started, how it ended)."""
    scratch = tempfile.mkdtemp(prefix="mmcourse-sandbox-")
    uid = isolation.new_uid()
    isolation.prepare(scratch, uid)
    started, ended, timed_out = False, "finished", set()
    with open(Path(scratch).with_suffix(".log"), "wb") as log:
        proc = _Process(scratch, log, uid, margin=0 if uid >= 0 else 16)
        try:
            proc.send(setup)
            ready = proc.receive(min(startup_timeout, max(deadline - time.monotonic(), 1)), "loading")
            if ready.get("ready") is not True:
                raise _Ended("tampering: the definitions wrote to the grader's result channel")
            started = True
            notes.extend(f"definitions: {str(n)[:300]}" for n in (ready.get("notes") or [])[:20])
            for part, name, index, args in jobs:
                if part in timed_out:
                    results[(part, index)] = CaseResult(error="skipped: an earlier case of this part "
                                                        "timed out")
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Ended("killed: the submission's time budget ran out", timeout=True)
                nonce = secrets.token_hex(16)
                seconds = (timeouts or {}).get(part, case_timeout)
                request = {"nonce": nonce, "function": name, "args": args, "timeout": seconds}
                if part_banned and part in part_banned:
                    request["banned"] = list(part_banned[part])
                proc.send(request)
                msg = proc.receive(min(seconds + GRACE, left), f"part {part}, case {index + 1}")
                if msg.get("nonce") != nonce:
                    raise _Ended("tampering: an answer without this case's nonce was written to the "
                                 "grader's result channel")
                results[(part, index)] = _result(msg)
                if results[(part, index)].timeout:
                    timed_out.add(part)
        except _Ended as err:
            ended = err.why
            if started:
                pending = [j for j in jobs if (j[0], j[2]) not in results]
                if pending:
                    part, _, index, _ = pending[0]
                    results[(part, index)] = CaseResult(error=f"crashed the sandbox: {ended}",
                                                        timeout=err.timeout)
        finally:
            proc.close()
            shutil.rmtree(scratch, ignore_errors=True)
    log_path = Path(scratch).with_suffix(".log")
    if not started:   # say why: the last line of the child's stderr (a grader or set-up problem)
        tail = log_path.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
        ended += f"; {tail[-1][:300]}" if tail else ""
    log_path.unlink(missing_ok=True)
    return started, ended


def evaluate(statements: list[tuple[int, str]], jobs: list[tuple[str, str, int, tuple]], *,
             banned: tuple[str, ...] = (), case_timeout: float = 5.0, startup_timeout: float = 60.0,
             deadline: float | None = None, timeouts: dict[str, float] | None = None,
             part_banned: dict[str, tuple[str, ...]] | None = None,
             ) -> tuple[dict[tuple[str, int], CaseResult], list[str]]:
    """Call ``function(*args)`` for every ``(part, function, case, args)`` job in sandboxes.

    ``statements`` are the submission's scanned definitions as ``(line, source)``; ``banned``
    the names no torch function or operator called may have; ``deadline`` a
    ``time.monotonic()`` after which nothing more is evaluated; ``timeouts`` a part's own
    seconds per case where it differs from ``case_timeout`` (an experiment part), and
    ``part_banned`` a part's own banned names where they differ from ``banned``. Returns ``{(part, case):
    CaseResult}`` (one per job, always) and notes (definitions that failed, sandbox ends).
    """
    per_case = [(timeouts or {}).get(j[0], case_timeout) for j in jobs]
    deadline = deadline or time.monotonic() + startup_timeout + sum(per_case) + GRACE * len(jobs) + \
        (case_timeout + GRACE) * 2
    cpu = int(startup_timeout + sum(per_case) + case_timeout * 2) + 10
    setup = {"statements": statements, "banned": list(banned), "case_timeout": case_timeout,
             "memory": MEMORY_LIMIT, "cpu": cpu, "fsize": MAX_RESULT_BYTES}
    results: dict = {}
    notes: list[str] = []
    pending = list(jobs)
    for _ in range(len({j[0] for j in jobs}) + 1):
        if not pending or time.monotonic() >= deadline:
            break
        started, ended = _run_once(setup, pending, case_timeout, startup_timeout, deadline, results, notes,
                                   timeouts, part_banned)
        left = [j for j in pending if (j[0], j[2]) not in results]
        if not started:
            for part, _, index, _ in left:
                results[(part, index)] = CaseResult(error=f"the definitions could not be loaded ({ended})")
            notes.append(f"sandbox failed before the first case: {ended}")
            break
        if ended != "finished":
            failed = [k for k, r in results.items() if r.error and r.error.startswith("crashed the sandbox")]
            part = failed[-1][0] if failed else None
            for p, _, i, _ in left:
                if p == part:
                    results[(p, i)] = CaseResult(error="skipped: an earlier case of this part crashed")
            notes.append(f"part {part}: {ended}")
        pending = [j for j in left if (j[0], j[2]) not in results]
    for part, _, index, _ in jobs:   # every job gets an answer
        results.setdefault((part, index), CaseResult(error="not evaluated: the submission's time budget "
                                                     "ran out or the sandbox kept crashing"))
    return results, notes
