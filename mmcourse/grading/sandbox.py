"""Run a student's functions on test cases in a fresh, limited Python process.

The grading process writes a job (the extracted definitions, and ``(part, function, case,
args)`` tuples) to a pickle in an empty temporary directory and starts
``python -I -c BOOT`` there. The boot code, before any student code runs: loads and deletes the
job; sets resource limits (address space, CPU time, file size, no core dumps); imports torch and
numpy; makes ``mmcourse`` unimportable except for a no-op ``mmcourse.grading`` (so that
``from mmcourse.grading import checks_for`` still works) and blocks scikit-learn, so the
references are out of reach; opens its result file. Then it executes the definitions one
statement at a time and calls the functions, each under a ``SIGALRM`` timeout, writing one JSON
line per case (``codec.encode``; a value that cannot be encoded is an error, not a crash).
stdout and stderr go to ``/dev/null`` / a capped log. It leaves with ``os._exit`` (no student
``atexit`` handler runs).

The parent watches the result file: no progress for ``case_timeout`` + a grace period (a
student loop that swallows the alarm) or no start-up within ``startup_timeout`` → the whole
process group is killed. A case in flight when the process dies or is killed fails, the rest of
that part is skipped, and a fresh process takes the other parts. The parent reads at most
``MAX_RESULT_BYTES`` and decodes with ``codec.decode`` (no pickle).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmcourse.grading import codec

MAX_RESULT_BYTES = 64 * 2**20
MEMORY_LIMIT = 6 * 2**30

BOOT = r'''
import os, sys, json, pickle, signal, time, types, resource, ast
job_path, out_path = sys.argv[1], sys.argv[2]
with open(job_path, "rb") as f:
    job = pickle.load(f)
os.remove(job_path)
for lim, val in ((resource.RLIMIT_AS, job["memory"]), (resource.RLIMIT_CPU, job["cpu"]),
                 (resource.RLIMIT_FSIZE, job["fsize"]), (resource.RLIMIT_CORE, 0)):
    try:
        resource.setrlimit(lim, (val, val))
    except (ValueError, OSError):
        pass
import numpy, torch
torch.set_num_threads(1)
codec = {"__name__": "codec"}
exec(job["codec"], codec)
out = open(out_path, "a", buffering=1)
def emit(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()

class _Timeout(BaseException):
    pass
def _alarm(signum, frame):
    raise _Timeout()
signal.signal(signal.SIGALRM, _alarm)

class _NoCheck:
    def __call__(self, *a, **k):
        return None
    def summary(self, *a, **k):
        return None
def _checks_for(*a, **k):
    return _NoCheck()
stub = types.ModuleType("mmcourse")
stub.__path__ = []
grading = types.ModuleType("mmcourse.grading")
grading.__path__ = []
grading.checks_for, grading.check = _checks_for, _NoCheck()
stub.grading = grading
sys.modules.update({"mmcourse": stub, "mmcourse.grading": grading})
class _Blocked(ImportError):
    pass
class _Blocker:
    BLOCKED = ("mmcourse", "sklearn")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED and name not in sys.modules:
            raise _Blocked(f"{name} is not available to graded functions")
        return None
sys.meta_path.insert(0, _Blocker())

def limited(seconds, fn, *args):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)

def describe(err):
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return text[:300]

ns = {"__name__": "submission", "__builtins__": __builtins__}
notes = []
for stmt in ast.parse(job["source"]).body:
    code = compile(ast.Module(body=[stmt], type_ignores=[]), "<submission>", "exec")
    try:
        limited(job["case_timeout"], exec, code, ns)
    except _Timeout:
        notes.append(f"line {stmt.lineno}: timed out while defining")
    except _Blocked:
        pass  # e.g. "from mmcourse.config import seed_everything": not needed by graded functions
    except BaseException as err:
        notes.append(f"line {stmt.lineno}: {describe(err)}")
emit({"ready": True, "notes": notes[:20]})

timed_out = set()
for part, name, index, args in job["jobs"]:
    if part in timed_out:
        emit({"part": part, "case": index, "error": "skipped: an earlier case of this part timed out"})
        continue
    fn = ns.get(name)
    if not callable(fn):
        emit({"part": part, "case": index, "error": f"no function named {name}"})
        continue
    start = time.perf_counter()
    try:
        value = limited(job["case_timeout"], lambda: codec["encode"](fn(*args)))
    except _Timeout:
        timed_out.add(part)
        emit({"part": part, "case": index, "error": f"timed out after {job['case_timeout']} s",
              "timeout": True})
        continue
    except NotImplementedError as err:
        emit({"part": part, "case": index, "error": describe(err), "stub": True})
        continue
    except BaseException as err:
        emit({"part": part, "case": index, "error": describe(err)})
        continue
    emit({"part": part, "case": index, "value": value, "seconds": time.perf_counter() - start})
emit({"done": True})
out.close()
os._exit(0)
'''


@dataclass
class CaseResult:
    value: object = None
    error: str | None = None
    stub: bool = False
    timeout: bool = False


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def _env(home: str) -> dict:
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"HOME": home, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
                "MPLBACKEND": "Agg", "TMPDIR": home})
    return env


def _run_once(source: str, jobs: list, case_timeout: float, startup_timeout: float,
              results: dict) -> tuple[bool, str]:
    """One sandbox process over ``jobs``; fills ``results``; returns (started, how it ended)."""
    with tempfile.TemporaryDirectory(prefix="mmcourse-sandbox-") as tmp:
        job_path, out_path = Path(tmp, "job.pkl"), Path(tmp, "results.jsonl")
        cpu = int(startup_timeout + case_timeout * (len(jobs) + 2)) + 10
        job = {"source": source, "jobs": jobs, "case_timeout": case_timeout,
               "codec": Path(codec.__file__).read_text(), "memory": MEMORY_LIMIT, "cpu": cpu,
               "fsize": MAX_RESULT_BYTES}
        job_path.write_bytes(pickle.dumps(job))
        out_path.touch()
        log = open(Path(tmp, "stderr.log"), "wb")
        proc = subprocess.Popen([sys.executable, "-I", "-c", BOOT, str(job_path), str(out_path)],
                                cwd=tmp, env=_env(tmp), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        started, ended, buffer, offset = False, "", b"", 0
        last = time.monotonic()
        try:
            while True:
                done = proc.poll() is not None
                size = out_path.stat().st_size if out_path.exists() else 0
                if size > MAX_RESULT_BYTES:
                    ended = "killed: its results exceeded 64 MB"
                    break
                if size > offset:
                    with open(out_path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read(size - offset)
                    offset = size
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        started |= _take(line, results)
                    last = time.monotonic()
                if done:
                    code = proc.returncode
                    ended = ("finished" if code == 0 else f"the process died (signal {-code})" if code < 0
                             else f"the process exited with code {code}")
                    break
                limit = case_timeout + 3 if started else startup_timeout
                if time.monotonic() - last > limit:
                    ended = f"killed: no progress for {limit:.0f} s (a loop that ignores the time limit?)"
                    break
                time.sleep(0.02)
        finally:
            _kill_group(proc)   # also any children the student's code left behind
            log.close()
    return started, ended


def _take(line: bytes, results: dict) -> bool:
    """Record one result line; True if it is the boot's 'ready' line."""
    try:
        msg = json.loads(line)
    except (ValueError, RecursionError):
        return False
    if not isinstance(msg, dict):
        return False
    if msg.get("ready") is True:
        notes = msg.get("notes")
        results.setdefault("__notes__", [str(n)[:300] for n in notes[:20]] if isinstance(notes, list) else [])
        return True
    key = (msg.get("part"), msg.get("case"))
    if not isinstance(key[0], str) or not isinstance(key[1], int) or key in results:
        return False
    if "value" in msg:
        try:
            results[key] = CaseResult(value=codec.decode(msg["value"]))
        except (ValueError, TypeError, KeyError, RecursionError) as err:
            results[key] = CaseResult(error=f"unreadable result ({err})"[:200])
    else:
        results[key] = CaseResult(error=str(msg.get("error"))[:300], stub=msg.get("stub") is True,
                                  timeout=msg.get("timeout") is True)
    return False


def evaluate(source: str, jobs: list[tuple[str, str, int, tuple]], *, case_timeout: float = 5.0,
             startup_timeout: float = 60.0) -> tuple[dict[tuple[str, int], CaseResult], list[str]]:
    """Call ``function(*args)`` for every ``(part, function, case, args)`` job in sandboxes.

    Returns ``{(part, case): CaseResult}`` (one per job, always) and notes (definitions that
    failed to execute, sandbox crashes).
    """
    results: dict = {}
    notes: list[str] = []
    pending = list(jobs)
    for _ in range(len({j[0] for j in jobs}) + 1):
        if not pending:
            break
        started, ended = _run_once(source, pending, case_timeout, startup_timeout, results)
        notes.extend(f"definitions: {n}" for n in results.pop("__notes__", []))
        left = [j for j in pending if (j[0], j[2]) not in results]
        if not left:
            break
        if not started:
            for part, _, index, _ in left:
                results[(part, index)] = CaseResult(error=f"the definitions could not be loaded ({ended})")
            notes.append(f"sandbox failed before the first case: {ended}")
            break
        part, _, index, _ = left[0]
        timeout = "no progress" in ended
        results[(part, index)] = CaseResult(error=f"crashed the sandbox: {ended}", timeout=timeout)
        for p, _, i, _ in left[1:]:
            if p == part:
                results[(p, i)] = CaseResult(error="skipped: an earlier case of this part crashed")
        notes.append(f"part {part}, case {index}: {ended}")
        pending = [j for j in left if (j[0], j[2]) not in results]
    for part, _, index, _ in jobs:   # defensive: every job gets an answer
        results.setdefault((part, index), CaseResult(error="not evaluated (too many sandbox crashes)"))
    return results, notes
