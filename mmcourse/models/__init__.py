"""The course's models, one readable file per idea; each docstring states its formula."""

from mmcourse.models.bow import BagOfWords
from mmcourse.models.cnn import ConvEncoder, UnimodalClassifier

__all__ = ["BagOfWords", "ConvEncoder", "UnimodalClassifier"]
