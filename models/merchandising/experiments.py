"""Experiments (issue 12 point 4): variants of a placement — another plan, rules of their own — given to
customers by a stable hash, beside the hold-out.

A customer's variant is a hash of (experiment id, customer id): the same in every process and after a
restart, and independent of the hold-out's hash (a hold-out customer stays on the baseline and is in
no variant). Customers outside every variant's share are the experiment's control. The served log
records the arm `variant:<experiment id>/<variant>` (control: `/control`), so ChannelReport splits the
experiment's recommendations by variant and measures each variant's uplift against the control.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from models.errors import InvalidArgument
from models.merchandising.placements import MAX_SOURCE_LIMIT, SOURCES
from models.serving.channel_rules import Source
from models.validation import MAX_NAME_LENGTH, check_text

CONTROL = "control"
ARM_PREFIX = "variant:"
MAX_VARIANTS = 10


@dataclass(frozen=True)
class Variant:
    name: str
    share: float  # of the customers, in (0, 1]; the variants' shares add up to 1 at most
    sources: tuple[Source, ...] = ()  # () = the placement's plan
    rule_ids: tuple[str, ...] = ()  # rules in force for this variant's customers only


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    placement: str
    variants: tuple[Variant, ...]
    enabled: bool = True

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "placement": self.placement,
                "enabled": self.enabled,
                "variants": [
                    {
                        "name": v.name,
                        "share": v.share,
                        "sources": [[s.name, s.limit] for s in v.sources],
                        "rule_ids": list(v.rule_ids),
                    }
                    for v in self.variants
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ExperimentSpec:
        d = json.loads(text)
        return cls(
            d["name"],
            d["placement"],
            tuple(
                Variant(
                    v["name"],
                    float(v["share"]),
                    tuple(Source(str(n), int(limit)) for n, limit in v["sources"]),
                    tuple(v["rule_ids"]),
                )
                for v in d["variants"]
            ),
            bool(d["enabled"]),
        )


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    spec: ExperimentSpec
    version: int
    updated_by: str
    updated_at: float

    def assign(self, customer_id: str) -> Variant | None:
        """The customer's variant; None: the control."""
        digest = hashlib.blake2b(f"{self.experiment_id}\x00{customer_id}".encode(), digest_size=8).digest()
        at = int.from_bytes(digest, "big") / 2**64
        edge = 0.0
        for v in self.spec.variants:
            edge += v.share
            if at < edge:
                return v
        return None

    def arm(self, variant: Variant | None) -> str:
        return f"{ARM_PREFIX}{self.experiment_id}/{variant.name if variant is not None else CONTROL}"

    @property
    def rule_ids(self) -> frozenset[str]:
        return frozenset(r for v in self.spec.variants for r in v.rule_ids)


def split_arm(arm: str) -> tuple[str, str] | None:
    """(experiment id, variant) of an experiment's arm; None for "personalised" or "holdout"."""
    if not arm.startswith(ARM_PREFIX):
        return None
    experiment, _, variant = arm.removeprefix(ARM_PREFIX).partition("/")
    return experiment, variant


def check_experiment(spec: ExperimentSpec, prefix: str = "spec") -> None:
    check_text(spec.name, f"{prefix}.name", 128)
    if not spec.name.strip():
        raise InvalidArgument(f"{prefix}.name", "is required: say what the experiment tests")
    check_text(spec.placement, f"{prefix}.placement", MAX_NAME_LENGTH)
    if not spec.placement:
        raise InvalidArgument(f"{prefix}.placement", "is required")
    if not 1 <= len(spec.variants) <= MAX_VARIANTS:
        raise InvalidArgument(f"{prefix}.variants", f"1 to {MAX_VARIANTS} variants, got {len(spec.variants)}")
    names: set[str] = set()
    for i, v in enumerate(spec.variants):
        where = f"{prefix}.variants[{i}]"
        check_text(v.name, f"{where}.name", MAX_NAME_LENGTH)
        if not v.name or v.name == CONTROL or "/" in v.name or v.name in names:
            raise InvalidArgument(
                f"{where}.name",
                f"a unique name other than {CONTROL!r}, without '/', is required, got {v.name!r}",
            )
        names.add(v.name)
        if not 0.0 < v.share <= 1.0:
            raise InvalidArgument(f"{where}.share", f"must be above 0 and at most 1, got {v.share:g}")
        for j, s in enumerate(v.sources):
            if s.name not in SOURCES:
                raise InvalidArgument(
                    f"{where}.sources[{j}].name", f"must be one of {', '.join(SOURCES)}, got {s.name!r}"
                )
            if not 0 <= s.limit <= MAX_SOURCE_LIMIT:
                raise InvalidArgument(
                    f"{where}.sources[{j}].limit", f"must be 0 to {MAX_SOURCE_LIMIT}, got {s.limit}"
                )
        if not v.sources and not v.rule_ids:
            raise InvalidArgument(
                where, "a variant needs its own sources or rule_ids (else it is the control)"
            )
    total = sum(v.share for v in spec.variants)
    if total > 1.0 + 1e-9:
        raise InvalidArgument(f"{prefix}.variants", f"the shares add up to {total:g}, more than 1")
