"""The dashboard's HTTP server: the standard library's ThreadingHTTPServer, one page, no script.

A visitor proves a key in one of three ways: `Authorization: Bearer <key>`, `x-api-key: <key>`, or the
sign-in form, which keeps the key on the server and gives the browser an opaque session id in an
HttpOnly, SameSite=Strict cookie. A missing or unknown key gets 401 and the sign-in form, a key
without the `insights` scope 403; neither gets a figure. Every reply forbids scripts, framing and
caching (Content-Security-Policy, X-Frame-Options, Cache-Control), on top of escaping every text.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from server.dashboard import page
from server.dashboard.figures import Api, Refused, Window
from server.dashboard.rules import RulesSource, no_rules

log = logging.getLogger(__name__)

COOKIE = "seenext_dashboard"
SESSION_SECONDS = 8 * 3600  # a working day; then the form again
MAX_SESSIONS = 1000  # the oldest go first: only accepted keys make one, so this is a safety bound
MAX_FORM_BYTES = 4096
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none';"
        " base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Sessions:
    """Signed-in browsers: an opaque id -> the key it proved, until it expires or signs out."""

    def __init__(self, seconds: float = SESSION_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._by_id: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def open(self, api_key: str) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._by_id[session] = (api_key, time.monotonic() + self.seconds)
            while len(self._by_id) > MAX_SESSIONS:
                self._by_id.popitem(last=False)
        return session

    def key(self, session: str) -> str | None:
        with self._lock:
            found = self._by_id.get(session)
            if found is None:
                return None
            if found[1] < time.monotonic():
                del self._by_id[session]
                return None
            return found[0]

    def close(self, session: str) -> None:
        with self._lock:
            self._by_id.pop(session, None)


@dataclass
class Dashboard:
    """What every request needs: the API to ask, the signed-in browsers, the rules' source."""

    api: Api
    sessions: Sessions
    rules_source: RulesSource = no_rules


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], dashboard: Dashboard) -> None:
        super().__init__(address, DashboardHandler)
        self.dashboard = dashboard

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serve_dashboard(
    host: str, port: int, api: Api, rules_source: RulesSource = no_rules
) -> tuple[DashboardServer, threading.Thread]:
    """Binds host:port (0 = a free port) and serves in a background thread; `.shutdown()` stops it."""
    server = DashboardServer((host, port), Dashboard(api, Sessions(), rules_source))
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    return server, thread


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "seenext-dashboard"
    sys_version = ""
    timeout = 30  # seconds a connection may stay silent: a slow client cannot hold a thread for ever

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._reply(HTTPStatus.OK, "ok\n", "text/plain; charset=utf-8")
            return
        if url.path != "/":
            self._reply(HTTPStatus.NOT_FOUND, page.refused_page("No such page."))
            return
        key = self._key()
        if key is None:
            self._reply(HTTPStatus.UNAUTHORIZED, page.login_page(), bearer=True)
            return
        dashboard = self.server.dashboard
        try:
            window = Window.from_query(parse_qs(url.query))
            figures = dashboard.api.figures(key, window)
            rules = dashboard.rules_source(key)
        except Refused as refused:
            self._refused(refused)
            return
        self._reply(HTTPStatus.OK, page.dashboard_page(figures, rules, window))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/logout":
            session = self._cookie()
            if session:
                self.server.dashboard.sessions.close(session)
            self._redirect(f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
            return
        if path != "/login":
            self._reply(HTTPStatus.NOT_FOUND, page.refused_page("No such page."))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, page.login_page("The form is too large."))
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        if not key:
            self._reply(HTTPStatus.UNAUTHORIZED, page.login_page("Enter an API key."), bearer=True)
            return
        try:
            self.server.dashboard.api.check_key(key)
        except Refused as refused:
            self._refused(refused)
            return
        session = self.server.dashboard.sessions.open(key)
        self._redirect(f"{COOKIE}={session}; Path=/; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict")

    def _key(self) -> str | None:
        """The key this request proves: a header first, else the signed-in session's."""
        scheme, _, secret = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            return secret.strip()
        header = (self.headers.get("x-api-key") or "").strip()
        if header:
            return header
        session = self._cookie()
        return self.server.dashboard.sessions.key(session) if session else None

    def _cookie(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value:
                return value
        return None

    def _refused(self, refused: Refused) -> None:
        status = HTTPStatus(refused.status)
        if status == HTTPStatus.UNAUTHORIZED:
            session = self._cookie()
            if session:  # a session whose key the server no longer accepts: forget it
                self.server.dashboard.sessions.close(session)
            self._reply(status, page.login_page(refused.message), bearer=True)
        else:
            self._reply(status, page.refused_page(refused.message))

    def _redirect(self, cookie: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def _reply(
        self,
        status: HTTPStatus,
        body: str,
        content_type: str = "text/html; charset=utf-8",
        bearer: bool = False,
    ) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if bearer:
            self.send_header("WWW-Authenticate", 'Bearer realm="seenext dashboard"')
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # The request line holds the path and the period only; keys travel in headers and forms.
        log.info("%s %s", self.address_string(), format % args)
