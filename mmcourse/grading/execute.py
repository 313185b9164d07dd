"""Execute a submission top to bottom in a fresh kernel (nbclient), in a child process.

    python -m mmcourse.grading.execute NOTEBOOK WORKDIR SUMMARY.json TIMEOUT [UID]

With a UID (>= 0; the grader runs as root) the process first becomes that unprivileged uid, and
in any case it limits the tasks its uid may run (``RLIMIT_NPROC``, kernel included) before the
kernel starts; ``runner.execute`` starts it inside ``isolation.command`` (bubblewrap where it
works: no network, read-only file system but for the temporary copy, own PID namespace).

The kernel starts in ``WORKDIR`` (a temporary copy made by the runner), so code that deletes
or edits files there touches nothing of the instructor's. Outputs are capped at
``MAX_OUTPUT_CHARS`` in total (a huge print is cut, not kept in memory); errors are allowed
(every cell runs) and summarised. The summary (a small JSON file) is all the grader reads:
``status`` ok / error / timeout / kernel-died, the failing cells, seconds. The grader itself
kills this process (and the kernel) if it outlives ``TIMEOUT`` + a grace period.

The run is a report for the student and the instructor ("does the notebook run top to
bottom?"); scores come from the sandboxed hidden cases, never from this kernel.
"""

from __future__ import annotations

import json
import sys
import time

MAX_OUTPUT_CHARS = 200_000


MAX_TASKS = 256


def _limit(uid: int) -> None:
    import os
    import resource

    if uid >= 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    tasks = 0
    if uid < 0 and os.path.isdir("/proc"):   # the grader's own uid: a margin over what it runs
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}").st_uid == os.getuid():
                    tasks += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                pass
    if uid >= 0 or tasks:   # without /proc (macOS) the user's count is unknown: no limit
        try:   # root (uid 0) is exempt from this limit: the reason for an own uid
            resource.setrlimit(resource.RLIMIT_NPROC, (tasks + MAX_TASKS, tasks + MAX_TASKS))
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> int:
    _limit(int(argv[4]) if len(argv) > 4 else -1)
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb_path, workdir, summary_path, timeout = argv[0], argv[1], argv[2], float(argv[3])
    summary: dict = {"status": "ok", "errors": [], "truncated": False}
    budget = {"chars": MAX_OUTPUT_CHARS}

    class CappedClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            if budget["chars"] - size < 0:
                summary["truncated"] = True
                return None
            budget["chars"] -= size
            return super().output(outs, msg, display_id, cell_index)

    start = time.perf_counter()
    try:
        nb = nbformat.read(nb_path, as_version=4)
        client = CappedClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                              resources={"metadata": {"path": workdir}}, record_timing=False)
        deadline = time.monotonic() + timeout

        def on_cell_start(cell, cell_index):
            client.timeout = max(1, int(deadline - time.monotonic()))

        client.on_cell_start = on_cell_start
        client.execute()
        for index, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    value = str(out.get("evalue"))[:200]
                    summary["errors"].append(f"cell {index}: {out.get('ename')}: {value}")
        if summary["errors"]:
            summary["status"] = "error"
    except CellTimeoutError:
        summary["status"] = "timeout"
    except DeadKernelError as err:
        summary["status"] = "kernel-died"
        summary["errors"].append(str(err)[:300])
    except Exception as err:  # nbformat errors, kernel start-up failures ...
        summary["status"] = "failed"
        summary["errors"].append(f"{type(err).__name__}: {str(err)[:300]}")
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["errors"] = summary["errors"][:10]
    with open(summary_path, "w") as f:
        json.dump(summary, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
