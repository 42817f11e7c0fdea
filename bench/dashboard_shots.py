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

from models.demo import generator
from models.demo.traffic import Behaviour, simulate
from models.settings import Settings
from server.app import create_server
from server.dashboard.figures import Api
from server.dashboard.httpd import DashboardServer, serve_dashboard
from server.dashboard.rules import RulesSource, no_rules

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
) -> Iterator[World]:
    """A keyed gRPC server over a small demo retailer with simulated traffic, and the dashboard."""
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
        dashboard, _ = serve_dashboard("127.0.0.1", 0, api, rules_source)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        demo_world(Path(tmp) / "data", args.customers, args.items, 90, behaviour=Behaviour()) as world,
        chromium(Path(tmp) / "profile") as browser,
    ):
        tab = browser.new_page()
        tab.goto(world.url)
        tab.screenshot(path=str(args.out / "dashboard-sign-in.png"))
        tab.fill("input[name=key]", world.keys["marketing"])
        tab.click("button[type=submit]")
        tab.wait_for_selector("#channels")
        tab.screenshot(path=str(args.out / "dashboard-page.png"), full_page=True)
        for section in ("channels", "funnels", "model"):
            tab.locator(f"#{section}").screenshot(path=str(args.out / f"dashboard-{section}.png"))
    print("\n".join(str(p) for p in sorted(args.out.glob("dashboard-*.png"))))


if __name__ == "__main__":
    main()
