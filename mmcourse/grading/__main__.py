"""``python -m mmcourse.grading grade ...`` (see ``cli.py``)."""

import sys

from mmcourse.grading.cli import main

if __name__ == "__main__":
    sys.exit(main())
