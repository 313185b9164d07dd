"""``python -m mmcourse.train CHAPTER ...`` / ``torchrun ... -m mmcourse.train CHAPTER ...``
(see ``mmcourse/train/cli.py``)."""

import sys

from mmcourse.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
