"""The one consent decision (models/privacy/consent.py): channel beats every channel beats the default."""

from __future__ import annotations

import pytest

from models.privacy.consent import ALL_CHANNELS, ConsentDefaults, Decisions, allows, recorded

OPT_IN = ConsentDefaults(marketing=False, profiling=True)
OPT_OUT = ConsentDefaults(marketing=True, profiling=True)


@pytest.mark.parametrize(
    "decisions, channel, purpose, defaults, expected",
    [
        ({}, "EMAIL", "marketing", OPT_IN, False),  # nothing recorded: the default
        ({}, "EMAIL", "marketing", OPT_OUT, True),
        ({}, "WEB", "profiling", OPT_IN, True),
        ({(ALL_CHANNELS, "marketing"): True}, "EMAIL", "marketing", OPT_IN, True),  # every channel
        (
            {(ALL_CHANNELS, "marketing"): True, ("EMAIL", "marketing"): False},
            "EMAIL",
            "marketing",
            OPT_IN,
            False,
        ),
        (
            {(ALL_CHANNELS, "marketing"): False, ("POS", "marketing"): True},
            "EMAIL",
            "marketing",
            OPT_OUT,
            False,
        ),
        ({("POS", "marketing"): True}, "EMAIL", "marketing", OPT_IN, False),  # another channel's decision
        ({("EMAIL", "profiling"): False}, "EMAIL", "marketing", OPT_OUT, True),  # another purpose's
        ({(ALL_CHANNELS, "profiling"): False}, "", "profiling", OPT_IN, False),  # "" asks about every channel
    ],
)
def test_allows_known_answers(
    decisions: Decisions, channel: str, purpose: str, defaults: ConsentDefaults, expected: bool
) -> None:
    assert allows(decisions, channel, purpose, defaults) is expected


def test_recorded_is_none_when_nothing_applies() -> None:
    assert recorded({("POS", "marketing"): True}, "EMAIL", "marketing") is None
    assert recorded({(ALL_CHANNELS, "marketing"): False}, "EMAIL", "marketing") is False


def test_an_unknown_purpose_is_refused_by_default() -> None:
    assert not allows({}, "EMAIL", "selling-data", OPT_OUT)
