"""The H&M Kaggle data (`transactions_train*.csv`, `customers*.csv`, `articles.csv|.parquet`).

- Transactions -> PURCHASE events: `sales_channel_id` 1 -> POS (store), 2 -> WEB (online). A row
  repeated on the same day is a quantity above 1: one event with that quantity. The event id is a
  hash of the row, so importing the file twice stores nothing twice. The date becomes 12:00 UTC;
  one customer's purchases of a day in one channel share an order id (a basket).
- Articles -> items: title = prod_name, category = product_type_name, attributes = product group,
  department, section, garment group, index, colour, appearance, product code (article_id // 1000)
  and a price quintile; price = the median price paid. Fashion basics are re-bought, so articles are
  `repeatable` (the repurchase blend and the model decide; nothing is excluded for having been bought).
  By default only the articles that occur in the transactions are imported (`all_articles` for all).
- Customers -> customer attributes: age band, club_member_status, fashion_news_frequency, FN, Active.
"""

from __future__ import annotations

import calendar
from pathlib import Path

import numpy as np
import pandas as pd

from models.domain import Event, Identifier, Item
from models.importers import ImportSummary, Loader, Progress, Target, Timer, no_progress, stable_id

CHANNELS = {1: "POS", 2: "WEB"}
ARTICLE_ATTRIBUTES = {
    "product_group_name": "group",
    "department_name": "department",
    "section_name": "section",
    "garment_group_name": "garment",
    "index_name": "index",
    "colour_group_name": "colour",
    "perceived_colour_master_name": "colour_master",
    "graphical_appearance_name": "appearance",
}


def find(folder: Path, stem: str, suffixes: tuple[str, ...] = (".csv.gz", ".csv")) -> Path:
    """The first file in `folder` whose name starts with `stem` and ends with one of `suffixes`."""
    for suffix in suffixes:
        found = sorted(folder.glob(f"{stem}*{suffix}"))
        if found:
            return found[0]
    raise FileNotFoundError(
        f"{folder}: no {stem}*{'|'.join(suffixes)} file (the H&M Kaggle layout is expected)"
    )


def read_transactions(folder: Path, max_rows: int | None = None) -> pd.DataFrame:
    return pd.read_csv(
        find(folder, "transactions"),
        nrows=max_rows,
        dtype={"customer_id": str, "article_id": str, "t_dat": str, "price": float, "sales_channel_id": int},
    )


def read_articles(folder: Path) -> pd.DataFrame:
    path = find(folder, "articles", (".parquet", ".csv.gz", ".csv"))
    frame = (
        pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"article_id": str})
    )
    frame["article_id"] = frame["article_id"].astype(str).str.zfill(10)
    return frame


def events_of(tx: pd.DataFrame) -> tuple[list[Event], list[int]]:
    """One PURCHASE event per (day, customer, article, channel, price), with its first source row."""
    unknown = sorted(set(tx["sales_channel_id"].unique()) - set(CHANNELS))
    if unknown:
        raise ValueError(f"sales_channel_id: values {unknown} are not 1 (store) or 2 (online)")
    tx = tx.assign(row=np.arange(len(tx)) + 2)  # file line numbers (1 is the header)
    keys = ["t_dat", "customer_id", "article_id", "sales_channel_id", "price"]
    groups = tx.groupby(keys, sort=False).agg(quantity=("row", "size"), row=("row", "min")).reset_index()
    events: list[Event] = []
    rows: list[int] = []
    noon: dict[str, float] = {}
    for day, customer, article, chan, price, qty, row in groups.itertuples(index=False):
        at = noon.get(day)
        if at is None:
            at = noon[day] = float(calendar.timegm(pd.Timestamp(day).timetuple())) + 12 * 3600
        channel = CHANNELS[int(chan)]
        events.append(
            Event(
                event_id=stable_id("hm", day, customer, article, chan, price),
                identifiers=(Identifier("CUSTOMER_ID", customer),),
                channel=channel,
                type="PURCHASE",
                item_id=article,
                quantity=int(qty),
                price=float(price),
                order_id=f"hm-{day}-{customer[:16]}-{channel}",
                occurred_at=at,
            )
        )
        rows.append(int(row))
    return events, rows


def items_of(articles: pd.DataFrame, tx: pd.DataFrame) -> list[Item]:
    median = tx.groupby("article_id")["price"].median()
    quintile = (
        pd.qcut(median.rank(method="first"), 5, labels=[f"q{i}" for i in range(1, 6)])
        if len(median) >= 5
        else pd.Series("q3", index=median.index)
    )
    items = []
    for row in articles.itertuples(index=False):
        r = row._asdict()
        aid = r["article_id"]
        attrs = {
            short: str(r[col]) for col, short in ARTICLE_ATTRIBUTES.items() if col in r and pd.notna(r[col])
        }
        attrs["product_code"] = aid[:7]
        if aid in quintile.index:
            attrs["price_band"] = str(quintile[aid])
        items.append(
            Item(
                item_id=aid,
                title=str(r.get("prod_name") or ""),
                category=str(r.get("product_type_name") or ""),
                price=float(median.get(aid, 0.0)),
                repeatable=True,
                attributes=attrs,
            )
        )
    return items


def customer_rows(customers: pd.DataFrame) -> list[tuple[Identifier, dict[str, str]]]:
    out = []
    for r in customers.itertuples(index=False):
        d = r._asdict()
        attrs = {
            "club": _s(d.get("club_member_status")),
            "news": _s(d.get("fashion_news_frequency")),
            "fn": _s(d.get("FN")),
            "active": _s(d.get("Active")),
            "age": age_band(d.get("age")),
        }
        out.append((Identifier("CUSTOMER_ID", str(d["customer_id"])), {k: v for k, v in attrs.items() if v}))
    return out


def age_band(age: object) -> str:
    """Ten-year bands ("20-29"), "" when unknown."""
    try:
        value = float(age)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(value):
        return ""
    low = int(value // 10 * 10)
    return f"{low}-{low + 9}"


def _s(value: object) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    text = str(value).strip()
    text = text.removesuffix(".0")
    return "" if text.lower() in ("nan", "none") else text.lower()


def import_hm(
    folder: Path,
    target: Target,
    *,
    all_articles: bool = False,
    max_rows: int | None = None,
    progress: Progress = no_progress,
) -> ImportSummary:
    """Imports articles, customers and transactions (the first `max_rows` only, if given)."""
    summary = ImportSummary(source=f"hm:{folder}")
    loader = Loader(target, summary, progress)
    with Timer(summary):
        tx = read_transactions(folder, max_rows)
        summary.rows_read = len(tx)
        articles = read_articles(folder)
        if not all_articles:
            articles = articles[articles["article_id"].isin(set(tx["article_id"]))]
        loader.items(items_of(articles, tx))
        try:
            customers = pd.read_csv(find(folder, "customers"), dtype={"customer_id": str})
        except FileNotFoundError:
            customers = pd.DataFrame({"customer_id": []})
        customers = customers[customers["customer_id"].isin(set(tx["customer_id"]))]
        loader.attributes(customer_rows(customers))
        events, rows = events_of(tx)
        loader.events(events, total=len(events), row_of=lambda i: rows[i])
    return summary
