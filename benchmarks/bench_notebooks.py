"""Wall time of every course notebook, executed top to bottom in a fresh kernel (as nbval does).

The course's budget: each notebook <= 90 s and the whole course <= 10 min on the 2-core CPU in
the ``default`` profile. Prints one row per notebook and the total; the notebooks on disk are
not modified (the executed copy is thrown away).

    python benchmarks/bench_notebooks.py [--only 07] [--timeout 600] [--dir notebooks]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_EACH, BUDGET_TOTAL = 90.0, 600.0


def run_notebook(path: Path, timeout: int) -> float:
    """Seconds to execute ``path`` in a fresh ``python3`` kernel started in its folder."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=str(ROOT / "notebooks"))
    parser.add_argument("--only", default="", help="run the notebooks whose name contains this")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    paths = [p for p in sorted(Path(args.dir).glob("*.ipynb")) if args.only in p.name]
    if not paths:
        raise SystemExit(f"no notebook matching {args.only!r} in {args.dir}")
    print(f"{len(paths)} notebook(s), fresh kernel each (kernel start and imports included)")
    print("| notebook | seconds | within 90 s |")
    print("|---|---:|---|")
    total = 0.0
    for path in paths:
        seconds = run_notebook(path, args.timeout)
        total += seconds
        print(f"| {path.name} | {seconds:.1f} | {'yes' if seconds <= BUDGET_EACH else 'NO'} |", flush=True)
    print(f"| **total** | {total:.1f} | {'yes' if total <= BUDGET_TOTAL else 'NO'} (budget 600 s) |")


if __name__ == "__main__":
    main()
