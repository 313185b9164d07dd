"""The course's models, one readable file per idea; each docstring states its formula.

Every model takes a batch dict and returns one ``ModelOutput`` (``output``).

* ``cnn``: dense layer, convolution as unfold + matmul, encoders; ``rnn``: Elman and GRU cells,
  sequence encoders; ``attention``: scaled dot-product, multi-head, additive, the transformer block;
  ``language_model``: a tiny GPT;
* ``encoders``: one encoder per modality, shared by baselines and fusions; ``joint``: the joint
  classifier interface; ``fusion``: early, late, voting, tensor, gated;
  ``cross_attention_fusion``: end-to-end fusion;
* ``retrieval``: dual encoder, InfoNCE, R(q, D); ``shape_colour``: an image tower with a
  colour-blind shape stream beside a coarse colour stream (chapter 11); ``captioning``: the
  attention captioner;
  ``decoding``: greedy / beam / sampling over any captioner; ``transformer_captioning``: the
  same captioner with a causal transformer decoder; ``ctc_recognizer``: a conv encoder over log-mel
  frames trained with CTC (chapter 12);
* ``patch_embedding``: ViT patches as tokens; ``vqa``: VQA baselines and the element-wise-product
  model; ``vqa_transformers``: single-stream and dual-stream multimodal transformers (chapter 13).
* ``prefix_captioning``: a frozen LM reading k visual words; ``image_tokenizer``: VQ autoencoder
  and fixed palette / pattern tokenizers; ``text_to_image``: the chain rule over image tokens;
  ``guidance``: classifier-free guidance (chapter 14).
"""

from mmcourse.models.attention import (
    AdditiveAttention,
    MultiHeadAttention,
    TransformerBlock,
    padding_mask,
    scaled_dot_product_attention,
)
from mmcourse.models.bow import BagOfWords
from mmcourse.models.captioning import Captioner, CaptionModel, encode_captions
from mmcourse.models.cnn import (
    ConvEncoder,
    Dense,
    UnfoldConv2d,
    UnimodalClassifier,
    conv2d_unfold,
    image_encoder,
    spectrogram_encoder,
)
from mmcourse.models.cross_attention_fusion import CrossAttentionFusion
from mmcourse.models.ctc_recognizer import CTCRecognizer
from mmcourse.models.decoding import Decoded, filter_logits
from mmcourse.models.encoders import VectorEncoder, encoder_for
from mmcourse.models.fusion import (
    STRATEGIES,
    EarlyFusion,
    GatedFusion,
    LateFusion,
    TensorFusion,
    count_parameters,
    make_fusion,
)
from mmcourse.models.joint import JointClassifier
from mmcourse.models.language_model import TinyCausalDecoder
from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_embedding import PatchEmbedding, patchify
from mmcourse.models.retrieval import DualEncoder, embed_dataset, info_nce, retrieve, top_k
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
from mmcourse.models.vqa import ImageOnly, ProductFusionVQA, QuestionOnly
from mmcourse.models.vqa_transformers import DualStreamVQA, SingleStreamVQA, make_vqa_model

__all__ = [
    "AdditiveAttention", "BagOfWords", "CaptionModel", "Captioner", "Decoded", "ModelOutput",
    "VectorEncoder", "embed_dataset", "encoder_for", "ConvEncoder", "CrossAttentionFusion", "Dense",
    "CTCRecognizer", "DualEncoder", "EarlyFusion", "ElmanCell", "Frames", "GRUCell", "GatedFusion",
    "JointClassifier",
    "LateFusion", "MultiHeadAttention", "STRATEGIES", "SequenceEncoder", "TensorFusion",
    "TinyCausalDecoder", "TransformerBlock", "TransformerCaptioner", "UnfoldConv2d",
    "UnimodalClassifier", "captioner_for", "conv2d_unfold", "copy_from_torch",
    "count_parameters", "encode_captions", "filter_logits", "gradient_through_time", "image_encoder",
    "info_nce", "make_fusion", "padding_mask", "retrieve", "run_cell",
    "scaled_dot_product_attention", "spectrogram_encoder", "spectrogram_frames", "top_k",
    "DualStreamVQA", "ImageOnly", "PatchEmbedding", "ProductFusionVQA", "QuestionOnly", "SingleStreamVQA",
    "make_vqa_model", "patchify",
]
