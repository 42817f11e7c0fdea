"""The methods an evaluation compares, and what each is.

Apart from the pipeline that runs them so the command line can list them in its help without
importing pandas, scipy and LightFM: every `seenext` command builds that help, `serve` included.
"""

from __future__ import annotations

METHODS = (
    "popularity",
    "popularity_recent",
    "popularity_repeat",
    "lightfm_ids",
    "lightfm_defaults",
    "pipeline",
)
DESCRIPTIONS = {
    "popularity": "most interest over the whole train period",
    "popularity_recent": "most interest over the last {recent_days:g} days before the cut-off",
    "popularity_repeat": "own repeatable purchases (latest first), then popularity",
    "lightfm_ids": "LightFM alone, the service's hyper-parameters: ids only, no weights, features or rules",
    "lightfm_defaults": "LightFM alone as in its MovieLens example: WARP, 10 components, 10 epochs",
    "pipeline": (
        "seenext: weights, recency, features, fold-in, repurchase blend, complements, rules, fallbacks"
    ),
    "pipeline_stale": "the pipeline with a model {stale:g} days old; the events since are folded in",
    "pipeline_stale_nofold": "the same stale model, fresh events not folded in (new customers fall back)",
}
STALE_METHODS = ("pipeline_stale", "pipeline_stale_nofold")  # need stale_days > 0
