"""A retailer's own export as CSV (documented in docs/import.md).

events (required), one row per event, with a header:
  identifiers  at least one of customer_id, email, phone, loyalty_card, device_id, pos_card_token;
               several on one row link them (the same identity rules as live traffic)
  item_id      required for item events (VIEW, CLICK, ADD_TO_CART, PURCHASE, RETURN, …)
  occurred_at  required: ISO-8601 (no zone = UTC) or seconds since the epoch
  type         default PURCHASE; channel default WEB (names as in the API, any case,
               with or without the EVENT_TYPE_ / CHANNEL_ prefix)
  quantity, price, store_id, order_id, recommendation_id   optional
  event_id     optional; default: a hash of the row, so re-importing the file adds nothing twice
  attr_<name>  optional: free-form event attributes
items (optional): item_id, title, category, brand, price, repeatable (1/0, true/false, yes/no),
  active, accessory_for ("|"-separated item ids); any other column is an item feature.
customers (optional): one identifier column (customer_id, …) and attribute columns (user features).
Files may be gzipped (.csv.gz).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.domain import CHANNELS, EVENT_TYPES, IDENTIFIER_KINDS, Event, Identifier, Item
from models.importers import ImportSummary, Loader, Progress, Target, Timer, no_progress, stable_id

IDENTIFIER_COLUMNS = {kind.lower(): kind for kind in IDENTIFIER_KINDS}
EVENT_COLUMNS = {
    "event_id",
    "item_id",
    "type",
    "channel",
    "occurred_at",
    "quantity",
    "price",
    "store_id",
    "order_id",
    "recommendation_id",
    *IDENTIFIER_COLUMNS,
}
ITEM_COLUMNS = {"item_id", "title", "category", "brand", "price", "repeatable", "active", "accessory_for"}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def read(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.columns = [c.strip().lower() for c in frame.columns]
    return frame


def parse_times(values: pd.Series) -> np.ndarray:
    """Seconds since the epoch; NaN where a value is neither a number nor an ISO-8601 time."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, copy=True)
    text = values[np.isnan(numeric)]
    if len(text):
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        numeric[np.isnan(numeric)] = seconds.to_numpy(dtype=float)
    return np.asarray(numeric, dtype=float)


def enum(value: str, names: tuple[str, ...], prefix: str, default: str) -> str:
    """Enum name from "purchase" or "EVENT_TYPE_PURCHASE" ("PURCHASE"); "" -> default.

    Anything else is kept as given, so validation rejects it."""
    v = value.strip().upper().removeprefix(prefix)
    return default if not v else v if v in names else value


def _number(value: str, default: float) -> float:
    try:
        return float(value) if value.strip() else default
    except ValueError:
        return float("nan")  # validation rejects it, naming the field


def events_of(
    frame: pd.DataFrame, default_channel: str = "WEB", default_type: str = "PURCHASE"
) -> tuple[list[Event], list[int], list[str]]:
    """Events, their file line numbers, and messages for rows that cannot become events at all."""
    id_cols = [c for c in IDENTIFIER_COLUMNS if c in frame.columns]
    if not id_cols:
        raise ValueError(f"events: no identifier column; expected one of {', '.join(IDENTIFIER_COLUMNS)}")
    if "occurred_at" not in frame.columns:
        raise ValueError("events: the occurred_at column is required")
    times = parse_times(frame["occurred_at"])
    attr_cols = [c for c in frame.columns if c.startswith("attr_")]
    get = {c: frame[c].tolist() if c in frame.columns else None for c in EVENT_COLUMNS}
    events: list[Event] = []
    lines: list[int] = []
    problems: list[str] = []
    for n in range(len(frame)):
        line = n + 2
        if np.isnan(times[n]):
            problems.append(f"row {line}: occurred_at: {frame['occurred_at'].iat[n]!r} is not a time")
            continue
        idents = tuple(
            Identifier(IDENTIFIER_COLUMNS[c], str(get[c][n]).strip())  # type: ignore[index]
            for c in id_cols
            if str(get[c][n]).strip()  # type: ignore[index]
        )

        def col(name: str, n: int = n) -> str:
            values = get[name]
            return str(values[n]) if values is not None else ""

        quantity, price = _number(col("quantity"), 1.0), _number(col("price"), 0.0)
        if np.isnan(quantity) or np.isnan(price) or quantity != int(quantity):
            name = "quantity" if np.isnan(quantity) or quantity != int(quantity) else "price"
            problems.append(f"row {line}: {name}: {col(name)!r} is not a number")
            continue
        ev = Event(
            event_id=col("event_id") or "",
            identifiers=idents,
            channel=enum(col("channel"), CHANNELS, "CHANNEL_", default_channel),
            type=enum(col("type"), EVENT_TYPES, "EVENT_TYPE_", default_type),
            item_id=col("item_id").strip(),
            quantity=int(quantity),
            price=price,
            store_id=col("store_id"),
            order_id=col("order_id"),
            recommendation_id=col("recommendation_id"),
            occurred_at=float(times[n]),
            attributes={c[5:]: str(frame[c].iat[n]) for c in attr_cols if str(frame[c].iat[n])},
        )
        if not ev.event_id:
            ev.event_id = stable_id(
                "csv",
                *(f"{i.kind}={i.value}" for i in idents),
                ev.channel,
                ev.type,
                ev.item_id,
                ev.occurred_at,
                ev.quantity,
                ev.price,
                ev.store_id,
                ev.order_id,
                n,
            )
        events.append(ev)
        lines.append(line)
    return events, lines, problems


def items_of(frame: pd.DataFrame) -> list[Item]:
    if "item_id" not in frame.columns:
        raise ValueError("items: the item_id column is required")
    extra = [c for c in frame.columns if c not in ITEM_COLUMNS]
    items = []
    for r in frame.to_dict("records"):
        items.append(
            Item(
                item_id=r["item_id"].strip(),
                title=r.get("title", ""),
                category=r.get("category", ""),
                brand=r.get("brand", ""),
                price=_number(r.get("price", ""), 0.0),
                repeatable=_flag(r.get("repeatable", "")),  # blank: learned from the history
                active=r.get("active", "1").strip().lower() in _TRUE | {""},
                accessory_for=[x.strip() for x in r.get("accessory_for", "").split("|") if x.strip()],
                attributes={c: r[c] for c in extra if r[c]},
            )
        )
    return items


def _flag(text: str) -> bool | None:
    """A yes/no column: True, False, or None when blank (an override only where the export says so)."""
    value = text.strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def customer_rows(frame: pd.DataFrame) -> list[tuple[Identifier, dict[str, str]]]:
    id_cols = [c for c in IDENTIFIER_COLUMNS if c in frame.columns]
    if not id_cols:
        raise ValueError(f"customers: no identifier column; expected one of {', '.join(IDENTIFIER_COLUMNS)}")
    key = id_cols[0]
    attrs = [c for c in frame.columns if c not in IDENTIFIER_COLUMNS]
    return [
        (Identifier(IDENTIFIER_COLUMNS[key], r[key].strip()), {c: r[c] for c in attrs if r[c]})
        for r in frame.to_dict("records")
        if r[key].strip()
    ]


def import_csv(
    events_path: Path,
    target: Target,
    *,
    items_path: Path | None = None,
    customers_path: Path | None = None,
    default_channel: str = "WEB",
    default_type: str = "PURCHASE",
    progress: Progress = no_progress,
) -> ImportSummary:
    summary = ImportSummary(source=f"csv:{events_path}")
    loader = Loader(target, summary, progress)
    with Timer(summary):
        if items_path is not None:
            loader.items(items_of(read(items_path)))
        if customers_path is not None:
            loader.attributes(customer_rows(read(customers_path)))
        frame = read(events_path)
        summary.rows_read = len(frame)
        events, lines, problems = events_of(frame, default_channel.upper(), default_type.upper())
        summary.unreadable += len(problems)
        summary.rejections.extend(problems[:5])
        loader.events(events, total=len(events), row_of=lambda i: lines[i])
    return summary
