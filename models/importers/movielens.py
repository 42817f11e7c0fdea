"""MovieLens 100k (`u.data`, `u.item`, `u.user`).

Every rating is a PURCHASE event on WEB (a film watched is consumed, so the service never
recommends it again to that user — as LightFM's published "excluding rated items" figures assume);
the rating goes into the event's attributes. Event ids are `ml-<user>-<movie>`, customer ids the
MovieLens user ids. Movies become items with their genres and decade as features; users get
attributes age band, gender and occupation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.domain import Event, Identifier, Item
from models.importers import ImportSummary, Loader, Progress, Target, Timer, no_progress
from models.importers.hm import age_band

GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def read_ratings(folder: Path, name: str = "u.data", max_rows: int | None = None) -> pd.DataFrame:
    return pd.read_csv(
        folder / name,
        sep="\t",
        names=["user", "item", "rating", "ts"],
        nrows=max_rows,
        dtype={"user": str, "item": str, "rating": int, "ts": int},
    )


def read_movies(folder: Path) -> pd.DataFrame:
    cols = ["item", "title", "release", "video_release", "url", *GENRES]
    return pd.read_csv(folder / "u.item", sep="|", names=cols, encoding="latin-1", dtype={"item": str})


def items_of(movies: pd.DataFrame) -> list[Item]:
    items = []
    for d in movies.to_dict("records"):
        genres = [g for g in GENRES if int(d[g]) == 1]
        attrs = {f"genre_{g}": "1" for g in genres}
        year = str(d["release"])[-4:] if isinstance(d["release"], str) else ""
        if year.isdigit():
            attrs["decade"] = f"{year[:3]}0s"
        items.append(
            Item(
                item_id=d["item"],
                title=str(d["title"]),
                category=genres[0] if genres else "",
                attributes=attrs,
            )
        )
    return items


def user_rows(folder: Path) -> list[tuple[Identifier, dict[str, str]]]:
    path = folder / "u.user"
    if not path.exists():
        return []
    users = pd.read_csv(path, sep="|", names=["user", "age", "gender", "occupation", "zip"], dtype=str)
    return [
        (Identifier("CUSTOMER_ID", u), {"age": age_band(a), "gender": g, "occupation": o})
        for u, a, g, o in zip(users["user"], users["age"], users["gender"], users["occupation"], strict=True)
    ]


def events_of(ratings: pd.DataFrame) -> list[Event]:
    return [
        Event(
            event_id=f"ml-{u}-{i}",
            identifiers=(Identifier("CUSTOMER_ID", u),),
            channel="WEB",
            type="PURCHASE",
            item_id=i,
            occurred_at=float(ts),
            attributes={"rating": str(r)},
        )
        for u, i, r, ts in zip(
            ratings["user"], ratings["item"], ratings["rating"], ratings["ts"], strict=True
        )
    ]


def import_movielens(
    folder: Path,
    target: Target,
    *,
    ratings_file: str = "u.data",
    max_rows: int | None = None,
    progress: Progress = no_progress,
) -> ImportSummary:
    """Imports movies, users and ratings (the first `max_rows` ratings only, if given)."""
    summary = ImportSummary(source=f"movielens:{folder / ratings_file}")
    loader = Loader(target, summary, progress)
    with Timer(summary):
        ratings = read_ratings(folder, ratings_file, max_rows)
        summary.rows_read = len(ratings)
        movies = read_movies(folder)
        if max_rows is not None:
            movies = movies[movies["item"].isin(set(ratings["item"]))]
        loader.items(items_of(movies))
        users = user_rows(folder)
        if max_rows is not None:
            keep = set(ratings["user"])
            users = [u for u in users if u[0].value in keep]
        loader.attributes(users)
        loader.events(events_of(ratings), total=len(ratings), row_of=lambda i: i + 1)
    return summary
