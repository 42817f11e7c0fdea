"""`seenext dashboard` in a real headless Chromium (Debian's package, driven by Playwright): the page
loads with the demo's traffic behind the marketing key, its charts carry the figures the
ChannelReport, FunnelReport and GetModelStatus RPCs return through the stubs for the same period, a
wrong key, a key without the insights scope and no key are refused without a figure, and text from the
data cannot run as script.

Chromium missing fails these tests (CI installs it: .ci/run, `make test`); SKIP_BROWSER_TESTS=1 skips
them on a machine that cannot have it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bench.dashboard_shots import CHROMIUM, World, chromium, demo_world
from protos.seenext.v1 import (
    common_pb2,
    insights_pb2,
    insights_pb2_grpc,
    merchandising_pb2,
    merchandising_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)
from server.dashboard.figures import Api
from server.dashboard.httpd import serve_dashboard
from server.dashboard.rules import RuleChange, RuleRow, RulesSection, rules_over_rpc

DAY = 86400


def _need_browser() -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("SKIP_BROWSER_TESTS") == "1":
        pytest.skip(f"SKIP_BROWSER_TESTS=1 and no {CHROMIUM}")
    pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run and `make test` do it)")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _need_browser()
    with demo_world(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    browser.clear_cookies()
    page = browser.new_page()
    yield page
    page.close()
    browser.clear_cookies()


def _stubs(world: World, key: str) -> tuple[Any, Any, grpc.Channel]:
    channel = grpc.insecure_channel(world.grpc_target)
    grpc.channel_ready_future(channel).result(timeout=10)
    return insights_pb2_grpc.InsightsServiceStub(channel), model_pb2_grpc.ModelServiceStub(channel), channel


def _floats(tab: Any, selector: str, *names: str) -> list[tuple[Any, ...]]:
    """Every element's data-* attributes, read from the browser's DOM."""
    script = "(els, names) => els.map(e => names.map(n => e.getAttribute('data-' + n)))"
    return [tuple(row) for row in tab.eval_on_selector_all(selector, script, list(names))]


def _sign_in(tab: Any, url: str, key: str) -> Any:
    tab.goto(url)
    tab.fill("input[name=key]", key)
    with tab.expect_navigation() as nav:
        tab.click("form[action='/login'] button")
    return nav.value


def test_the_page_shows_what_the_rpcs_return(world: World, tab: Any) -> None:
    end = int(time.time()) + 1
    start = end - 30 * DAY
    query = urlencode(
        {
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
            "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
            "attribution_days": 7,
        }
    )
    signed_in = _sign_in(tab, world.url, world.keys["marketing"])
    assert signed_in.status == 200
    response = tab.goto(f"{world.url}?{query}")
    assert response.status == 200

    key = world.keys["marketing"]
    insights, models, channel = _stubs(world, key)
    auth = (("authorization", f"Bearer {key}"),)
    window = {"period_start": Timestamp(seconds=start), "period_end": Timestamp(seconds=end)}
    with channel:
        report = insights.ChannelReport(
            insights_pb2.ChannelReportRequest(**window, attribution_days=7), metadata=auth, timeout=30
        )
        funnels = insights.FunnelReport(insights_pb2.FunnelReportRequest(**window), metadata=auth, timeout=30)
        status = models.GetModelStatus(model_pb2.GetModelStatusRequest(), metadata=auth, timeout=10)

    assert tab.get_attribute("#period-start", "data-seconds") == str(start)
    assert tab.get_attribute("#period-end", "data-seconds") == str(end)
    # the uplift chart: one bar with its whisker per channel, the reply's figures exactly
    assert report.uplift, "the demo's traffic with a hold-out gives every channel an uplift"
    drawn = _floats(tab, "svg.uplift-chart g.uplift", "channel", "uplift", "ci-low", "ci-high")
    expected = [
        (common_pb2.Channel.Name(u.channel).removeprefix("CHANNEL_"), u.uplift, u.ci_low, u.ci_high)
        for u in report.uplift
    ]
    assert [(c, float(u), float(lo), float(hi)) for c, u, lo, hi in drawn] == expected
    for bar in tab.locator("svg.uplift-chart g.uplift rect.bar").all():
        assert bar.bounding_box()["width"] >= 1  # drawn, not only present
    # per channel and arm
    arms = _floats(tab, "#arms tr.arm", "channel", "arm", "recommendations", "conversions", "revenue")
    assert [(c, a, int(n), int(b), float(r)) for c, a, n, b, r in arms] == [
        (
            common_pb2.Channel.Name(r.channel).removeprefix("CHANNEL_"),
            r.arm,
            r.recommendations,
            r.conversions,
            r.revenue,
        )
        for r in report.rows
    ]
    # the funnels: one bar per step, customers and step conversion as replied
    steps = _floats(tab, "svg.funnel-chart g.funnel-step", "funnel", "step", "customers", "conversion")
    assert funnels.funnels
    assert [(f, s, int(n), float(c)) for f, s, n, c in steps] == [
        (f.name, s.name, s.customers, s.conversion_from_previous) for f in funnels.funnels for s in f.steps
    ]
    assert tab.locator("g.funnel-step.worst-drop").count() >= 1  # where customers drop off is marked
    # the serving model and its evaluation figures
    assert status.model_version
    assert tab.get_attribute("#serving-model", "data-version") == status.model_version
    metrics = dict(_floats(tab, "#metrics tr.metric", "metric", "value"))
    assert {k: float(v) for k, v in metrics.items()} == dict(status.metrics)
    versus = _floats(tab, "svg.versus-chart g.versus", "measure", "who", "value")
    assert versus and all(
        float(v) == status.metrics[m if who == "model" else f"popularity.{m}"] for m, who, v in versus
    )
    # no merchandising rules exist yet
    assert tab.locator("#no-rules").is_visible()


def test_a_wrong_missing_or_unscoped_key_sees_no_figure(world: World, browser: Any) -> None:
    cases = [
        ({}, 401),
        ({"x-api-key": "not-a-key-of-this-server"}, 401),
        ({"Authorization": "Bearer not-a-key-of-this-server"}, 401),
        ({"x-api-key": world.keys["web-shop"]}, 403),  # track, recommend, identify: no insights
    ]
    browser.clear_cookies()  # no session: only the headers speak
    for headers, status in cases:
        page = browser.new_page()
        page.set_extra_http_headers(headers)
        try:
            response = page.goto(world.url)
            assert response.status == status, headers
            assert page.locator("g.uplift, g.funnel-step, #arms, #model").count() == 0, headers
        finally:
            page.close()
    page = browser.new_page()
    page.set_extra_http_headers({"Authorization": f"Bearer {world.keys['marketing']}"})
    try:
        assert page.goto(world.url).status == 200 and page.locator("g.funnel-step").count() > 0
    finally:
        page.close()


def test_the_sign_in_form_refuses_a_wrong_key_and_signs_out(world: World, tab: Any) -> None:
    refused = _sign_in(tab, world.url, "not-a-key-of-this-server")
    assert refused.status == 401
    assert "not accepted" in tab.inner_text("#refused")
    assert tab.locator("g.uplift").count() == 0
    assert not [c for c in tab.context.cookies() if c["name"] == "seenext_dashboard"]

    assert _sign_in(tab, world.url, world.keys["marketing"]).status == 200
    cookie = next(c for c in tab.context.cookies() if c["name"] == "seenext_dashboard")
    assert cookie["httpOnly"] and cookie["value"] != world.keys["marketing"]  # a session id, not the key
    with tab.expect_navigation():
        tab.click("form[action='/logout'] button")
    assert tab.goto(world.url).status == 401


def test_rule_texts_are_shown_as_text_never_run(world: World, tab: Any) -> None:
    """The rules section renders whatever its source gives (the merchandising rules, once wired),
    escaped: a rule text with markup shows the markup and runs nothing."""
    evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    rules = RulesSection(
        rules=(
            RuleRow("r1", evil, "home", "WEB", f'item.title == "{evil}"', "boost by 2", True, 3, evil, 0.0),
        ),
        history=(RuleChange("r1", 3, "updated", evil, "marketing", 0.0),),
    )
    api = Api(world.grpc_target)
    dashboard, _ = serve_dashboard("127.0.0.1", 0, api, lambda key: rules)
    try:
        url = f"http://127.0.0.1:{dashboard.port}/"
        assert _sign_in(tab, url, world.keys["marketing"]).status == 200
        assert tab.locator("#rules-table tr.rule").count() == 1
        assert evil in tab.inner_text("#rules-table")
        assert evil in tab.inner_text("#rules-history")
        assert tab.evaluate("window.pwned") is None
        assert tab.locator("#rules img, #rules script").count() == 0
    finally:
        dashboard.shutdown()
        dashboard.server_close()
        api.close()


def test_a_bad_period_is_refused_naming_the_field(world: World, browser: Any) -> None:
    browser.clear_cookies()
    page = browser.new_page()
    page.set_extra_http_headers({"x-api-key": world.keys["marketing"]})
    try:
        response = page.goto(f"{world.url}?start=last-tuesday")
        assert response.status == 400 and "start" in page.inner_text("#refused")
        response = page.goto(f"{world.url}?start=2026-11-20&end=2026-11-01")  # the RPC's INVALID_ARGUMENT
        assert response.status == 400 and "period_end" in page.inner_text("#refused")
        assert page.locator("g.uplift, g.funnel-step").count() == 0
    finally:
        page.close()


def test_the_seenext_dashboard_command_serves_the_page(world: World) -> None:
    """`seenext dashboard` as an operator starts it: its own port, the gRPC server as its target."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEENEXT_")}
    env["SEENEXT_DASHBOARD_TARGET"] = world.grpc_target
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "dashboard", "--web-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = next(line for line in proc.stdout if "seenext dashboard on" in line)
        url = line.split()[3]
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"x-api-key": world.keys["marketing"]})
        ) as ok:
            assert ok.status == 200 and b'class="uplift"' in ok.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(url, headers={"x-api-key": "not-a-key-of-this-server"})
            )
        assert refused.value.code == 401 and b'class="uplift"' not in refused.value.read()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_a_rule_made_through_the_api_is_on_the_page_with_its_history(world: World, tab: Any) -> None:
    """A merchandiser creates a rule and changes it through MerchandisingService; the marketing key
    sees it in force and both versions in the history, read with its own key (the scope "rules",
    which "insights" grants: server/auth.py)."""
    merchandiser = (("authorization", f"Bearer {world.keys['merchandiser']}"),)
    with grpc.insecure_channel(world.grpc_target) as channel:
        stub = merchandising_pb2_grpc.MerchandisingServiceStub(channel)
        spec = merchandising_pb2.RuleSpec(
            name="nova first",
            placements=["home", "product"],
            channels=[common_pb2.CHANNEL_WEB],
            condition='item.brand == "nova"',
            action=merchandising_pb2.RULE_ACTION_PIN,
            position=1,
            enabled=True,
        )
        rule = stub.CreateRule(merchandising_pb2.CreateRuleRequest(spec=spec), metadata=merchandiser).rule
        spec.action, spec.weight, spec.position = merchandising_pb2.RULE_ACTION_BOOST, 2.0, 0
        stub.UpdateRule(
            merchandising_pb2.UpdateRuleRequest(rule_id=rule.rule_id, spec=spec), metadata=merchandiser
        )
        api = Api(world.grpc_target)
        dashboard, _ = serve_dashboard("127.0.0.1", 0, api, rules_over_rpc(api.channel))
        try:
            url = f"http://127.0.0.1:{dashboard.port}/"
            assert _sign_in(tab, url, world.keys["marketing"]).status == 200
            rows = tab.locator("#rules-table tr.rule")
            assert rows.count() == 1
            row = rows.first.inner_text()
            assert "nova first" in row and 'item.brand == "nova"' in row and "boost by 2" in row
            assert "home, product" in row and "WEB" in row
            history = tab.inner_text("#rules-history")
            assert history.index('boost by 2 when item.brand == "nova"') < history.index(
                'pin at 1 when item.brand == "nova"'
            )  # newest first
            assert "merchandiser" in history
        finally:
            dashboard.shutdown()
            dashboard.server_close()
            api.close()
            stub.DeleteRule(merchandising_pb2.DeleteRuleRequest(rule_id=rule.rule_id), metadata=merchandiser)
