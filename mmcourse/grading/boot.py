"""The sandbox's own side: ``python -I boot.py CODEC_PATH UID NPROC_MARGIN ANSWER_FD`` (``sandbox.py``).

This file is executed as a script in the sandbox process (importing it does nothing); it
imports nothing from ``mmcourse`` (so the references stay out of reach; graded code may import
the package's ``PACKAGE`` modules -- data, models, metrics, train -- for experiment parts, never
``mmcourse.grading``) and talks to the grader
over two pipes: requests arrive on stdin (length-prefixed pickles, written by the grader -- the
direction the grader trusts), answers leave on ANSWER_FD (JSON lines, trusted in nothing).

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

FAMILIES = ("convolution", "conv_depthwise", "slow_conv", "thnn_conv", "mkldnn_conv", "cudnn_conv",
            "scaled_dot_product", "nll_loss", "cross_entropy")
BLOCKED = frozenset("""os sys subprocess ctypes _ctypes cffi gc inspect threading _thread multiprocessing
concurrent socket select selectors signal resource importlib builtins __main__ io _io pathlib shutil
pickle marshal code codeop pty asyncio tempfile posix _posixsubprocess mmap faulthandler atexit
sklearn scipy pdb trace tracemalloc sysconfig site runpy zipimport fcntl urllib http psutil
traceback types dis linecache weakref ftplib smtplib webbrowser""".split())
BLOCKED_PARTS = frozenset({"multiprocessing", "cpp_extension", "_C", "library", "overrides", "jit",
                           "_python_dispatch", "_dynamo", "_inductor", "ctypeslib", "distributed",
                           "hub", "_utils_internal", "testing"})
# the package's own modules an experiment part may use (training and evaluating with the course's
# data, models and metrics, the shipped checkpoints and chapter 14's judges); never
# ``mmcourse.grading`` (the references) nor the top package itself
PACKAGE = frozenset({"config", "data", "interpret", "judges", "metrics", "models", "pretrained", "robustness",
                     "tensors", "train"})
NOT_BUILTIN = ("open", "eval", "exec", "compile", "breakpoint", "input", "globals", "locals", "vars",
               "getattr", "setattr", "delattr", "help", "memoryview", "__loader__", "__spec__")


class Forbidden(Exception):
    pass


class Blocked(ImportError):
    pass


class _Timeout(BaseException):
    pass


class _NoCheck:
    def __call__(self, *a, **k):
        return None

    def summary(self, *a, **k):
        return None


def _recv(read=os.read):
    """One length-prefixed pickle from the grader, or None at end of input."""
    head = b""
    while len(head) < 8:
        chunk = read(0, 8 - len(head))
        if not chunk:
            return None
        head += chunk
    size, data = int.from_bytes(head, "big"), bytearray()
    while len(data) < size:
        chunk = read(0, min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return pickle.loads(bytes(data))


def _sender(fd, write=os.write, dumps=json.dumps):
    def send(obj):
        view = memoryview((dumps(obj) + "\n").encode())
        while view:
            view = view[write(fd, view):]
    return send


def _count_tasks(uid):
    """Tasks (processes and threads) of ``uid`` (this process's own, when it has its own uid)."""
    if uid >= 0 or not os.path.isdir("/proc"):
        return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    tasks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == os.getuid():
                tasks += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return tasks


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


def ban_checker(banned_names):
    """``check(func)`` raising ``Forbidden`` if ``func``'s name (torch function or ATen op,
    leading underscores and ``special_``/``nn_``/``linalg_`` dropped) is banned."""
    banned = frozenset(n.lower().lstrip("_") for n in banned_names)
    prefixes = _families(banned_names)

    def check(func):
        name = str(getattr(func, "__name__", "") or getattr(func, "_opname", "")).split(".")[0].lower()
        name = name.lstrip("_")
        for prefix in ("special_", "nn_", "linalg_"):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name in banned or name.startswith(prefixes):
            raise Forbidden(f"calls {name}, which this exercise does not allow")
    return check


def package_path(codec_path):
    """Put the course's root on ``sys.path`` when ``mmcourse`` is not installed (``python -I``
    ignores ``PYTHONPATH``), so that experiment parts can import its ``PACKAGE`` modules; returns
    the other names at that root, which graded code may not import."""
    import importlib.util

    if importlib.util.find_spec("mmcourse") is not None:
        return frozenset()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(codec_path))))
    sys.path.append(root)
    return frozenset(os.path.splitext(e)[0] for e in os.listdir(root)) - {"mmcourse"}


def safe_builtins(outside=frozenset()):
    """Built-ins for the submission: no ``open``/``eval``/``getattr``..., a guarded import
    (``outside``: top-level names graded code may not import besides ``BLOCKED``)."""
    grading = types.ModuleType("mmcourse.grading")
    grading.checks_for, grading.check = (lambda *a, **k: _NoCheck()), _NoCheck()
    mmcourse = types.ModuleType("mmcourse")
    mmcourse.grading = grading
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        parts = name.split(".")
        if level:
            raise Blocked("relative imports are not available to graded code")
        if parts[0] == "mmcourse":
            if name == "mmcourse":
                for sub in set(fromlist or ()) & PACKAGE:
                    setattr(mmcourse, sub, real_import(f"mmcourse.{sub}", globals, locals, ("__name__",)))
                return mmcourse
            if name == "mmcourse.grading":
                return grading if fromlist else mmcourse
            if parts[1] in PACKAGE and not BLOCKED_PARTS & set(parts):
                module = real_import(name, globals, locals, fromlist or ("__name__",), level)
                if fromlist:
                    return module
                # ``import mmcourse.models``: bind this process's stand-in for the top package
                setattr(mmcourse, parts[1], real_import(f"mmcourse.{parts[1]}", globals, locals,
                                                        ("__name__",)))
                return mmcourse
            raise Blocked(f"{name} is not available to graded functions")
        if (parts[0] in BLOCKED or parts[0] in outside or BLOCKED_PARTS & set(parts)
                or BLOCKED_PARTS & set(fromlist or ())):
            raise Blocked(f"{name} is not available to graded functions")
        return real_import(name, globals, locals, fromlist, level)

    out = {k: v for k, v in vars(builtins).items() if k not in NOT_BUILTIN}
    out["__import__"] = guarded_import
    return out


def _alarm(signum, frame):
    raise _Timeout()


def limited(seconds, fn, *args):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def describe(err):
    text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return text[:300]


def main(argv):
    codec_path, uid, margin, answer_fd = argv[0], *map(int, argv[1:4])
    send = _sender(answer_fd)
    if uid >= 0:                       # the grader runs as root: become nobody in particular
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    setup = _recv()
    for lim, val in ((resource.RLIMIT_AS, setup["memory"]), (resource.RLIMIT_CPU, setup["cpu"]),
                     (resource.RLIMIT_FSIZE, setup["fsize"]), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(lim, (val, val))
        except (ValueError, OSError):
            pass

    outside = package_path(codec_path)
    import numpy  # noqa: F401  (before the limit on tasks: numpy and torch may start threads)
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    torch.set_num_threads(1)
    tasks = _count_tasks(uid) + margin
    try:   # (without /proc, as on macOS, this counts this process only: the sandbox cannot fork)
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    except (ValueError, OSError):
        pass
    codec = {"__name__": "codec"}
    with open(codec_path) as f:
        exec(compile(f.read(), "codec.py", "exec"), codec)
    encode = codec["encode"]

    default_check = ban_checker(setup["banned"])
    ban = {"check": default_check}      # a case may narrow the ban to its part's (``Part.allowed``)

    class FunctionBan(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            ban["check"](func)
            return func(*args, **(kwargs or {}))

    class DispatchBan(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls):   # no torch._dynamo wrapper: importing it costs ~2 s
            return False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ban["check"](func)
            return func(*args, **(kwargs or {}))

    function_ban, dispatch_ban = FunctionBan(), DispatchBan()
    function_ban.__enter__()
    dispatch_ban.__enter__()
    function_stack = torch.overrides._get_current_function_mode_stack
    dispatch_stack = torch.utils._python_dispatch._get_current_dispatch_mode_stack

    def guard_intact():
        return function_ban in function_stack() and dispatch_ban in dispatch_stack()

    signal.signal(signal.SIGALRM, _alarm)
    case_timeout = setup["case_timeout"]
    ns = {"__name__": "submission", "__builtins__": safe_builtins(outside)}
    notes = []
    for where, code in setup["statements"]:
        try:
            limited(case_timeout, exec, compile(code, "<submission>", "exec"), ns)
        except _Timeout:
            notes.append(f"{where}: timed out while defining")
        except Blocked as err:
            if "mmcourse" not in str(err):
                notes.append(f"{where}: {describe(err)}")
        except BaseException as err:
            notes.append(f"{where}: {describe(err)}")
    setup = None
    send({"ready": True, "notes": notes[:20]})
    while True:
        request = _recv()
        if request is None:
            break
        nonce, name, args = request["nonce"], request["function"], request["args"]
        seconds = float(request.get("timeout", case_timeout))   # an experiment part's own allowance
        ban["check"] = ban_checker(request["banned"]) if "banned" in request else default_check
        request = None
        fn = ns.get(name)
        answer = {"nonce": nonce}
        start = time.perf_counter()
        try:
            if not callable(fn):
                raise LookupError(f"no function named {name}")
            value = limited(seconds, lambda f=fn, a=args: encode(f(*a)))
            if not guard_intact():
                raise Forbidden("the submission removed the grader's library ban")
            answer["value"], answer["seconds"] = value, time.perf_counter() - start
        except _Timeout:
            answer.update(error=f"timed out after {seconds} s", timeout=True)
        except NotImplementedError as err:
            answer.update(error=describe(err), stub=True)
        except BaseException as err:
            answer["error"] = describe(err)
        args = fn = None
        ban["check"] = default_check
        send(answer)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
