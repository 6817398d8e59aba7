"""Recommend: load the active checkpoints, route each user, adapt, score the catalogue in one
batched call, drop what the user has, and explain (`service`); the values a request takes
and gives (`results`); the files a batch run reads and writes (`files`).

One request imports no pandas (the batch and file helpers import it themselves): a whole
`recmeta recommend` process must finish in under 3 s, and pandas costs about half a second.
"""

from recmeta.recommend.files import RecsWriter, check_out_path, iter_users_file, read_item_list
from recmeta.recommend.results import Filters, History, Item, Recommendations, parse_pairs
from recmeta.recommend.service import RecommendationService, Served, item_similarities

__all__ = [
    "Filters",
    "History",
    "Item",
    "RecommendationService",
    "Recommendations",
    "RecsWriter",
    "Served",
    "check_out_path",
    "item_similarities",
    "iter_users_file",
    "parse_pairs",
    "read_item_list",
]
