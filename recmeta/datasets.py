"""Datasets: a synthetic log with planted structure, and the public MovieLens archives."""

from __future__ import annotations

import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recmeta.errors import DataError, check_whole

MOVIELENS_URLS = {
    "movielens-100k": "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "movielens-latest-small": "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
}
GENRES = ("action", "comedy", "drama", "horror", "romance", "scifi", "documentary", "family")
SEGMENTS = ("north", "south", "east", "west", "centre")


MAX_SYNTH = 10_000_000  # users, and items, of a synthetic log: more would fill memory and disk
MAX_GROUPS = 10_000  # planted taste groups


@dataclass(frozen=True)
class SynthConfig:
    users: int = 1000
    items: int = 400
    groups: int = 5
    min_interactions: int = 5
    mean_interactions: int = 40
    implicit: bool = False
    seed: int = 0
    drift: float = 0.0  # share of users and of items whose taste group / genres move over time

    def __post_init__(self) -> None:
        for name in ("users", "items", "groups", "min_interactions", "mean_interactions"):
            check_whole(name, getattr(self, name), 1)
        check_whole("seed", self.seed, 0)
        for name, most in (("users", MAX_SYNTH), ("items", MAX_SYNTH), ("groups", MAX_GROUPS)):
            if getattr(self, name) > most:
                raise DataError(
                    f"{name}: at most {most:,} in a synthetic log, not {getattr(self, name):,} "
                    "(--size ml-25m writes a MovieLens-25M-shaped one)"
                )
        if not 0.0 <= self.drift <= 1.0:
            raise DataError(f"drift is a share of users and items, from 0 to 1, not {self.drift!r}")


def synth(cfg: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(interactions, items, users) with planted taste groups.

    Each user belongs to one of `groups` taste groups; each group loves two genres and
    dislikes one. User features (age, segment) hint at the group; item popularity is
    long-tailed. A user picks items by popularity times group affinity, and rates them
    high exactly when the item's genres suit the group, so both what a user picks next
    and how they rate it are learnable from a few interactions.

    With `drift` > 0 the planted preferences move over time: that share of users switch to
    another taste group, and that share of items to other genres, each at its own moment
    drawn uniformly over the log's time span; later rows follow the new taste. A model that
    learns only from recent rows then forgets what earlier rows taught (PROTOCOL.md's
    continual protocol measures it).
    """
    rng = np.random.default_rng(cfg.seed)
    n_genres = len(GENRES)
    loves = np.stack([rng.choice(n_genres, 3, replace=False) for _ in range(cfg.groups)])
    affinity = np.zeros((cfg.groups, n_genres))
    for g, (a, b, c) in enumerate(loves):
        affinity[g, [a, b]] = 1.0
        affinity[g, c] = -1.0

    item_genres = np.zeros((cfg.items, n_genres))
    for i in range(cfg.items):
        item_genres[i, rng.choice(n_genres, rng.integers(1, 3), replace=False)] = 1.0
    popularity = 1.0 / np.arange(1, cfg.items + 1) ** 0.8
    popularity = popularity[rng.permutation(cfg.items)]
    years = rng.integers(1970, 2024, cfg.items)

    group = rng.integers(0, cfg.groups, cfg.users)
    traits = _user_traits(rng, group)
    counts = cfg.min_interactions + rng.geometric(
        1.0 / max(1, cfg.mean_interactions - cfg.min_interactions), cfg.users
    )
    counts = np.minimum(counts, cfg.items // 2)
    start = rng.integers(1_500_000_000, 1_530_000_000, cfg.users)

    match = item_genres @ affinity.T / np.maximum(item_genres.sum(1, keepdims=True), 1)  # (items, groups)
    drifting = _drift_plan(cfg, rng, start, n_genres) if cfg.drift > 0 else None
    rows = []
    for u in range(cfg.users):
        if drifting is not None:
            rows.append(
                _drifting_user(
                    cfg, rng, u, group[u], start[u], counts[u], popularity, item_genres, affinity, drifting
                )
            )
            continue
        g = group[u]
        weights = popularity * np.exp(2.5 * match[:, g])
        picked = rng.choice(cfg.items, counts[u], replace=False, p=weights / weights.sum())
        times = start[u] + np.cumsum(rng.exponential(3600, counts[u])).astype(np.int64)
        values = _values(rng, match[picked, g], cfg.implicit)
        rows.append(pd.DataFrame({"user": u + 1, "item": picked + 1, "value": values, "timestamp": times}))
    log = pd.concat(rows, ignore_index=True)
    log["value"] = log["value"].astype(int)
    return log, _items_frame(item_genres, years), _users_frame(*traits)


def _user_traits(rng: np.random.Generator, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Age and segment of each user, both hinting at the user's taste group."""
    age = np.clip(rng.normal(22 + 8 * group, 4), 14, 90).round().astype(int)
    hinted = rng.random(len(group)) < 0.8  # drawn before the others: the seeded logs stay as they were
    return age, np.where(hinted, group % len(SEGMENTS), rng.integers(0, len(SEGMENTS), len(group)))


def _values(rng: np.random.Generator, match: np.ndarray, implicit: bool) -> np.ndarray:
    """Counts (implicit) or 1-5 ratings, high exactly when the item suits the user's group."""
    if implicit:
        return 1 + rng.poisson(np.exp(match))
    return np.clip(np.round(2.8 + 1.8 * match + rng.normal(0, 0.6, len(match))), 1, 5)


def _items_frame(item_genres: np.ndarray, years: np.ndarray) -> pd.DataFrame:
    n = len(item_genres)
    genres = ["|".join(GENRES[j] for j in np.flatnonzero(row)) for row in item_genres]
    return pd.DataFrame(
        {
            "item": np.arange(1, n + 1),
            "title": [f"Item {i + 1}" for i in range(n)],
            "genres": genres,
            "year": years,
        }
    )


def _users_frame(age: np.ndarray, segment: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"user": np.arange(1, len(age) + 1), "age": age, "segment": [SEGMENTS[s] for s in segment]}
    )


def _drift_plan(cfg: SynthConfig, rng: np.random.Generator, start: np.ndarray, n_genres: int) -> dict:
    """Who and what drifts, when, and to what: a new group per drifting user, new genres per
    drifting item, and switch times uniform over the span of first interactions."""
    lo, hi = float(start.min()), float(start.max()) + 3600 * cfg.mean_interactions
    users = rng.random(cfg.users) < cfg.drift
    items = rng.random(cfg.items) < cfg.drift
    new_genres = np.zeros((cfg.items, n_genres))
    for i in range(cfg.items):
        new_genres[i, rng.choice(n_genres, rng.integers(1, 3), replace=False)] = 1.0
    return {
        "user_at": np.where(users, rng.uniform(lo, hi, cfg.users), np.inf),
        "new_group": rng.integers(1, max(cfg.groups, 2), cfg.users),  # an offset: never the same group
        "item_at": np.where(items, rng.uniform(lo, hi, cfg.items), np.inf),
        "new_genres": new_genres,
    }


def _drifting_user(cfg, rng, u, g0, t0, n, popularity, item_genres, affinity, plan) -> pd.DataFrame:
    """One user's rows under drift: the taste group and item genres in force at each row's
    time decide what is picked and how it is rated."""
    times = t0 + np.cumsum(rng.exponential(3600, n)).astype(np.int64)
    group = np.where(times >= plan["user_at"][u], (g0 + plan["new_group"][u]) % cfg.groups, g0)
    picked = np.empty(n, np.int64)
    values = np.empty(n)
    free = np.ones(cfg.items, bool)
    for r in range(n):
        genres = np.where((times[r] >= plan["item_at"])[:, None], plan["new_genres"], item_genres)
        match = genres @ affinity[group[r]] / np.maximum(genres.sum(1), 1)
        weights = popularity * np.exp(2.5 * match) * free
        picked[r] = rng.choice(cfg.items, p=weights / weights.sum())
        free[picked[r]] = False
        m = match[picked[r]]
        values[r] = (
            1 + rng.poisson(np.exp(m))
            if cfg.implicit
            else np.clip(np.round(2.8 + 1.8 * m + rng.normal(0, 0.6)), 1, 5)
        )
    return pd.DataFrame({"user": u + 1, "item": picked + 1, "value": values, "timestamp": times})


# MovieLens 25M's shape: 162,541 users, 62,423 items, 25,000,095 ratings (154 a user); drawn
# with replacement, repeats dropped, it comes to 21.7M rows
PRESETS = {"ml-25m": {"users": 162_541, "items": 62_423, "mean_interactions": 154, "min_interactions": 20}}
STREAM_ROWS = 2_000_000  # expected rows above which the log is generated and written in blocks


def write_synth(cfg: SynthConfig, out: Path, progress=None) -> dict[str, Path]:
    """Write interactions.csv, items.csv and users.csv into `out`. A log of more than
    STREAM_ROWS expected rows is made and written in blocks of users (`synth_blocks`), so
    memory stays flat; `progress(rows)` is called per block."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"interactions": out / "interactions.csv", "items": out / "items.csv", "users": out / "users.csv"}
    named = {"value": "count"} if cfg.implicit else {}  # a count column: ingest reads it implicit
    if cfg.users * cfg.mean_interactions <= STREAM_ROWS or cfg.drift > 0:
        log, items, users = synth(cfg)
        log.rename(columns=named).to_csv(paths["interactions"], index=False)
    else:
        blocks, items, users = synth_blocks(cfg)
        with open(paths["interactions"], "w") as fh:
            for k, block in enumerate(blocks):
                block.rename(columns=named).to_csv(fh, index=False, header=k == 0)
                if progress:
                    progress(len(block))
    items.to_csv(paths["items"], index=False)
    users.to_csv(paths["users"], index=False)
    return paths


def synth_blocks(cfg: SynthConfig, block: int = 8192):
    """The planted-group log of `synth` for large sizes: (an iterator of interaction frames,
    items, users). Per block of users, each taste group's rows are drawn at once, with
    replacement (a repeated item is dropped, so a user gets a few rows fewer than drawn);
    ratings follow `synth`'s rule. Not the same rows as `synth` for the same seed."""
    rng = np.random.default_rng(cfg.seed)
    n_genres = len(GENRES)
    affinity = np.zeros((cfg.groups, n_genres))
    for g in range(cfg.groups):
        a, b, c = rng.choice(n_genres, 3, replace=False)
        affinity[g, [a, b]], affinity[g, c] = 1.0, -1.0
    item_genres = np.zeros((cfg.items, n_genres))
    picks = rng.integers(0, n_genres, (cfg.items, 2))
    two = rng.random(cfg.items) < 0.5
    item_genres[np.arange(cfg.items), picks[:, 0]] = 1.0
    item_genres[np.flatnonzero(two), picks[two, 1]] = 1.0
    popularity = (1.0 / np.arange(1, cfg.items + 1) ** 0.8)[rng.permutation(cfg.items)]
    match = item_genres @ affinity.T / np.maximum(item_genres.sum(1, keepdims=True), 1)
    cdfs = []
    for g in range(cfg.groups):
        w = np.cumsum(popularity * np.exp(2.5 * match[:, g]))
        cdfs.append(w / w[-1])
    group = rng.integers(0, cfg.groups, cfg.users)
    counts = cfg.min_interactions + rng.geometric(
        1.0 / max(1, cfg.mean_interactions - cfg.min_interactions), cfg.users
    )
    counts = np.minimum(counts, cfg.items // 2)
    start = rng.integers(1_500_000_000, 1_530_000_000, cfg.users)

    def blocks():
        for lo in range(0, cfg.users, block):
            users = np.arange(lo, min(lo + block, cfg.users))
            u = np.repeat(users, counts[users])
            g = group[u]
            i = np.empty(len(u), np.int64)
            for k in range(cfg.groups):
                rows = np.flatnonzero(g == k)
                i[rows] = np.minimum(
                    np.searchsorted(cdfs[k], rng.random(len(rows)), side="right"), cfg.items - 1
                )
            _, first = np.unique(u * cfg.items + i, return_index=True)  # one row per (user, item)
            first.sort()
            u, i, g = u[first], i[first], g[first]
            gaps = rng.exponential(3600, len(u))
            ends = np.cumsum(gaps)
            starts_at = np.r_[0, np.flatnonzero(np.diff(u)) + 1]  # each user's first row
            offsets = np.repeat(ends[starts_at] - gaps[starts_at], np.diff(np.r_[starts_at, len(u)]))
            times = start[u] + (ends - offsets).astype(np.int64)
            values = _values(rng, match[i, g], cfg.implicit).astype(int)
            yield pd.DataFrame({"user": u + 1, "item": i + 1, "value": values, "timestamp": times})

    years = rng.integers(1970, 2024, cfg.items)
    return blocks(), _items_frame(item_genres, years), _users_frame(*_user_traits(rng, group))


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a MovieLens zip into `dest`; returns the folder that holds the data files."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = (dest / member).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise DataError(f"{archive}: unsafe path {member!r} in the archive")
            zf.extractall(dest)
            tops = {Path(m).parts[0] for m in zf.namelist() if Path(m).parts}
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a zip archive ({exc})") from exc
    if len(tops) == 1 and (dest / next(iter(tops))).is_dir():
        return dest / next(iter(tops))
    return dest


def download(name: str, dest: Path, timeout: float = 30.0) -> Path:
    """Fetch and unpack a public MovieLens archive; a clear one-line error when offline."""
    if name not in MOVIELENS_URLS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(MOVIELENS_URLS)}")
    url = MOVIELENS_URLS[name]
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / Path(url).name
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as fh:
            while block := resp.read(1 << 20):
                fh.write(block)
    except (urllib.error.URLError, OSError) as exc:
        archive.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download {url} ({reason}); with no network, fetch the zip elsewhere and "
            f"run `recmeta data unpack ZIP`"
        ) from exc
    return unpack(archive, dest)
