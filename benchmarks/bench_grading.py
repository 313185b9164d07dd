"""How long a class takes to grade: a synthetic 30-student class (``demo_class``) graded with
``mmcourse grade --jobs 2`` (notebook runs included), the whole workflow's outputs written.

    python benchmarks/bench_grading.py [--students 30] [--jobs 2] [--exercise 04_attention]

Prints the wall time, the per-submission median and what was written. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmcourse.grading import demo_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--exercise", default="04_attention")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        students = demo_class.make(tmp, args.exercise, args.students)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmcourse.grading", "grade", str(tmp / "class"), "--out",
                        str(tmp / "out"), "--jobs", str(args.jobs), "--late-policy", str(tmp / "policy.toml"),
                        "--submitted", str(tmp / "submitted.csv")], check=True, capture_output=True)
        wall = time.perf_counter() - start
        out = tmp / "out"
        reports = [json.loads((out / s.name / f"{args.exercise}.json").read_text()) for s in students]
        finals = {r["student"]: float(r["final"]) for r in csv.DictReader((out / "gradebook.csv").open())}
        right = sum(abs(finals[s.name] - s.expected_score) < 1e-6 for s in students)   # late penalty included
        print(f"exercise {args.exercise}: {args.students} students, --jobs {args.jobs}")
        print(f"wall time: {wall:.0f} s ({wall / args.students:.1f} s per student)")
        print(f"median seconds per submission (in its worker): "
              f"{statistics.median(r['seconds'] for r in reports):.1f}")
        print(f"reports: {len(reports)}, final grades (late penalties applied) as the synthetic class "
              f"expects: {right}/{len(students)}")
        print("written: " + ", ".join(sorted(p.name for p in (tmp / "out").iterdir())))


if __name__ == "__main__":
    main()
