"""The sandbox's own side: ``python -I boot.py CODEC_PATH UID NPROC_MARGIN ANSWER_FD`` (``sandbox.py``).

This file is executed as a script in the sandbox process; it imports nothing from ``mmcourse``
(so the references stay out of reach) and talks to the grader over two pipes: requests arrive
on stdin (length-prefixed pickles, written by the grader -- the direction the grader trusts),
answers leave on ANSWER_FD (JSON lines, which the grader trusts in nothing).

Order, so that no hidden case is in this process while student code can prepare anything:

1. drop privileges (when the grader gave a uid: an unprivileged uid of its own), set resource
   limits, import numpy and torch, then forbid new processes and threads (``RLIMIT_NPROC`` at
   the tasks this process already has);
2. receive the *setup*: the submission's definitions (already scanned by the grader), the names
   the exercise forbids, the time limits -- no case;
3. execute the definitions statement by statement, with restricted built-ins (``__import__``
   refuses ``os``, ``sys``, ``threading``, ``mmcourse``, scikit-learn ...) and the library ban
   active, each under an alarm; answer ``ready``;
4. then, one at a time: receive a case with a fresh random ``nonce``, call the function under
   the ban and an alarm, answer ``{"nonce": ..., "value"|"error": ...}``. The next case is sent
   only after this answer arrives, so at any moment the process holds at most the case it is
   computing, and an answer written ahead of time cannot carry the right nonce.

The library ban is a ``TorchFunctionMode`` plus a ``TorchDispatchMode``: any torch function or
ATen operator whose name is forbidden (``conv2d``, ``convolution``, ``_softmax`` ...) raises
``Forbidden`` however it was reached (an alias, a class attribute, ``torch.ops.aten``, a module).
Before and after every case the guard checks that both modes are still installed; if student
code removed them, the case fails. Student code in this process could still do anything Python
allows to *its own* answers; it cannot reach other cases, the references or the comparison.
"""

import builtins
import json
import os
import pickle
import resource
import signal
import sys
import time
import types

CODEC_PATH, UID, NPROC_MARGIN, ANSWER_FD = sys.argv[1], *map(int, sys.argv[2:5])
_read, _write, _dumps = os.read, os.write, json.dumps

if UID >= 0:                       # the grader runs as root: become nobody in particular
    os.setgroups([])
    os.setgid(UID)
    os.setuid(UID)


def _recv():
    """One length-prefixed pickle from the grader, or None at end of input."""
    head = b""
    while len(head) < 8:
        chunk = _read(0, 8 - len(head))
        if not chunk:
            return None
        head += chunk
    size, data = int.from_bytes(head, "big"), bytearray()
    while len(data) < size:
        chunk = _read(0, min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return pickle.loads(bytes(data))


def _send(obj):
    data = (_dumps(obj) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[_write(ANSWER_FD, view):]


setup = _recv()
for lim, val in ((resource.RLIMIT_AS, setup["memory"]), (resource.RLIMIT_CPU, setup["cpu"]),
                 (resource.RLIMIT_FSIZE, setup["fsize"]), (resource.RLIMIT_CORE, 0)):
    try:
        resource.setrlimit(lim, (val, val))
    except (ValueError, OSError):
        pass

import numpy  # noqa: E402,F401  (before the limit on tasks: numpy and torch may start threads)
import torch  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

torch.set_num_threads(1)
tasks = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
if UID < 0 and os.path.isdir("/proc"):   # same uid as the grader: count what that uid runs
    tasks = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == os.getuid():
                tasks += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
try:
    resource.setrlimit(resource.RLIMIT_NPROC, (tasks + NPROC_MARGIN, tasks + NPROC_MARGIN))
except (ValueError, OSError):
    pass

codec = {"__name__": "codec"}
with open(CODEC_PATH) as f:
    exec(compile(f.read(), "codec.py", "exec"), codec)
_encode = codec["encode"]


# ------------------------------------------------------------------------------ the library ban
class Forbidden(Exception):
    pass


FAMILIES = ("convolution", "conv_depthwise", "slow_conv", "thnn_conv", "mkldnn_conv", "cudnn_conv",
            "scaled_dot_product", "nll_loss", "cross_entropy")


def _families(banned):
    out = set()
    for name in banned:
        low = name.lower()
        if low.startswith("conv") and low[4:5].isdigit() or low == "convolution":
            out.update(FAMILIES[:6])
        for fam in FAMILIES[6:]:
            if low.startswith(fam):
                out.add(fam)
    return tuple(out)


BANNED = frozenset(n.lower().lstrip("_") for n in setup["banned"])
BANNED_PREFIXES = _families(setup["banned"])


def _check(func):
    name = str(getattr(func, "__name__", "") or getattr(func, "_opname", "")).split(".")[0].lower()
    name = name.lstrip("_")
    for prefix in ("special_", "nn_", "linalg_"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name in BANNED or name.startswith(BANNED_PREFIXES):
        raise Forbidden(f"calls {name}, which this exercise does not allow")


class _FunctionBan(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        _check(func)
        return func(*args, **(kwargs or {}))


class _DispatchBan(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls):   # no torch._dynamo wrapper: importing it costs ~2 s per sandbox
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        _check(func)
        return func(*args, **(kwargs or {}))


_function_ban, _dispatch_ban = _FunctionBan(), _DispatchBan()
_function_ban.__enter__()
_dispatch_ban.__enter__()
_function_stack = torch.overrides._get_current_function_mode_stack
_dispatch_stack = torch.utils._python_dispatch._get_current_dispatch_mode_stack


def _guard_intact():
    return _function_ban in _function_stack() and _dispatch_ban in _dispatch_stack()


# ------------------------------------------------------------------------------ imports, builtins
BLOCKED = frozenset("""os sys subprocess ctypes _ctypes cffi gc inspect threading _thread multiprocessing
concurrent socket select selectors signal resource importlib builtins __main__ io _io pathlib shutil
pickle marshal code codeop pty asyncio tempfile posix _posixsubprocess mmap faulthandler atexit
sklearn scipy pdb trace tracemalloc sysconfig site runpy zipimport fcntl urllib http psutil
traceback types dis linecache weakref ftplib smtplib webbrowser""".split())
BLOCKED_PARTS = frozenset({"multiprocessing", "cpp_extension", "_C", "library", "overrides", "jit",
                           "_python_dispatch", "_dynamo", "_inductor", "ctypeslib", "distributed",
                           "hub", "_utils_internal", "testing"})


class _NoCheck:
    def __call__(self, *a, **k):
        return None

    def summary(self, *a, **k):
        return None


_grading = types.ModuleType("mmcourse.grading")
_grading.checks_for, _grading.check = (lambda *a, **k: _NoCheck()), _NoCheck()
_mmcourse = types.ModuleType("mmcourse")
_mmcourse.grading = _grading
_real_import = builtins.__import__


class Blocked(ImportError):
    pass


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    parts = name.split(".")
    if level:
        raise Blocked("relative imports are not available to graded code")
    if parts[0] == "mmcourse":
        if name in ("mmcourse", "mmcourse.grading"):
            return _mmcourse if not fromlist or name == "mmcourse" else _grading
        raise Blocked(f"{name} is not available to graded functions")
    if parts[0] in BLOCKED or BLOCKED_PARTS & set(parts) or BLOCKED_PARTS & set(fromlist or ()):
        raise Blocked(f"{name} is not available to graded functions")
    return _real_import(name, globals, locals, fromlist, level)


safe_builtins = dict(vars(builtins))
for _name in ("open", "eval", "exec", "compile", "breakpoint", "input", "globals", "locals", "vars",
              "getattr", "setattr", "delattr", "help", "memoryview", "__loader__", "__spec__"):
    safe_builtins.pop(_name, None)
safe_builtins["__import__"] = _import


# ------------------------------------------------------------------------------ time limits
class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


signal.signal(signal.SIGALRM, _alarm)


def limited(seconds, fn, *args):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def describe(err):
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return text[:300]


# ------------------------------------------------------------------------------ definitions
ns = {"__name__": "submission", "__builtins__": safe_builtins}
notes = []
for where, code in setup["statements"]:
    try:
        limited(setup["case_timeout"], exec, compile(code, "<submission>", "exec"), ns)
    except _Timeout:
        notes.append(f"{where}: timed out while defining")
    except Blocked as err:
        if "mmcourse" not in str(err):
            notes.append(f"{where}: {describe(err)}")
    except BaseException as err:
        notes.append(f"{where}: {describe(err)}")

# ------------------------------------------------------------------------------ the cases
CASE_TIMEOUT = setup["case_timeout"]
setup = None
_send({"ready": True, "notes": notes[:20]})
while True:
    request = _recv()
    if request is None:
        break
    nonce, name, args = request["nonce"], request["function"], request["args"]
    request = None
    fn = ns.get(name)
    answer = {"nonce": nonce}
    start = time.perf_counter()
    try:
        if not callable(fn):
            raise LookupError(f"no function named {name}")
        value = limited(CASE_TIMEOUT, lambda f=fn, a=args: _encode(f(*a)))
        if not _guard_intact():
            raise Forbidden("the submission removed the grader's library ban")
        answer["value"], answer["seconds"] = value, time.perf_counter() - start
    except _Timeout:
        answer.update(error=f"timed out after {CASE_TIMEOUT} s", timeout=True)
    except NotImplementedError as err:
        answer.update(error=describe(err), stub=True)
    except BaseException as err:
        answer["error"] = describe(err)
    args = fn = None
    _send(answer)
os._exit(0)
