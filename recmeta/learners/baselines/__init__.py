"""Baselines behind the same interface: popularity, implicit's ALS, item-item kNN (cosine or
BM25), EASE and the episodic item-item weights.

The CF baselines learn from the training users' positive rows and score a user from the
positive rows of their support; ties (a support with no positive row) fall back to
popularity order through a 1e-6 popularity term.

scipy and implicit are imported where a baseline is built, so that serving a meta-learner
(whose module imports this one through the registry) does not pay for them.
"""

from recmeta.learners.baselines.als import ALS, als_continue, als_item_factors, als_model, item_factors
from recmeta.learners.baselines.base import TIE_BREAK, FromLiked, Tuning, liked_matrix, quiet_blas
from recmeta.learners.baselines.ease import EASE, ease_weights, gram_matrix, mirror_lower, top_per_row
from recmeta.learners.baselines.episodic import Episodic
from recmeta.learners.baselines.item_item import KNN_NEIGHBOURS, KNN_WEIGHTING, ItemItem, ItemKNN
from recmeta.learners.baselines.popular import Popular

__all__ = [
    "ALS",
    "EASE",
    "KNN_NEIGHBOURS",
    "KNN_WEIGHTING",
    "TIE_BREAK",
    "Episodic",
    "FromLiked",
    "ItemItem",
    "ItemKNN",
    "Popular",
    "Tuning",
    "als_continue",
    "als_item_factors",
    "als_model",
    "ease_weights",
    "gram_matrix",
    "item_factors",
    "liked_matrix",
    "mirror_lower",
    "quiet_blas",
    "top_per_row",
]
