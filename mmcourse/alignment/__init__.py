"""Alignment (chapter 12): which frames of an input belong to which symbol of a sequence.

* ``dtw``: dynamic time warping of two sequences -- cost matrix, recursion, back-traced path;
* ``templates``: connected-word DTW, a template-matching recogniser of digit strings;
* ``ctc``: the CTC loss -- the blank, the collapse rule, the forward (α) recursion in log space;
* ``decoding``: greedy and prefix-beam decoding of CTC posteriors;
* ``forced``: Viterbi forced alignment over the CTC lattice, and each symbol's frames.
"""

from mmcourse.alignment.ctc import collapse, ctc_alpha, ctc_loss, extend_with_blanks
from mmcourse.alignment.decoding import greedy_decode, prefix_beam_search
from mmcourse.alignment.forced import Alignment, boundary_errors, forced_align, word_boundaries
from mmcourse.alignment.templates import TemplateMatcher, connected_word_match
from mmcourse.alignment.warping import DTWResult, dtw, pairwise_cost

__all__ = ["Alignment", "DTWResult", "TemplateMatcher", "boundary_errors", "collapse",
           "connected_word_match", "ctc_alpha", "ctc_loss", "dtw", "extend_with_blanks", "forced_align",
           "greedy_decode", "pairwise_cost", "prefix_beam_search", "word_boundaries"]
