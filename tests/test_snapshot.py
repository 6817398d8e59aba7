import numpy as np
import pandas as pd
import pytest

from recmeta import snapshot
from recmeta.ingest.pipeline import ingest_file, ingest_log
from recmeta.ingest.readers import LogSpec
from recmeta.store import make_engine
from tests.conftest import write


def test_snapshot_matches_the_log(db_url, tmp_path):
    engine = make_engine(db_url)
    path = write(
        tmp_path / "log.csv", "user,item,rating,timestamp\na,x,5,30\na,y,3,10\nb,x,4,20\na,z,1,10\na,y,2,50\n"
    )
    ingest_file(engine, lambda s: ingest_log(s, LogSpec(path=path)))
    data = snapshot.load(engine)
    assert data.n_users == 2 and data.n_items == 3 and data.values.nnz == 4
    a = data.user_index["a"]
    items, values, times = data.user_rows(a)
    # ordered by (timestamp, item); the repeated (a, y) keeps its first time and latest value
    assert [data.item_ids[i] for i in items] == ["y", "z", "x"]
    assert values.tolist() == [2.0, 1.0, 5.0] and times.tolist() == [10, 10, 30]
    assert not data.implicit
    assert data.watermark["interactions"] == 5


def test_features_from_metadata():
    users = pd.DataFrame(
        {
            "id": [2, 1],
            "external_id": ["u2", "u1"],
            "features": [{"age": 40, "sex": "F"}, {"age": 20, "sex": "M"}],
        }
    )
    items = pd.DataFrame(
        {
            "id": [1, 2],
            "external_id": ["i1", "i2"],
            "title": ["A", None],
            "genres": ["x|y", None],
            "year": [1990, None],
            "features": [None, None],
        }
    )
    log = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "value": [1.0, 1.0], "timestamp": [0, 0]})
    data = snapshot.from_frames(log, users, items, implicit=True)
    assert data.user_ids.tolist() == ["u1", "u2"]  # dense order follows row ids
    assert data.item_feature_names == ["genre:x", "genre:y", "year", "year:missing"]
    np.testing.assert_allclose(data.item_features[0, :2], [1, 1])
    assert data.item_features[1, 3] == 1.0  # year missing
    assert data.user_feature_names == ["age", "sex=F", "sex=M"]
    np.testing.assert_allclose(data.user_features[:, 0], [-1, 1])
    assert data.titles == ["A", None]


def test_item_features_encode_new_items_like_the_training_catalogue():
    items = pd.DataFrame(
        {
            "external_id": ["a", "b"],
            "genres": ["x|y", "y"],
            "year": [1990, 2000],
            "features": [{"price": 1.0, "brand": "p"}, {"price": 3.0, "brand": "q"}],
        }
    )
    matrix, names, spec = snapshot.item_feature_matrix(items)
    again, names2, _ = snapshot.item_feature_matrix(items, spec)
    np.testing.assert_array_equal(matrix, again)
    assert names == names2 == ["genre:x", "genre:y", "year", "year:missing", "brand=p", "brand=q", "price"]
    new = pd.DataFrame(
        {
            "external_id": ["c"],
            "genres": ["x|zzz"],
            "year": [2010],
            "features": [{"price": 5.0, "brand": "unknown"}],
        }
    )
    row, _, _ = snapshot.item_feature_matrix(new, spec)
    np.testing.assert_allclose(row[0], [1, 0, 3, 0, 0, 0, 3])  # year (2010-1995)/5, price (5-2)/1


@pytest.mark.parametrize("implicit", [True, False])
def test_matrices_fold_repeats_as_a_grouped_frame_would(implicit):
    """The numpy build of the value and time CSRs equals the plain pandas reading of the rule:
    sort by (user, item, time), fold repeats into the sum (implicit) or the last value, at
    the first time."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from recmeta.snapshot import matrices

    rng = np.random.default_rng(0)
    for n in (0, 1, 50, 5000):
        u, i = rng.integers(0, 30, n), rng.integers(0, 20, n)
        v, t = rng.integers(1, 6, n).astype(np.float32), rng.integers(0, 10, n)
        frame = pd.DataFrame({"u": u, "i": i, "v": v, "t": t}).sort_values(["u", "i", "t"], kind="stable")
        folded = (
            frame.groupby(["u", "i"])
            .agg(v=("v", "sum" if implicit else "last"), t=("t", "first"))
            .reset_index()
        )
        at = (folded.u.to_numpy(), folded.i.to_numpy())
        want = (
            sp.csr_matrix((folded.v.to_numpy(np.float32), at), shape=(31, 20)),
            sp.csr_matrix((folded.t.to_numpy(np.int64), at), shape=(31, 20)),
        )
        for got, ref in zip(matrices(u, i, v, t, (31, 20), implicit), want, strict=True):
            assert np.array_equal(got.indptr, ref.indptr) and np.array_equal(got.indices, ref.indices)
            assert np.array_equal(got.data, ref.data) and got.dtype == ref.dtype
