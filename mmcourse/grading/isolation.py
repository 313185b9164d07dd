"""Operating-system isolation for the processes that run a submission's code.

Both the sandbox (``sandbox.py``) and the report-only notebook run (``runner.execute``) start
through ``command()``. What protects the grader depends on what this machine offers:

``bwrap`` (Linux with bubblewrap installed and working; ``apt-get install bubblewrap``)
    A new PID namespace (the submission sees only its own processes: it cannot signal the
    grader, and when the sandbox ends every process in it ends: no double-forked daemon
    survives), a new network namespace (no network, only its own loopback), new IPC and UTS
    namespaces, the whole file system read-only except a scratch directory and an empty
    ``/tmp``, and a new session (no terminal).
``uid`` (root, without bubblewrap)
    No namespaces; the child drops to an unprivileged uid of its own, so it cannot write
    root's files (only world-writable places such as ``/tmp``), cannot signal the grader, and
    every process it leaves is killed by uid when it ends.
``none`` (neither): a warning is printed. The child runs as the grader's user: it can read and
    write that user's files, use the network, and signal the grader; leftovers are killed by
    process group and, on Linux, as descendants of the grader (which is made a child
    subreaper, so double-forked processes stay its descendants).

In every mode the child sets resource limits itself (memory, CPU time, file size, no core
dumps) and a process-count limit (``RLIMIT_NPROC``): with an own uid (``bwrap`` or ``uid`` as
root) no new process or thread at all in the sandbox; without one, a margin over what the user
already runs (a best effort: Linux counts tasks per user). ``MMCOURSE_SANDBOX=bwrap|uid|none``
forces a mode (``bwrap`` fails loudly if it does not work).
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

MODES = ("bwrap", "uid", "none")


def _needed() -> list[str]:
    """Directories the child must read: Python, its packages, this package."""
    import site

    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable), here,
             *site.getsitepackages()}
    return sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})


def _closed_ancestor(path: str) -> str | None:
    """The highest directory above ``path`` that others may not enter (e.g. ``/root``)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        d = "/" + "/".join(parts[:i])
        try:
            if os.stat(d).st_mode & 0o005 != 0o005:
                return d
        except OSError:
            return None
    return None


def _reopen_args() -> list[str]:
    """Python lives under a closed directory (pyenv in /root), or the course under /tmp, which
    the sandbox replaces by an empty tmpfs: an empty directory over it, with only what the child
    needs bound back in (read-only), so an unprivileged uid can run."""
    args, covered = [], {"/tmp"}   # /tmp is already a fresh tmpfs in the sandbox
    for path in _needed():
        # a checkout or virtual environment under /tmp (a CI clone) is hidden by that tmpfs
        top = "/tmp" if path.startswith("/tmp/") else _closed_ancestor(path)
        if top is None:
            continue
        if top not in covered:
            covered.add(top)
            args += ["--perms", "0755", "--tmpfs", top]
        parts = path[len(top):].strip("/").split("/")
        for i in range(1, len(parts)):   # the directories between, enterable
            args += ["--perms", "0755", "--dir", top + "/" + "/".join(parts[:i])]
        args += ["--ro-bind", path, path]
    return args


def _bwrap_args(scratch: str) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--die-with-parent", "--new-session", "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", *_reopen_args()]
    parts = scratch.strip("/").split("/")
    for i in range(2, len(parts)):   # a scratch nested in /tmp (a worker's own directory)
        if parts[0] == "tmp":
            args += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
    args += ["--bind", scratch, scratch, "--chdir", scratch]
    if os.geteuid() != 0:
        args.insert(1, "--unshare-user")
    return args + ["--"]


@functools.cache
def _bwrap_works() -> str:
    """"" if bubblewrap can start a process here, else why not."""
    if sys.platform != "linux":
        return "bubblewrap exists only on Linux"
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed; on Debian/Ubuntu: apt-get install bubblewrap"
    scratch = os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
    try:
        done = subprocess.run([*_bwrap_args(scratch), "/bin/sh", "-c", "exit 0"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap does not start: {err}"
    return "" if done.returncode == 0 else f"bubblewrap does not work here: {done.stderr.strip()[:200]}"


def mode() -> str:
    """The isolation in use: ``bwrap``, ``uid`` or ``none`` (see the module docstring)."""
    forced = os.environ.get("MMCOURSE_SANDBOX", "").strip().lower()
    if forced and forced != "auto":
        if forced not in MODES:
            raise ValueError(f"MMCOURSE_SANDBOX={forced!r}: expected one of {', '.join(MODES)} or auto")
        if forced == "bwrap" and _bwrap_works():
            raise RuntimeError(f"MMCOURSE_SANDBOX=bwrap, but {_bwrap_works()}")
        if forced == "uid" and (os.geteuid() != 0 or any(_closed_ancestor(p) for p in _needed())):
            raise RuntimeError("MMCOURSE_SANDBOX=uid needs the grader to run as root, with Python in "
                               "directories that other users may enter")
        return forced
    if not _bwrap_works():
        return "bwrap"
    if os.name == "posix" and os.geteuid() == 0 and not any(_closed_ancestor(p) for p in _needed()):
        return "uid"
    return "none"


def warning() -> str | None:
    """What is not protected in the current mode, or None with bubblewrap."""
    m = mode()
    if m == "bwrap":
        return None
    forced = os.environ.get("MMCOURSE_SANDBOX", "auto").strip().lower() not in ("", "auto")
    why = "MMCOURSE_SANDBOX chose it" if forced else _bwrap_works()
    if m == "uid":
        return (f"no bubblewrap ({why}): submissions run under an unprivileged uid but share the "
                "network and can write world-writable directories such as /tmp")
    if not forced and os.name == "posix" and os.geteuid() == 0:
        why += "; and Python lives in a directory other users cannot enter, so no own uid either"
    who = "root" if os.name == "posix" and os.geteuid() == 0 else "this user"
    return (f"no bubblewrap ({why}): submissions run as {who}, with {who}'s files and network, and "
            "can signal the grader (leftover processes are still killed); grade untrusted work in a "
            "container")


def new_uid() -> int:
    """An unused unprivileged uid for one child when the grader is root; -1 otherwise."""
    if mode() == "none" or os.geteuid() != 0:
        return -1
    return 1_000_000_000 + secrets.randbelow(1_000_000_000)


def prepare(scratch: str, uid: int) -> None:
    """Make ``scratch`` the child's own (and only) writable directory."""
    if uid >= 0:
        os.chown(scratch, uid, uid)
    os.chmod(scratch, 0o700)


def command(argv: list[str], scratch: str) -> list[str]:
    """``argv`` wrapped in the isolation of the current mode."""
    return _bwrap_args(scratch) + argv if mode() == "bwrap" else list(argv)


def become_subreaper() -> None:
    """On Linux, make orphans of this process's descendants its children (for ``sweep``)."""
    if sys.platform == "linux":
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def kill_uid(uid: int) -> None:
    """Kill every process running as ``uid`` (a child that becomes ``uid`` and kills -1)."""
    if uid < 0:
        return
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def end(proc: subprocess.Popen, uid: int) -> None:
    """Stop ``proc`` (started with ``start_new_session``), its group, and all of ``uid``."""
    for target in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            target()
        except (ProcessLookupError, PermissionError, OSError):
            pass
    kill_uid(uid)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process in uninterruptible sleep
        pass


def sweep(keep: set[int] | None = None) -> int:
    """Kill this process's remaining descendants (orphans included, see ``become_subreaper``);
    returns how many there were."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return 0
    keep = keep or set()
    found = [p for p in psutil.Process().children(recursive=True) if p.pid not in keep]
    for p in found:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(found, timeout=5)
    if keep:   # other workers run on: reap only what is not theirs (their exit status is theirs)
        for p in psutil.Process().children():
            if p.pid not in keep:
                try:
                    os.waitpid(p.pid, os.WNOHANG)
                except (ChildProcessError, OSError):
                    pass
        return len(found)
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:   # reap zombies re-parented to us
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return len(found)
