"""`grove node --web 127.0.0.1:PORT`: a small, read-mostly web dashboard of the running node
for relay operators and machines without a desktop (Folding@home's users ask for remote
control of their machines: fah-web-client-bastet#54).

Off by default. It binds to loopback unless told otherwise (`--web-remote`), and every request
must carry the profile's token (a random secret in `<data>/web-token`, mode 0600): `grove node`
prints the address with the token once; opening it sets an HttpOnly, SameSite=Strict cookie.
The pages are rendered on the server from the same snapshot and the same plain words as the
desktop dashboard (core.glance, core.humanize, core.names) and refresh every few seconds; the
only actions are participation on/off and a pause, each a POST that must come from the page
itself (the cookie is SameSite=Strict and the Origin must match). Python's http.server (the
standard library, threads) serves it: a few requests a minute need no framework.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from app.http_thread import ServerThread
from core import humanize as hz
from core.clock import tomorrow_at
from core.errors import GardenerError
from core.glance import TIER_WORDS, glance
from core.snapshot import NodeSnapshot, NodeState, live_villages, to_jsonable

TOKEN_FILE = "web-token"
COOKIE = "grove_token"
REFRESH_S = 5
MAX_BODY = 4096  # bytes of a POST (a form of one or two fields)
PAUSES: dict[str, Callable[[float], float]] = {  # the button's words -> until when
    "30 min": lambda now: now + 1800, "2 h": lambda now: now + 7200,
    "until tomorrow": lambda now: tomorrow_at(8, now)}  # 08:00, as the tray's


def load_token(data_dir: Path) -> str:
    """The profile's token, made on first use (0600)."""
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
        if len(token) >= 24:
            return token
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def parse_address(text: str, *, remote: bool, flag: str = "--web",
                  remote_flag: str = "--web-remote", guard: str = "the token") -> tuple[str, int]:
    """HOST:PORT as given to `flag`; GardenerError for a bad one, or for an address other
    computers can reach unless `remote` (`remote_flag` allows it; `guard` still guards it)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise GardenerError(f"{flag} wants HOST:PORT, e.g. 127.0.0.1:8642 (got {text!r}).")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise GardenerError(f"{flag} wants an IP address, not {host!r}.",
                            "127.0.0.1 serves this computer only.") from None
    if not ip.is_loopback and not remote:
        raise GardenerError(f"{host} can be reached from other computers.",
                            f"Add {remote_flag} if that is what you want ({guard} still "
                            "guards it; use it only on a network you trust, or behind TLS).")
    return host, int(port)


class WebDashboard(ServerThread):
    """The server, in a daemon thread; `snapshot` and the two actions come from the node's
    handle (thread-safe)."""

    def __init__(self, handle: Any, host: str, port: int, token: str) -> None:
        self.handle, self.token = handle, token
        dashboard = self

        class Handler(_Handler):
            web = dashboard

        super().__init__(Handler, host, port, "grove-web")

    @property
    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"


class _Handler(BaseHTTPRequestHandler):
    web: WebDashboard
    server_version = "grove-web"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the node logs enough
        return

    # -- authentication ------------------------------------------------------------------
    def _authorised(self) -> bool:
        want = self.web.token.encode()
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), want):
            return True
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), want):
                return True
        return False

    def _send(self, status: int, body: bytes, kind: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self) -> None:
        self._send(HTTPStatus.UNAUTHORIZED, page("Grove", "<h1>Not signed in</h1><p>Open the "
                   "address <code>grove node --web</code> printed: it carries this "
                   "village's token (also in the profile's <code>web-token</code> file)."
                   "</p>", refresh=False), "text/html; charset=utf-8")

    # -- requests ------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlparse(self.path)
        token = parse_qs(url.query).get("token", [""])[0]
        if token:
            if not hmac.compare_digest(token.encode(), self.web.token.encode()):
                return self._refuse()
            return self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {
                "Location": "/", "Set-Cookie": f"{COOKIE}={self.web.token}; HttpOnly; "
                "SameSite=Strict; Path=/"})
        if not self._authorised():
            return self._refuse()
        snap = self.web.handle.snapshot()
        if url.path == "/api/snapshot":
            body = {"snapshot": to_jsonable(snap),
                    "glance": to_jsonable(glance(snap, time.time()))}
            return self._send(HTTPStatus.OK, json.dumps(body).encode(), "application/json")
        if url.path == "/":
            return self._send(HTTPStatus.OK, render(snap, time.time()).encode(),
                              "text/html; charset=utf-8")
        self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        if not self._authorised():
            return self._refuse()
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if origin is not None and urlparse(origin).netloc != host:
            return self._send(HTTPStatus.FORBIDDEN, b"cross-site request refused",
                              "text/plain")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large", "text/plain")
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        action = urlparse(self.path).path
        try:
            self._act(action, form)
        except (KeyError, ValueError) as e:
            return self._send(HTTPStatus.BAD_REQUEST, f"bad request: {e}".encode(),
                              "text/plain")
        except Exception as e:  # the node refused: say so
            return self._send(HTTPStatus.CONFLICT, f"not done: {e}".encode(), "text/plain")
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/"})

    def _act(self, action: str, form: dict[str, list[str]]) -> None:
        h = self.web.handle
        if action == "/api/participate":
            future = h.set_participation(form["on"][0] == "1")
        elif action == "/api/pause":
            future = h.pause(PAUSES[form["for"][0]](time.time()))
        elif action == "/api/resume":
            future = h.resume()
        else:
            raise KeyError(action)
        future.result(10)  # the node's refusal, if any, is the answer's


# -- the page ------------------------------------------------------------------------------
CSS = """
:root { color-scheme: light dark; --fg: #202124; --muted: #5f6368; --bg: #fff; --card: #f8f9fa;
  --line: #dadce0; --using: #1e8e3e; --ready: #1a73e8; --not-using: #e37400; --off: #80868b;
  --error: #c5221f; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8eaed; --muted: #9aa0a6; --bg: #202124;
  --card: #292a2d; --line: #3c4043; } }
body { font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg);
  margin: 0 auto; max-width: 980px; padding: 16px; }
h1 { font-size: 26px; margin: 4px 0; } h2 { font-size: 17px; margin: 0 0 8px; }
.why { font-size: 16px; color: var(--muted); margin-bottom: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 14px; margin-bottom: 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 8px;
  border-bottom: 1px solid var(--line); } th { color: var(--muted); font-weight: 500; }
.problem { color: var(--error); } form { display: inline; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--line);
  background: var(--bg); color: var(--fg); cursor: pointer; margin: 0 6px 6px 0; }
button.primary { background: var(--ready); color: #fff; border-color: var(--ready); }
details summary { cursor: pointer; color: var(--muted); } code { font-size: 13px; }
footer { color: var(--muted); font-size: 13px; }
"""


def page(title: str, body: str, *, refresh: bool = True) -> bytes:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>").encode()


def _e(text: object) -> str:
    return html.escape(str(text))


def _dl(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def render(snap: NodeSnapshot, now: float) -> str:
    """The whole page for `snap` (HTML, everything escaped)."""
    g = glance(snap, now)
    colour = {"using": "--using", "ready": "--ready", "not-using": "--not-using",
              "error": "--error"}.get(g.state, "--off")
    running = snap.state is NodeState.RUNNING
    actions = ""
    if running:
        on = "0" if snap.participating else "1"
        label = "Stop lending this computer" if snap.participating else \
            "Lend this computer to the network"
        actions = (f'<form method="post" action="/api/participate"><input type="hidden" '
                   f'name="on" value="{on}"><button class="primary" type="submit">'
                   f"{_e(label)}</button></form>")
        if snap.is_paused(now):
            actions += ('<form method="post" action="/api/resume"><button type="submit">'
                        "Resume now</button></form>")
        elif snap.participating:
            actions += "".join(
                f'<form method="post" action="/api/pause"><input type="hidden" name="for" '
                f'value="{_e(k)}"><button type="submit">Pause {_e(k)}</button></form>'
                for k in PAUSES)
    problems = ("".join(f'<p class="problem">{_e(p)}</p>' for p in g.problems)
                or f"<p>{_e(g.all_well)}</p>")
    body = [
        f"<header><h1 style=\"color: var({colour})\">{_e(g.headline)}</h1>"
        f'<div class="why">{_e(g.why)}</div>{actions}</header>',
        '<div class="grid">',
        f"<section><h2>How much it uses now</h2>{_dl(list(g.usage))}</section>",
        "<section><h2>What it has done</h2>"
        + _dl([("Today", g.today), ("Past week", g.week), ("Work for", g.worked_for)])
        + "</section></div>",
        f"<section><h2>Anything wrong?</h2>{problems}</section>",
        f"<section><h2>Network</h2><p>{_e(g.network)}</p>{_villages(snap, now)}</section>",
        f"<section><h2>Credits</h2>{_credits(snap)}</section>",
        f"<section><h2>Limits</h2>{_limits(snap)}</section>",
        "<section><details><summary>Details</summary>"
        + _dl([("Name", g.name or "-"), ("Village id", snap.peer_id or "-"),
               ("Listening on", " ".join(snap.listen_addrs) or "-"),
               ("Running for", hz.duration(snap.uptime(now)) if snap.started_at else "-"),
               ("Compute tier", f"{snap.tier} ({snap.tier_reason})" if snap.tier else "-"),
               ("Hardware", snap.hardware or "-"), ("Version", snap.version or "-")])
        + "</details></section>",
        f"<footer>{_e(g.name)} · refreshed every {REFRESH_S} s · the same figures as "
        "the desktop dashboard, from the running node</footer>",
    ]
    return page(f"Grove — {g.name or 'village'}", "".join(body)).decode()


def _villages(snap: NodeSnapshot, now: float) -> str:
    rtt = {p.peer_id: p.rtt_ms for p in snap.peers}
    rows = sorted((v for v in live_villages(snap.villages, now) if v.peer_id != snap.peer_id),
                  key=lambda v: (v.peer_id not in rtt, v.name))
    if not rows:
        return "<p>No other village known yet.</p>"
    out = ["<table><tr><th>Village</th><th>Kind</th><th>Reach</th><th>Connected</th></tr>"]
    for v in rows[:50]:
        conn = (f"yes, {rtt[v.peer_id]:.1f} ms" if rtt.get(v.peer_id) is not None else "yes") \
            if v.peer_id in rtt else "no"
        out.append(f'<tr><td title="Village id: {_e(v.peer_id)}">{_e(v.name)}</td>'
                   f"<td>{_e(TIER_WORDS.get(v.tier, v.tier))}</td><td>{_e(v.reachability)}</td>"
                   f"<td>{_e(conn)}</td></tr>")
    return "".join(out) + "</table>"


def _credits(snap: NodeSnapshot) -> str:
    c = snap.credits
    if not c.running:
        return f"<p>{_e(hz.NOT_MEASURED)}: {_e(c.paused or 'the ledger is not open')}</p>"
    return _dl([("Balance", f"{hz.credits(c.balance)} verified"),
                ("Waiting for checks", hz.credits(c.pending)),
                ("Today", hz.credits(c.today)), ("This week", hz.credits(c.this_week))])


def _limits(snap: NodeSnapshot) -> str:
    s = snap.settings
    if s is None:
        return f"<p>{_e(hz.NOT_MEASURED)}</p>"
    return _dl([("Processor", f"up to {s.cpu_share} % of this computer"),
                ("Memory", f"up to {s.ram_cap_mb:,} MB"),
                ("Upload", hz.kbps(s.upload_kbps) if s.upload_kbps else "no limit"),
                ("Download", hz.kbps(s.download_kbps) if s.download_kbps else "no limit"),
                ("Graphics cards", "allowed" if s.use_gpu else "not used"),
                ("On battery", "paused" if s.pause_on_battery else "keeps running"),
                ("Schedule", s.schedule or "any time")])
