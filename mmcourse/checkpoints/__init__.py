"""Pretrained checkpoints shipped with the package: ``NAME.pt`` + ``NAME.sha256``
(see ``mmcourse.pretrained``)."""
