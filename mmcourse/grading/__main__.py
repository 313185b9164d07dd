"""``python -m mmcourse.grading grade ...`` (see ``cli.py``)."""

import sys

from mmcourse.grading.cli import main

sys.exit(main())
