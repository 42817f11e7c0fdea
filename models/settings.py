"""Settings: one table of every SEENEXT_* variable, each with its default and a help line.

`Settings` is what the server and the `seenext` commands read; `ClientSettings` what the Python
clients in clients/ read. Both come from the same table and pass the same check: a `SEENEXT_` name
that the table does not declare stops the start, naming the closest valid one (a misspelt variable
would otherwise be ignored without a word). Flags override variables, which override the defaults;
`Settings.from_env()` is called once at start-up and the result passed down explicitly.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "SEENEXT_"


class SettingsError(ValueError):
    """A SEENEXT_ variable the table does not declare, or one whose value does not parse."""


def _opt(default: Any, help: str, choices: Sequence[str] = ()) -> Any:
    return field(default=default, metadata={"help": help, "choices": tuple(choices)})


def _internal(default: Any, help: str) -> Any:
    """A variable seenext sets for itself (never shown by `seenext settings`)."""
    return field(default=default, metadata={"help": help, "choices": (), "internal": True})


@dataclass(frozen=True)
class Settings:
    host: str = _opt("127.0.0.1", "address the gRPC server binds")
    port: int = _opt(50051, "port the gRPC server binds; 0 picks a free one")
    data_dir: Path = _opt(Path("var"), "folder of the SQLite file and the model artifacts")
    database_url: str = _opt(
        "",
        "PostgreSQL store shared by a fleet (postgresql://user:password@host:port/database);"
        " empty = the SQLite file in data_dir",
    )
    database_pool_size: int = _opt(
        16, "PostgreSQL: connections each serving process keeps at most (about SEENEXT_WORKERS)"
    )
    demo: bool = _opt(False, "seed the demo retailer into an empty store and train on start")
    holdout: float = _opt(0.0, "share of customers (stable hash) kept on the non-personalised baseline")
    workers: int = _opt(16, "threads serving RPCs per process")
    processes: int = _opt(1, "serving processes sharing the port (SO_REUSEPORT)")
    sync_full: bool = _opt(True, "fsync every commit (survives power loss, not only kill -9)")
    # demo retailer sizes
    demo_customers: int = _opt(2000, "customers the demo generator makes")
    demo_items: int = _opt(600, "catalogue items the demo generator makes")
    demo_days: int = _opt(400, "days of history the demo generator makes")
    demo_seed: int = _opt(42, "seed of the demo generator")
    # training
    components: int = _opt(48, "LightFM embedding size")
    loss: str = _opt("warp", "LightFM loss: warp, bpr, warp-kos or logistic")
    epochs: int = _opt(30, "LightFM training epochs")
    learning_rate: float = _opt(0.05, "LightFM learning rate")
    item_alpha: float = _opt(1e-6, "L2 penalty on item features")
    user_alpha: float = _opt(1e-6, "L2 penalty on user features")
    max_sampled: int = _opt(10, "WARP negatives sampled per positive")
    train_threads: int = _opt(2, "threads LightFM trains with")
    recency_half_life_days: float = _opt(90.0, "an interaction's weight halves every this many days")
    eval_holdout_days: int = _opt(
        14, "days held out to report metrics (vs popularity) when training; 0 = skip"
    )
    models_kept: int = _opt(5, "model versions kept on disk for rollback")
    reload_seconds: float = _opt(2.0, "how often a server checks for a model trained elsewhere")
    shared_models_dir: str = _opt(
        "",
        "folder of the model artifacts every replica reads (a mount shared by a fleet); "
        "empty = <data_dir>/models",
    )
    seed: int = _opt(42, "random seed of training")
    event_weights: str = _opt(
        "PURCHASE=5,ADD_TO_CART=3,WISHLIST=2,CLICK=2,VIEW=1",
        "interest of each event type in training (TYPE=weight,…)",
    )
    item_identity_weight: float = _opt(
        0.85, "share of an item's feature row on its own id (the rest on its features); 0 = equal shares"
    )
    user_channel_weight: float = _opt(0.0, "share of a customer's feature row on their mix of channels")
    user_attribute_weight: float = _opt(
        0.0, "share of a customer's feature row on imported attributes (age, segment…); 0 = unused"
    )
    retrain_every_hours: float = _opt(
        0.0, "retrain in the background this often when new events arrived; 0 = on demand"
    )
    # serving
    max_k: int = _opt(100, "largest k a request may ask for")
    future_tolerance_seconds: float = _opt(
        300.0, "an event may be dated at most this far past the server's clock (tills' clock skew)"
    )
    popular_window_days: int = _opt(30, "window of the popularity fallback")
    catalog_refresh_seconds: float = _opt(
        1.0, "how often a serving process checks for catalogue changes made by another process"
    )
    foldin_prior: float = _opt(
        3.0,
        "fold-in: fresh event weight (a view is 1) that moves a customer's vector halfway to their new items",
    )
    foldin_half_life_hours: float = _opt(24.0, "fold-in: a fresh event's pull halves every this many hours")
    repurchase_weight: float = _opt(
        64.0, "boost of a repeatable item the customer bought, in score spreads (>= 10: first); 0 = off"
    )
    repurchase_half_life_days: float = _opt(
        365.0, "the repurchase boost halves every this many days since the purchase"
    )
    state_cache_size: int = _opt(
        20_000, "customer states a serving process keeps in memory (LRU); 0 = read the store on every request"
    )
    score_cache_mb: int = _opt(
        32,
        "MB of customers' scores over every item a serving process keeps for their next request with"
        " the same vector (a page's other placements, the till's next scan); 0 = computed every time",
    )
    feed_poll_seconds: float = _opt(
        0.1, "how often a serving process reads the change feed (what other replicas wrote)"
    )
    feed_max_lag_seconds: float = _opt(
        0.5, "customer states are served from memory only while the change feed was read this recently"
    )
    feed_retention_seconds: float = _opt(600.0, "change-feed rows are kept this long, then pruned")
    attribution_days: int = _opt(
        7, "a purchase this many days after a recommendation of the item is attributed to it"
    )
    # identity, privacy and callers (docs/identity.md)
    pii_key_file: str = _opt(
        "", "file of the secret that keys the e-mail/phone hashes; empty = <data_dir>/pii.key"
    )
    phone_country_code: str = _opt(
        "", "country calling code for national phone numbers (e.g. 44); empty = none"
    )
    device_link_limit: int = _opt(
        3, "person-level links one device or card token may make before it counts as shared"
    )
    consent_default_marketing: bool = _opt(False, "marketing allowed when the customer recorded no decision")
    consent_default_profiling: bool = _opt(True, "personalised ranking allowed when no decision was recorded")
    auth: bool = _opt(True, "require API keys; 0 = open development mode, logged loudly at start")
    keys_file: str = _opt(
        "", "JSON file of API keys and scopes; empty = <data_dir>/keys.json, made on first start"
    )
    tls_cert_file: str = _opt("", "PEM certificate chain: serve TLS instead of plaintext (with tls_key_file)")
    tls_key_file: str = _opt("", "PEM private key of tls_cert_file")
    # channel rules, complements, reminders (docs/channels.md)
    email_repeat_days: float = _opt(
        7.0, "an item mailed to a customer is not offered by e-mail again for this long"
    )
    email_retry_minutes: float = _opt(
        60.0, "a served e-mail offer counts as mailed once this old (retried runs repeat)"
    )
    owned_complement_days: float = _opt(
        180.0, "accessories are promoted for purchases this many days old or newer"
    )
    looked_at_days: float = _opt(
        30.0, "items looked at, carted or wish-listed this many days ago or less (and not bought) come back"
    )
    looked_at_half_life_days: float = _opt(
        7.0, "a looked-at item's pull halves every this many days (cart 3, wish 2, look 1); 0 = no decay"
    )
    exploration_share: float = _opt(
        0.1, "share of a list's places new items take, the last ones (rounded up, at most 1 in 4); 0 = off"
    )
    rules_refresh_seconds: float = _opt(
        0.4, "how often a serving process checks for merchandising rules changed by another process"
    )
    diversity_category_share: float = _opt(
        0.0, "at most this share of a list (never fewer than 2 items) in one category; 0 = no cap"
    )
    diversity_attribute: str = _opt(
        "", "cap this item attribute (e.g. colour) instead of the category; empty = the category"
    )
    diversity_near_duplicates: int = _opt(
        2, "at most this many accessories of the same item in one category in a list; 0 = no cap"
    )
    new_item_days: float = _opt(
        30.0, "an item is new for this many days after it was first upserted or first met, whichever is first"
    )
    new_item_customers: int = _opt(
        1, "an item stays new until the serving model learned it from this many customers (1: from anyone)"
    )
    rebuy_min_buyers: int = _opt(
        10, "buyers an item (else its category) needs before what customers buy again is learned from it"
    )
    rebuy_min_share: float = _opt(
        0.02, "an unflagged item comes back after a purchase when this share of purchases of it is repeated"
    )
    rebuy_due_quantile: float = _opt(
        0.1, "an item that is bought again comes back once this quantile of its repeat gaps has passed"
    )
    substitute_rest_share: float = _opt(
        0.1, "after a one-off, its category rests until this share of its buyers bought in it again"
    )
    durable_min_rest_days: float = _opt(
        14.0, "a category whose buyers buy in it again sooner than this is no durable: nothing rests after it"
    )
    rebuy_horizon_days: float = _opt(
        365.0, "the longest repeat gap that counts, and the longest rest of a one-off's substitutes"
    )
    complement_days: float = _opt(3.0, "purchases of one customer within this many days count as one basket")
    complement_min_support: int = _opt(
        3, "baskets that must hold both items before a learned complement counts"
    )
    complement_min_lift: float = _opt(1.5, "how much likelier than chance a learned complement pair must be")
    reminder_slack_days: float = _opt(
        7.0, "seasonal reminders: last year's purchases this close to the window count"
    )
    # the marketing dashboard, `seenext dashboard` (docs/dashboard.md)
    dashboard_host: str = _opt("127.0.0.1", "address the dashboard's web page binds")
    dashboard_port: int = _opt(8051, "port of the dashboard's web page; 0 picks a free one")
    dashboard_target: str = _opt(
        "",
        "gRPC server the dashboard reads its figures from; empty = this config's SEENEXT_HOST:SEENEXT_PORT",
    )
    log_level: str = _opt(
        "INFO", "logging level of the server and the commands", ("DEBUG", "INFO", "WARNING", "ERROR")
    )
    log_format: str = _opt(
        "text", "log lines as text, or as one JSON object per line (for a log collector)", ("text", "json")
    )
    # operations (docs/deploy.md)
    metrics_port: int = _opt(
        0,
        "port of the Prometheus endpoint (/metrics) on SEENEXT_HOST; 0 = off. With --processes N, "
        "process i serves port+i",
    )
    # set by `serve --processes N` on the processes it starts: the parent prints the one banner
    child: bool = _internal(False, "a serving process started by `seenext serve --processes N`")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "seenext.db"

    @property
    def models_dir(self) -> Path:
        return Path(self.shared_models_dir) if self.shared_models_dir else self.data_dir / "models"

    @property
    def pii_key_path(self) -> Path:
        return Path(self.pii_key_file) if self.pii_key_file else self.data_dir / "pii.key"

    @property
    def keys_path(self) -> Path:
        return Path(self.keys_file) if self.keys_file else self.data_dir / "keys.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then SEENEXT_* variables, then explicit overrides (flags) that are not None.

        Raises SettingsError for an undeclared SEENEXT_ name or a value that does not parse."""
        env = os.environ if env is None else env
        check_names(env)
        values = _read(cls, env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return dataclasses.replace(cls(), **values)

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(variable, default, help) of every user setting, the clients' too: `seenext settings`."""
        return [
            *_rows(cls),
            *((name, default, f"clients: {h}") for name, default, h in _rows(ClientSettings)),
        ]


@dataclass(frozen=True)
class ClientSettings:
    """What the Python clients in clients/ read: the same table and the same typo check."""

    api_key: str = _opt(
        "", "API key sent with every call (the server's start-up banner prints one per caller)"
    )
    tls_ca_file: str = _opt("", "PEM certificate to trust: connect with TLS instead of plaintext")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        """The SEENEXT_* variables of the clients; SettingsError for an undeclared SEENEXT_ name."""
        env = os.environ if env is None else env
        check_names(env)
        return cls(**_read(cls, env))


def variable(name: str) -> str:
    """The environment variable of a field: `data_dir` -> `SEENEXT_DATA_DIR`."""
    return f"{PREFIX}{name.upper()}"


def declared() -> dict[str, str]:
    """Every variable of the table (server, clients and internal) with its help line."""
    return {
        variable(f.name): str(f.metadata["help"])
        for table in (Settings, ClientSettings)
        for f in dataclasses.fields(table)
    }


def check_names(env: Mapping[str, str]) -> None:
    """Stops on any SEENEXT_ name (in any case) the table does not declare, naming the closest valid one."""
    known = declared()
    unknown = sorted(name for name in env if name.upper().startswith(PREFIX) and name not in known)
    if not unknown:
        return
    # compared without the prefix every name shares, which would make any two names look alike
    public = [name.removeprefix(PREFIX) for name, _, _ in Settings.describe()]
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper().removeprefix(PREFIX), public, n=1, cutoff=0.6)
        problems.append(f"{name} (did you mean {PREFIX}{close[0]}?)" if close else name)
    raise SettingsError(
        f"unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(problems)};"
        " `seenext settings` lists every variable"
    )


def _rows(table: type) -> list[tuple[str, Any, str]]:
    return [
        (variable(f.name), f.default, str(f.metadata["help"]))
        for f in dataclasses.fields(table)
        if not f.metadata.get("internal")
    ]


def _read(table: type, env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(table):
        raw = env.get(variable(f.name))
        if raw is not None and raw != "":
            values[f.name] = _parse(f.name, raw, f.default, f.metadata["choices"])
    return values


def _parse(name: str, raw: str, default: Any, choices: Sequence[str] = ()) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
    except ValueError:
        raise SettingsError(f"{variable(name)}={raw!r} is not a valid {type(default).__name__}") from None
    if choices:
        chosen = [c for c in choices if c.lower() == raw.lower()]
        if not chosen:
            raise SettingsError(f"{variable(name)}={raw!r} is not one of {', '.join(choices)}")
        return chosen[0]
    return raw
