"""Issue 10's memory target: the server's resident memory after a fuzz run is within 10 % of what it
was before it, after warm-up rounds. The server is its own process, so /proc/<pid>/status is the
server's alone.

Why three warm-up rounds, not one (docs/reliability.md has the figures): what a server keeps after
its first fuzz rounds is a high-water mark, not a leak. The file-backed pages of code paths used for
the first time come in the first round; then the largest requests drawn so far (a fuzzed call may
carry up to 64 MB) leave pymalloc arenas behind, pinned by a few objects that outlive the call
(pymalloc returns an arena only when it is wholly empty): 50 -> 73 arenas of 1 MiB over the first
rounds while the bytes in live Python objects stayed at 48-49 MB. Measured over 20 rounds, the
server steps up for three rounds and is flat after (208-213 MB from round 4 to round 20). A leak
grows every round instead: the SQLite reader connections of finished threads (fixed) added ~3.6 MB
a round, 193 -> 265 MB over 20 rounds; put back, they fail this test after three warm-up rounds
(+18.7 % over eight rounds), and so does a cache keeping 2 KB per request (+15.9 %); both were
injected by a wrapper around the server for the check, not committed.
`PYTHONMALLOC=malloc` would give the pinned arenas back (+6.6 % after one warm-up round) but made
decoding a batch and building its objects ~1.8 times as costly in CPU, so the server keeps pymalloc.

`make fuzz` runs it (FUZZ_MEMORY_ROUNDS=10); `make test` skips it: a round or two is too short to
tell growth that levels off from growth that does not.
Rounds use seeds of their own: the same requests again would only hit what the first round cached.
"""

from __future__ import annotations

import pytest

from tests.fuzz.conftest import (
    MEMORY_EXAMPLES,
    MEMORY_ROUNDS,
    RPCS,
    SEED,
    Campaign,
    FuzzServer,
    explain,
    fuzz_messages,
    fuzz_raw,
)

GROWTH_ALLOWED = 0.10
WARMUP_ROUNDS = 3  # the high-water mark of the first rounds (see above) is taken before "before"


def fuzz_round(server: FuzzServer, campaign: Campaign, seed: int) -> None:
    for rpc in RPCS:
        fuzz_messages(server, rpc, campaign, MEMORY_EXAMPLES, seed)
        fuzz_raw(server, rpc, campaign, MEMORY_EXAMPLES, seed)


@pytest.mark.skipif(MEMORY_ROUNDS < 1, reason="make fuzz runs it (FUZZ_MEMORY_ROUNDS > 0)")
# Thirteen rounds take 4-6 minutes on two shared cores, past the suite's 300 s; a hung server still
# fails each call after CALL_TIMEOUT. (pytest-timeout's alarm, raised inside a gRPC wait, also left
# the channel's close() waiting for good.)
@pytest.mark.timeout(0)
def test_server_memory_is_flat_after_fuzzing(fuzz_server: FuzzServer, campaign: Campaign) -> None:
    counts = {key: v.count for key, v in campaign.violations.items()}
    start = fuzz_server.rss_kb()
    warmup = []
    for n in range(WARMUP_ROUNDS):
        fuzz_round(fuzz_server, campaign, SEED + 1 + n)
        warmup.append(fuzz_server.rss_kb())
    before = warmup[-1]
    readings = []
    for n in range(MEMORY_ROUNDS):
        fuzz_round(fuzz_server, campaign, SEED + 1 + WARMUP_ROUNDS + n)
        readings.append(fuzz_server.rss_kb())
    after = readings[-1]
    campaign.memory = {
        "rounds": MEMORY_ROUNDS,
        "warmup_rounds": WARMUP_ROUNDS,
        "rss_start_kb": start,
        "rss_warmup_kb": warmup,
        "calls_per_round": 2 * MEMORY_EXAMPLES * len(RPCS),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_per_round_kb": readings,
        "hwm_kb": fuzz_server.process.memory_kb()["VmHWM"],
        "growth": round(after / before - 1, 4),
        "data_mb": round(fuzz_server.data_bytes() / 1024**2, 1),
    }
    assert fuzz_server.alive(), "the server process died"
    new = [v for key, v in campaign.violations.items() if v.count > counts.get(key, 0)]
    assert not new, explain(new)
    assert after <= before * (1 + GROWTH_ALLOWED), campaign.memory
