"""The `seenext` command: serve, train, status, demo, settings, dashboard.

Flags override SEENEXT_* variables, which override the defaults (see `seenext settings`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from models.errors import SeenextError
from models.service import Seenext
from models.settings import Settings
from server import log_format

log = logging.getLogger("seenext")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:  # an unknown SEENEXT_ name or a bad value stops here, before anything starts
        settings = Settings.from_env(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            data_dir=getattr(args, "data_dir", None),
            demo=getattr(args, "demo", None),
            processes=getattr(args, "processes", None),
        )
    except ValueError as exc:
        parser.error(str(exc))
    log_format.configure(settings.log_level, settings.log_format)  # SEENEXT_LOG_FORMAT: text or json
    # What seenext writes (the database, models, keys, evaluation output) is its user's alone: 0600 files and
    # 0700 folders, whatever the shell's umask.
    os.umask(os.umask(0o077) | 0o077)
    try:
        return int(args.run(settings, args) or 0)
    except SeenextError as exc:  # e.g. the PII key file does not fit the database
        raise SystemExit(f"seenext: {exc.message}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seenext", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir", type=Path, help="folder of the SQLite file and models (SEENEXT_DATA_DIR)"
        )

    p = sub.add_parser("serve", help="start the gRPC server")
    common(p)
    p.add_argument("--host", help="bind address (SEENEXT_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (SEENEXT_PORT, default 50051; 0 = any free port)")
    p.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="seed the demo retailer into an empty store and train (SEENEXT_DEMO)",
    )
    p.add_argument("--processes", type=int, help="serving processes sharing the port (SEENEXT_PROCESSES)")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("train", help="train a model on the stored events and make it the serving one")
    common(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("status", help="the serving model and the store's size, as JSON")
    common(p)
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("demo", help="seed the demo retailer into the store (an empty one unless --force)")
    common(p)
    p.add_argument("--force", action="store_true", help="seed even if the store has events")
    p.set_defaults(run=cmd_demo)

    p = sub.add_parser("settings", help="every setting with its variable, default and meaning")
    p.set_defaults(run=cmd_settings)

    p = sub.add_parser(
        "keys", help="write a new API keys file (one fresh key per example caller, mode 0600) for a fleet"
    )
    p.add_argument("path", type=Path, help="the file to write; an existing file is never overwritten")
    p.set_defaults(run=cmd_keys)

    p = sub.add_parser(
        "dashboard", help="serve the read-only marketing page (reports, funnels, model, rules)"
    )
    p.add_argument("--listen", help="bind address of the page (SEENEXT_DASHBOARD_HOST, default 127.0.0.1)")
    p.add_argument(
        "--web-port", type=int, help="port of the page (SEENEXT_DASHBOARD_PORT, default 8051; 0 = any free)"
    )
    p.add_argument(
        "--target",
        help="gRPC server to read from (SEENEXT_DASHBOARD_TARGET; default SEENEXT_HOST:SEENEXT_PORT)",
    )
    p.set_defaults(run=cmd_dashboard)

    from server.cli.data import add_commands, add_insight_commands  # import, evaluate, traffic, report

    add_commands(sub, common)
    add_insight_commands(sub, common)
    return parser


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    if settings.port and not settings.child:  # a busy port stops the start now, not after the demo
        _check_port(settings)
    if settings.demo:
        prepare_demo(settings)
    if settings.processes > 1:
        return _serve_many(settings)
    from server.app import create_server  # grpc is imported only by the commands that serve
    from server.auth import banner as auth_banner

    try:
        running = create_server(settings)
    except (ValueError, OSError, SeenextError) as exc:  # a bad keys file, PII key or TLS file: say which
        raise SystemExit(f"seenext: cannot start: {exc}") from None
    from server import memory

    memory.tune_collector()  # a serving process's own collector settings (server/memory.py)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not settings.child:  # the parent of `--processes N` prints the one banner
        header, text = auth_banner(running.keys, settings)
        print(_banner(settings.host, running.port, header) + text, flush=True)
    _until_set(stop)
    log.info("stopping: draining calls in flight")
    running.stop(grace=5.0)
    return 0


def _until_set(stop: threading.Event) -> None:
    """Waits for SIGTERM/SIGINT's handler to set `stop`. In short waits: the kernel may deliver the
    signal to one of grpc's threads, and then a main thread blocked in one untimed wait is never woken
    to run the Python handler (seen as a server that ignored SIGTERM under load)."""
    while not stop.wait(0.2):
        pass


def _serve_many(settings: Settings) -> int:
    """N processes on one port (SO_REUSEPORT): the kernel spreads connections across them."""
    if settings.port == 0:
        raise SystemExit("--processes > 1 needs a fixed --port")
    from server.auth import banner as auth_banner
    from server.auth import from_settings

    try:  # the API keys, PII key and schema every child uses: made (if need be) and checked once, first
        header, text = auth_banner(from_settings(settings), settings)
        Seenext(settings).close()
    except (ValueError, OSError) as exc:
        raise SystemExit(f"seenext: cannot start: {exc}") from None
    env = dict(
        os.environ,
        SEENEXT_CHILD="1",
        SEENEXT_PROCESSES="1",
        SEENEXT_DEMO="0",
        SEENEXT_HOST=settings.host,
        SEENEXT_PORT=str(settings.port),
        SEENEXT_DATA_DIR=str(settings.data_dir),
    )
    # Each process has its own metrics registry, so its own port: process i serves SEENEXT_METRICS_PORT + i.
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            env=dict(env, SEENEXT_METRICS_PORT=str(settings.metrics_port and settings.metrics_port + i)),
        )
        for i in range(settings.processes)
    ]
    print(
        _banner(settings.host, settings.port, header) + text + f"\n({settings.processes} processes)",
        flush=True,
    )

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes)


def _check_port(settings: Settings) -> None:
    """Stops the start if the port is taken. The children of `--processes N` share their port among
    themselves (SO_REUSEPORT) and with nobody else: a port another server listens on is refused here
    rather than shared with it."""
    from server.app import port_problem

    problem = port_problem(settings.host, settings.port)
    if problem is not None:
        raise SystemExit(
            f"seenext: cannot start: cannot listen on {settings.host}:{settings.port}: {problem}"
        )


def _seed_demo(service: Seenext, settings: Settings) -> dict[str, int]:
    """Generates the demo retailer the settings describe and seeds it through the service's doors."""
    from models.demo import generator

    retailer = generator.generate(
        generator.DemoConfig(
            customers=settings.demo_customers,
            items=settings.demo_items,
            days=settings.demo_days,
            seed=settings.demo_seed,
        )
    )
    return generator.seed(service, retailer)


def prepare_demo(settings: Settings) -> None:
    """Seeds the demo retailer into an empty store and trains if no model serves yet."""
    with Seenext(settings) as service:
        if service.count_events() == 0:
            started = time.perf_counter()
            counts = _seed_demo(service, settings)
            log.info("demo retailer seeded in %.1fs: %s", time.perf_counter() - started, counts)
        if service.serving_model is None:
            info = service.train()
            log.info(
                "demo model %s trained: %d customers, %d items", info.version, info.customers, info.items
            )


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    with Seenext(settings) as service:
        info = service.train()
    print(json.dumps(vars(info), indent=2))
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    with Seenext(settings) as service:
        status = {"model": vars(service.model_info()), "versions": service.model_versions()}
    print(json.dumps(status, indent=2))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    with Seenext(settings) as service:
        if service.count_events() and not args.force:
            print("the store has events already; --force seeds anyway (event ids are idempotent)")
            return 1
        print(json.dumps(_seed_demo(service, settings), indent=2))
    return 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    """Every replica of a fleet must check the same keys: one file, written once, given to all
    (SEENEXT_KEYS_FILE). A server never writes that file itself when it is named, so a wrong path
    stops the start instead of inventing keys."""
    from server.auth import write_dev_keys

    try:
        write_dev_keys(args.path)
    except FileExistsError:
        raise SystemExit(f"seenext keys: {args.path} exists; not overwritten") from None
    print(f"wrote {args.path} (mode 0600): one key per example caller; edit names and scopes as needed")
    return 0


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for name, default, help_ in Settings.describe():
        print(f"{name:<32} {default!s:<12} {help_}")
    return 0


def cmd_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """The marketing page on its own port; it reads every figure from the gRPC server with the
    visitor's key (server/dashboard/), so it needs that server running, not the store."""
    from models.settings import ClientSettings
    from server.dashboard.figures import Api
    from server.dashboard.httpd import serve_dashboard
    from server.dashboard.rules import rules_over_rpc

    host = args.listen or settings.dashboard_host
    port = settings.dashboard_port if args.web_port is None else args.web_port
    target = args.target or settings.dashboard_target or _grpc_target(settings)
    try:
        api = Api(target, ClientSettings.from_env().tls_ca_file)
        # the rules in force and their history, read with the visitor's key (server/dashboard/rules.py)
        server, _ = serve_dashboard(host, port, api, rules_over_rpc(api.channel))
    except (ValueError, OSError) as exc:
        raise SystemExit(f"seenext: cannot start the dashboard: {exc}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"\nseenext dashboard on http://{host}:{server.port}/ (figures from the gRPC server at {target})\n"
        "  sign in with a key holding the insights scope: the marketing key `make run` prints,\n"
        f"  or curl -H 'x-api-key: <key>' http://{host}:{server.port}/\nStop with Ctrl-C.\n",
        flush=True,
    )
    _until_set(stop)
    server.shutdown()
    api.close()
    return 0


def _grpc_target(settings: Settings) -> str:
    """The gRPC server this config describes, as a client reaches it (a wildcard bind is this machine)."""
    host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::", "[::]") else settings.host
    return (
        f"[{host}]:{settings.port}" if ":" in host and not host.startswith("[") else f"{host}:{settings.port}"
    )


def _banner(host: str, port: int, header: str = "") -> str:
    target = f"{host}:{port}"
    return f"""
seenext is serving on {target}

  grpcurl -plaintext {target} list
  grpcurl -plaintext {header}-d '{{"who": {{"kind": "IDENTIFIER_KIND_CUSTOMER_ID", "value": "cust-00001"}},
      "channel": "CHANNEL_WEB", "k": 5, "explain": true}}' {target} seenext.v1.RecommendationService/Recommend

  .venv/bin/python -m clients.web --target {target} --customer cust-00001
  .venv/bin/python -m clients.web --target {target} --device some-device --item sku-00001
  .venv/bin/python -m clients.email --target {target} offers --prefix cust- --count 2000
  .venv/bin/python -m clients.pos --target {target} --store store-001 --basket sku-00146

Stop with Ctrl-C.
"""
