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


@pytest.mark.parametrize("value", ["1e300", "'NaN'", "-1e13"])
def test_a_value_no_model_can_take_stops_the_snapshot_with_what_to_do(sqlite_url, tmp_path, value):
    """A store written by other means than ingest (which rejects such rows) may hold a value
    that is not finite or beyond ±1e12: loading it is a clear error, not NaN in the models."""
    from sqlalchemy import text

    from recmeta.errors import DataError

    engine = make_engine(sqlite_url)
    path = write(tmp_path / "log.csv", "user,item,rating\na,x,5\na,y,3\nb,x,4\n")
    ingest_file(engine, lambda s: ingest_log(s, LogSpec(path=path)))
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE interactions SET value = {value} WHERE id = 2"))
    with pytest.raises(
        DataError, match="1 interaction value.*not finite numbers within ±1e\\+12.*delete or correct"
    ):
        snapshot.load(engine)


def test_a_stored_feature_that_is_not_finite_counts_as_missing():
    """A store written by other means than ingest may hold inf in a numeric feature: it is
    missing there, and no NaN reaches the models."""
    feats = pd.Series([{"age": 30.0}, {"age": float("inf")}, {"age": 20.0}])
    matrix, names, spec = snapshot.featurize(feats)
    assert names == ["age", "age:missing"] and np.isfinite(matrix).all()
    assert matrix[:, 1].tolist() == [0.0, 1.0, 0.0] and spec[0]["moments"] == [25.0, 5.0]


def test_a_catalogue_of_thousands_of_genres_keeps_the_most_frequent():
    """Genres are multi-hot columns: a unique 'genre' per item (a category id, a title) must
    not make an items x items matrix. The MAX_GENRES most frequent stay; names are stripped."""
    n = 5000
    items = pd.DataFrame(
        {
            "id": range(n),
            "external_id": [str(i) for i in range(n)],
            "genres": [f"g{i}| common " for i in range(n)],
        }
    )
    matrix, names, _ = snapshot.item_feature_matrix(items)
    assert matrix.shape == (n, snapshot.MAX_GENRES) and "genre:common" in names
    assert matrix[:, names.index("genre:common")].all()


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


@pytest.mark.parametrize("fold_block", [snapshot.FOLD_BLOCK, 7])
@pytest.mark.parametrize("implicit", [True, False])
def test_matrices_fold_repeats_as_a_grouped_frame_would(implicit, fold_block, monkeypatch):
    """The numpy build of the value and time CSRs equals the plain pandas reading of the rule:
    sort by (user, item, time), fold repeats into the sum (implicit) or the last value, at
    the first time."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from recmeta.snapshot import matrices

    monkeypatch.setattr(snapshot, "FOLD_BLOCK", fold_block)  # blocks of a few users, one user over a block
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


@pytest.mark.parametrize("implicit", [True, False])
def test_the_store_read_in_blocks_equals_the_log_folded_at_once(db_url, tmp_path, monkeypatch, implicit):
    """The store read a few rows at a time into the CSR slots (and folded a few users at a
    time) gives the matrices of the whole log folded at once, and `load_since`'s views are
    the rows before and after the watermark."""
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame(
        {
            "user": rng.integers(0, 40, n).astype(str),
            "item": rng.integers(0, 25, n).astype(str),
            "value": rng.integers(1, 6, n),
            "timestamp": rng.permutation(10 * n)[:n],  # (user, item, time) unique: no row is a duplicate
        }
    )
    engine = make_engine(db_url)
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    log = frame.drop(columns="value") if implicit else frame  # implicit: one event per row
    log[:300].to_csv(first, index=False)
    log[300:].to_csv(second, index=False)
    for path in (first, second):
        ingest_file(engine, lambda s, p=path: ingest_log(s, LogSpec(path=p)))
    mark = snapshot.load(engine).watermark["max_interaction_id"]
    monkeypatch.setattr(snapshot, "READ_BLOCK", 7)
    monkeypatch.setattr(snapshot, "FOLD_BLOCK", 11)
    data, old, new = snapshot.load_since(engine, mark - 100)
    users = {u: k for k, u in enumerate(data.user_ids)}
    items = {i: k for k, i in enumerate(data.item_ids)}
    u = frame.user.map(users).to_numpy()
    i = frame.item.map(items).to_numpy()
    v = np.ones(n, np.float32) if implicit else frame.value.to_numpy(np.float32)
    t = frame.timestamp.to_numpy()
    shape = (data.n_users, data.n_items)
    for view, rows in ((data, slice(None)), (old, slice(0, 300)), (new, slice(300, None))):
        want = snapshot.matrices(u[rows], i[rows], v[rows], t[rows], shape, implicit)
        for got, ref in zip((view.values, view.times), want, strict=True):
            assert np.array_equal(got.indptr, ref.indptr) and np.array_equal(got.indices, ref.indices)
            assert np.array_equal(got.data, ref.data)
    assert data.values.nnz < n  # repeats of a (user, item) pair were folded
