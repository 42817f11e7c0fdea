"""Story 6: what recommendations earn per channel and arm, and where cross-channel journeys break.

ChannelReport: per recommendation channel and arm ("personalised", or "holdout" — the customers
kept on the non-personalised baseline by a stable hash, SEENEXT_HOLDOUT — or an experiment's variant,
"variant:<experiment>/<variant>", issue 12), the recommendations
served in the period and what was attributed to them (models/insights/attribution.py). The uplift of the
personalised arm over the hold-out is on the conversion rate (attributed purchases per
recommendation), with a 95 % interval from a bootstrap over customers — the unit that is randomised.

FunnelReport: for each journey in FUNNELS, how many customers reached each step in order within
the period (a step counts only after the previous one), the conversion from the step before, and
the channel each step was reached in (for the last step: where customers finished).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from models.domain import DAY
from models.errors import InvalidArgument
from models.insights.attribution import attribute
from models.merchandising.experiments import CONTROL, split_arm
from models.storage import Storage
from models.validation import MIN_TIME, check_time

ARMS = ("personalised", "holdout")


@dataclass
class ArmStats:
    channel: str
    arm: str
    customers: int = 0
    recommendations: int = 0
    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    conversions: int = 0
    revenue: float = 0.0
    conversions_in_channel: Counter[str] = field(default_factory=Counter)

    @property
    def click_through(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.recommendations if self.recommendations else 0.0


@dataclass
class Uplift:
    channel: str
    uplift: float
    ci_low: float
    ci_high: float
    personalised_rate: float
    holdout_rate: float


@dataclass
class VariantUplift:
    """An experiment's variant against the experiment's control, in one channel (issue 12 point 4)."""

    channel: str
    experiment_id: str
    variant: str
    uplift: float
    ci_low: float
    ci_high: float
    variant_rate: float
    control_rate: float


@dataclass
class ChannelReport:
    period_start: float
    period_end: float
    attribution_days: int
    rows: list[ArmStats]
    uplift: list[Uplift]
    warnings: list[str] = field(default_factory=list)  # what makes the figures less than comparable
    variant_uplift: list[VariantUplift] = field(default_factory=list)


def period(start: float | None, end: float | None, now: float | None = None) -> tuple[float, float]:
    """Defaults: end = now, start = 30 days before end (not before the first instant a Timestamp holds);
    checked. A bound outside what a Timestamp holds could not be sent back in the reply: one at 2^62 s
    was INTERNAL."""
    if start is not None:
        check_time(start, "period_start")
    if end is not None:
        check_time(end, "period_end")
    end = (time.time() if now is None else now) if end is None else end
    start = max(end - 30 * DAY, MIN_TIME) if start is None else start
    if end <= start:
        raise InvalidArgument("period_end", f"must be after period_start ({start}), got {end}")
    return start, end


def channel_report(
    storage: Storage,
    start: float | None = None,
    end: float | None = None,
    attribution_days: int = 0,
    resamples: int = 1000,
    seed: int = 42,
    default_days: int = 7,
) -> ChannelReport:
    if attribution_days < 0 or attribution_days > 365:
        raise InvalidArgument(
            "attribution_days", f"must be between 0 and 365 (0 means {default_days}), got {attribution_days}"
        )
    days = attribution_days or default_days
    start, end = period(start, end)
    served, attributed = attribute(storage, start, end, days)
    stats: dict[tuple[str, str], ArmStats] = {}
    # per (channel, arm, customer): [recommendations, conversions] for the bootstrap
    units: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(dict)
    for rec in served.values():
        s = stats.setdefault((rec.channel, rec.arm), ArmStats(rec.channel, rec.arm))
        s.recommendations += 1
        units[(rec.channel, rec.arm)].setdefault(rec.customer_id, [0, 0])[0] += 1
    for a in attributed:
        rec = served[a.recommendation_id]
        s = stats[(rec.channel, rec.arm)]
        if a.event_type == "IMPRESSION":
            s.impressions += 1
        elif a.event_type == "CLICK":
            s.clicks += 1
        elif a.event_type == "ADD_TO_CART":
            s.add_to_carts += 1
        else:
            s.conversions += 1
            s.revenue += a.revenue
            s.conversions_in_channel[a.event_channel] += 1
            units[(rec.channel, rec.arm)][rec.customer_id][1] += 1
    for key, s in stats.items():
        s.customers = len(units[key])
    rows = sorted(stats.values(), key=lambda s: (s.channel, ARMS.index(s.arm) if s.arm in ARMS else 9, s.arm))
    uplifts = []
    for channel in sorted({s.channel for s in rows}):
        # an experiment's customers (every variant and its control) are personalised too
        p = _pooled(units, [arm for c, arm in units if c == channel and arm != "holdout"], channel)
        h = units.get((channel, "holdout"))
        if p and h:
            u = uplift(np.array(list(p.values())), np.array(list(h.values())), resamples, seed)
            if u is not None:
                uplifts.append(Uplift(channel, *u))
    return ChannelReport(
        start, end, days, rows, uplifts, _holdout_warnings(units), _variant_uplifts(units, resamples, seed)
    )


def _pooled(
    units: dict[tuple[str, str], dict[str, list[int]]], arms: list[str], channel: str
) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for arm in arms:
        for customer, (recs, conversions) in units.get((channel, arm), {}).items():
            both = out.setdefault(customer, [0, 0])
            both[0] += recs
            both[1] += conversions
    return out


def _variant_uplifts(
    units: dict[tuple[str, str], dict[str, list[int]]], resamples: int, seed: int
) -> list[VariantUplift]:
    """Each experiment variant's conversion rate against its control's, per channel, with the same
    bootstrap over customers as the hold-out's uplift."""
    out = []
    for (channel, arm), found in sorted(units.items()):
        parts = split_arm(arm)
        if parts is None or parts[1] == CONTROL:
            continue
        experiment, variant = parts
        control = units.get((channel, f"variant:{experiment}/{CONTROL}"))
        if not control or not found:
            continue
        u = uplift(np.array(list(found.values())), np.array(list(control.values())), resamples, seed)
        if u is not None:
            out.append(VariantUplift(channel, experiment, variant, *u))
    return out


def _holdout_warnings(units: dict[tuple[str, str], dict[str, list[int]]]) -> list[str]:
    """The arms come from a stable hash of the customer and the hold-out share, so a customer served in
    both arms of a channel means the share changed within the period: the arms then hold unlike groups."""
    warnings = []
    for channel in sorted({c for c, _ in units}):
        both = set(units.get((channel, "personalised"), {})) & set(units.get((channel, "holdout"), {}))
        both.discard("")
        if both:
            warnings.append(
                f"{channel}: {len(both)} customers were served in both arms, so the hold-out share changed "
                "within the period; compare periods with one share only"
            )
    return warnings


def uplift(
    personalised: np.ndarray, holdout: np.ndarray, resamples: int = 1000, seed: int = 42
) -> tuple[float, float, float, float, float] | None:
    """(uplift, ci low, ci high, personalised rate, hold-out rate) from per-customer [recs, conversions].

    None when the hold-out has no conversion (a ratio to zero has no value).
    """
    p_rate = personalised[:, 1].sum() / personalised[:, 0].sum()
    h_rate = holdout[:, 1].sum() / holdout[:, 0].sum()
    if h_rate == 0:
        return None
    rng = np.random.default_rng(seed)
    pi = rng.integers(0, len(personalised), size=(resamples, len(personalised)))
    hi = rng.integers(0, len(holdout), size=(resamples, len(holdout)))
    p_boot = personalised[pi, 1].sum(axis=1) / personalised[pi, 0].sum(axis=1)
    h_boot = holdout[hi, 1].sum(axis=1) / holdout[hi, 0].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = p_boot / h_boot - 1.0
    finite = ratios[np.isfinite(ratios)]
    low, high = np.percentile(finite, [2.5, 97.5]) if len(finite) else (np.nan, np.nan)
    return float(p_rate / h_rate - 1.0), float(low), float(high), float(p_rate), float(h_rate)


# -- funnels ---------------------------------------------------------------------------------------

# A step matches events of one of its (type, channel) pairs; channel "" = any channel.
Step = tuple[str, tuple[tuple[str, str], ...]]
WEB_LIKE = ("WEB", "APP")
FUNNELS: tuple[tuple[str, tuple[Step, ...]], ...] = (
    (
        "ad -> web -> cart -> purchase",
        (
            ("ad click", (("AD_CLICK", ""), ("CLICK", "ADS"))),
            ("web view", tuple((t, c) for t in ("VIEW", "VISIT", "CLICK") for c in WEB_LIKE)),
            ("add to cart", (("ADD_TO_CART", ""),)),
            ("purchase", (("PURCHASE", ""),)),
        ),
    ),
    (
        "e-mail -> visit -> purchase",
        (
            ("e-mail click", (("EMAIL_CLICK", ""), ("CLICK", "EMAIL"))),
            ("visit", (("VISIT", ""), ("VIEW", ""))),
            ("purchase", (("PURCHASE", ""),)),
        ),
    ),
    (
        "view -> cart -> purchase",
        (
            ("view", (("VIEW", ""),)),
            ("add to cart", (("ADD_TO_CART", ""),)),
            ("purchase", (("PURCHASE", ""),)),
        ),
    ),
    (
        "recommendation -> click -> purchase",
        (
            ("impression", (("IMPRESSION", ""),)),
            ("click", (("CLICK", ""),)),
            ("purchase", (("PURCHASE", ""),)),
        ),
    ),
)


@dataclass
class FunnelStep:
    name: str
    customers: int
    conversion_from_previous: float
    channels: dict[str, int]  # channel the step was reached in -> customers


@dataclass
class Funnel:
    name: str
    steps: list[FunnelStep]


@dataclass
class FunnelReport:
    period_start: float
    period_end: float
    funnels: list[Funnel]


def funnel_report(
    storage: Storage,
    start: float | None = None,
    end: float | None = None,
    funnels: tuple[tuple[str, tuple[Step, ...]], ...] = FUNNELS,
) -> FunnelReport:
    start, end = period(start, end)
    types = sorted({t for _, steps in funnels for _, matches in steps for t, _ in matches})
    rows = storage.events_between(types, start, end)
    journeys: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in rows:  # in time order, so each customer's journey is too
        journeys[e.customer_id].append((e.type, e.channel))
    out = []
    for name, steps in funnels:
        reached: list[Counter[str]] = [Counter() for _ in steps]  # step -> channel -> customers
        for events in journeys.values():
            at = 0
            for etype, channel in events:
                if _matches(steps[at][1], etype, channel):
                    reached[at][channel] += 1
                    at += 1
                    if at == len(steps):
                        break
        counts = [sum(c.values()) for c in reached]
        out.append(
            Funnel(
                name,
                [
                    FunnelStep(step_name, counts[i], _rate(counts, i), dict(sorted(reached[i].items())))
                    for i, (step_name, _) in enumerate(steps)
                ],
            )
        )
    return FunnelReport(start, end, out)


def _rate(counts: list[int], i: int) -> float:
    """Share of the previous step's customers who reached step i (1 for a reached first step)."""
    if i == 0:
        return 1.0 if counts[0] else 0.0
    return counts[i] / counts[i - 1] if counts[i - 1] else 0.0


def _matches(matches: tuple[tuple[str, str], ...], etype: str, channel: str) -> bool:
    return any(etype == t and (not c or c == channel) for t, c in matches)
