"""The course's models, one readable file per idea; each docstring states its formula.

``cnn`` (dense layer, convolution as unfold + matmul, encoders), ``rnn`` (Elman and GRU cells,
sequence encoders), ``attention`` (scaled dot-product, multi-head, additive), ``fusion`` (early,
late, cross-attention, tensor, gated), ``retrieval`` (dual encoder, InfoNCE, R(q, D)) and
``captioning`` (attention captioner, greedy / beam / sampling) and ``transformer_captioning``
(the same captioner with a causal transformer decoder).
"""

from mmcourse.models.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    TinyCausalDecoder,
    TransformerBlock,
    padding_mask,
    scaled_dot_product_attention,
)
from mmcourse.models.bow import BagOfWords
from mmcourse.models.captioning import Captioner, caption_report, encode_captions, filter_logits
from mmcourse.models.cnn import (
    ConvEncoder,
    Dense,
    UnfoldConv2d,
    UnimodalClassifier,
    conv2d_unfold,
    image_encoder,
    spectrogram_encoder,
)
from mmcourse.models.fusion import (
    STRATEGIES,
    CrossAttentionFusion,
    EarlyFusion,
    GatedFusion,
    JointClassifier,
    LateFusion,
    TensorFusion,
    count_parameters,
    make_fusion,
)
from mmcourse.models.retrieval import (
    DualEncoder,
    info_nce,
    retrieval_report,
    retrieve,
    top_k,
    winoground_scores,
)
from mmcourse.models.rnn import (
    ElmanCell,
    Frames,
    GRUCell,
    SequenceEncoder,
    copy_from_torch,
    gradient_through_time,
    run_cell,
    spectrogram_frames,
)
from mmcourse.models.transformer_captioning import TransformerCaptioner, captioner_for

__all__ = [
    "AdditiveAttention", "BagOfWords", "Captioner", "ConvEncoder", "CrossAttentionFusion", "Dense",
    "DualEncoder", "EarlyFusion", "ElmanCell", "Frames", "GRUCell", "GatedFusion", "JointClassifier",
    "LateFusion", "MultiHeadAttention", "STRATEGIES", "SequenceEncoder", "TensorFusion",
    "TinyCausalDecoder", "TransformerBlock", "TransformerCaptioner", "UnfoldConv2d",
    "UnimodalClassifier", "caption_report", "captioner_for", "conv2d_unfold", "copy_from_torch",
    "count_parameters", "encode_captions", "filter_logits", "gradient_through_time", "image_encoder",
    "info_nce", "make_fusion", "padding_mask", "retrieval_report", "retrieve", "run_cell",
    "scaled_dot_product_attention", "spectrogram_encoder", "spectrogram_frames", "top_k",
    "winoground_scores",
]
