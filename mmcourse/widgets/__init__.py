"""Interactive explorers (ipywidgets + matplotlib), one per chapter idea.

Each ``*_explorer(...)`` function returns an ``Explorer`` widget (an ``ipywidgets.VBox``): end a
notebook cell with it to play. Its logic is a plain function of the control values, so tests
(and you) can drive it without a browser: ``ex.update(temperature=2.0)`` returns what it shows.

* ``softmax_explorer``   -- scores and temperature → ``P(y | x1, x2)`` (chapter 05)
* ``attention_explorer`` -- attention maps per example / layer / head, and the query-key dot
  products behind them (chapter 04)
* ``retrieval_explorer`` -- a query, a threshold θ, the retrieved set ``R(q, D)`` and its point on
  the precision/recall curve (chapter 07)
* ``decoding_explorer``  -- greedy vs beam search vs sampling (temperature, top-p), with
  log-probabilities and the attention map of every generated word (chapter 08)
* ``fusion_explorer``    -- fusion strategy × corruption level → accuracy, robustness curves
  (chapters 06, 09)
* ``quality_explorer``   -- class imbalance, missing modalities, noise → samples and metrics
  (chapter 09)
* ``zero_shot_explorer`` -- a scene, prompts you type, each prompt's similarity ``u_x · v_t`` and
  the decision (chapter 11)
* ``alignment_explorer`` -- an utterance's CTC posteriors, the decoded string (greedy / prefix
  beam) and the forced alignment against the true digit boundaries (chapter 12)
* ``vqa_explorer``       -- an image and a question (chosen or typed) → the answer distribution
  and the attention over the image patches (chapter 13)
* ``generation_explorer`` -- a caption (chosen or typed), temperature and guidance → sampled
  scenes and the judge's verdict on each (chapter 14)
"""

from mmcourse.widgets.alignment import alignment_explorer
from mmcourse.widgets.attention import attention_explorer, record_attention
from mmcourse.widgets.decoding import decoding_explorer
from mmcourse.widgets.fusion import fusion_explorer
from mmcourse.widgets.generation import generation_explorer
from mmcourse.widgets.quality import quality_explorer
from mmcourse.widgets.retrieval import retrieval_explorer
from mmcourse.widgets.softmax import softmax_explorer, softmax_with_temperature
from mmcourse.widgets.vqa import answer_question, vqa_explorer
from mmcourse.widgets.zero_shot import zero_shot_explorer

__all__ = ["Explorer", "alignment_explorer", "answer_question", "attention_explorer", "decoding_explorer",
           "fusion_explorer", "generation_explorer", "quality_explorer", "record_attention",
           "retrieval_explorer", "softmax_explorer", "softmax_with_temperature", "vqa_explorer",
           "zero_shot_explorer"]


def __getattr__(name: str):
    if name == "Explorer":  # made on first use: importing the package does not import ipywidgets
        from mmcourse.widgets.base import _explorer_class

        return _explorer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
