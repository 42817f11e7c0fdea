"""`python -m bench.dashboard_shots`: the demo retailer with simulated traffic, the gRPC server, the
dashboard, and screenshots of the page in the system's Chromium into docs/dashboard-*.png.

`demo_world()` is also the world of tests/server/test_dashboard.py: a small demo retailer (seeded
through the facade, like `make run`), trained, then simulated shoppers with a hold-out so every chart
has figures. `--customers` scales it up for nicer pictures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from models.demo import generator
from models.demo.traffic import Behaviour, simulate
from models.settings import Settings
from protos.seenext.v1 import merchandising_pb2, merchandising_pb2_grpc
from server.app import create_server
from server.dashboard.figures import Api
from server.dashboard.httpd import DashboardServer, serve_dashboard
from server.dashboard.rules import RulesSource, no_rules, rules_over_rpc

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# The flags of a quiet, sandbox-free headless run in a container: no GPU, no calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass
class World:
    grpc_port: int
    dashboard: DashboardServer
    keys: dict[str, str]  # caller name -> key (the development keys file)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard.port}/"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@contextmanager
def demo_world(
    data_dir: Path,
    customers: int = 120,
    items: int = 80,
    days: int = 60,
    rules_source: RulesSource = no_rules,
    behaviour: Behaviour | None = None,
    rules_over_grpc: bool = False,
) -> Iterator[World]:
    """A keyed gRPC server over a small demo retailer with simulated traffic, and the dashboard.
    `rules_over_grpc`: the rules section reads MerchandisingService as `seenext dashboard` does
    (instead of `rules_source`)."""
    settings = Settings(
        data_dir=data_dir,
        port=0,
        holdout=0.3,
        epochs=10,
        components=8,
        train_threads=1,
        workers=8,
        demo_customers=customers,
        demo_items=items,
        demo_days=days,
    )
    running = create_server(settings)
    try:
        service = running.service
        retailer = generator.generate(
            generator.DemoConfig(customers=customers, items=items, days=days, seed=settings.demo_seed)
        )
        generator.seed(service, retailer)
        service.train()
        simulate(
            service,
            [c.customer_id for c in retailer.customers],
            visits_per_customer=3,
            seed=5,
            # eager shoppers by default: a small world still gives every chart figures to compare
            behaviour=behaviour or Behaviour(click=0.5, cart=0.7, buy=0.7),
        )
        keys = {k["name"]: k["key"] for k in json.loads(settings.keys_path.read_text())["keys"]}
        api = Api(f"127.0.0.1:{running.port}")
        source = rules_over_rpc(api.channel) if rules_over_grpc else rules_source
        dashboard, _ = serve_dashboard("127.0.0.1", 0, api, source)
        try:
            yield World(running.port, dashboard, keys)
        finally:
            dashboard.shutdown()
            dashboard.server_close()
            api.close()
    finally:
        running.stop(grace=1.0)


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[Any]:
    """The system's Chromium through Playwright (never Playwright's own download), fresh profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            yield browser
        finally:
            browser.close()


def merchandise(world: World) -> None:
    """What a merchandiser would have done by then, through MerchandisingService with the merchandiser
    key: a promotion's reserved places, a brand boosted then softened, an exclusion switched off."""
    pb = merchandising_pb2
    stub = merchandising_pb2_grpc.MerchandisingServiceStub(grpc.insecure_channel(world.grpc_target))
    md = (("authorization", f"Bearer {world.keys['merchandiser']}"),)
    specs = [
        pb.RuleSpec(name="Spring offers on the home page", placements=["home"], condition="item.on_offer",
                    action=pb.RULE_ACTION_RESERVE, share=0.25, enabled=True),
        pb.RuleSpec(name="Kestrel week", condition='item.brand == "Kestrel"', action=pb.RULE_ACTION_BOOST,
                    weight=2.0, enabled=True),
        pb.RuleSpec(name="No flowers in the newsletter", placements=["newsletter"],
                    condition='item.category == "flowers"', action=pb.RULE_ACTION_EXCLUDE, enabled=True),
    ]  # fmt: skip
    created = [stub.CreateRule(pb.CreateRuleRequest(spec=s), metadata=md).rule for s in specs]
    softer = pb.RuleSpec()
    softer.CopyFrom(specs[1])
    softer.weight = 1.5
    stub.UpdateRule(pb.UpdateRuleRequest(rule_id=created[1].rule_id, spec=softer), metadata=md)
    stub.SetRuleEnabled(pb.SetRuleEnabledRequest(rule_id=created[2].rule_id, enabled=False), metadata=md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        demo_world(
            Path(tmp) / "data", args.customers, args.items, 90, behaviour=Behaviour(), rules_over_grpc=True
        ) as world,
        chromium(Path(tmp) / "profile") as browser,
    ):
        merchandise(world)
        tab = browser.new_page()
        tab.goto(world.url)
        tab.screenshot(path=str(args.out / "dashboard-sign-in.png"))
        tab.fill("input[name=key]", world.keys["marketing"])
        tab.click("button[type=submit]")
        tab.wait_for_selector("#channels")
        tab.screenshot(path=str(args.out / "dashboard-page.png"), full_page=True)
        for section in ("channels", "funnels", "model", "rules"):
            tab.locator(f"#{section}").screenshot(path=str(args.out / f"dashboard-{section}.png"))
    print("\n".join(str(p) for p in sorted(args.out.glob("dashboard-*.png"))))


if __name__ == "__main__":
    main()
