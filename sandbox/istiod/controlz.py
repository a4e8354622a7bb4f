"""istiod's ControlZ (port 9876): the introspection pages `istioctl dashboard controlz` opens.

Imitated from istio pkg/ctrlz: `Run` serves the home page (templates/home.html in the layout
of templates/layouts/main.html, title "Istio ControlZ", a sidebar of the core topics from
`getTopics`: `<a href="/<prefix>z/">Title</a>`; the page title `ControlZ / <title>` from
templates/layouts/base.html) and one page per topic; the topics and their
order are `coreTopics` (ctrlz.go) with each topic's Title()/Prefix() (pkg/ctrlz/topics).
Here each topic page holds the little the sandbox knows; unknown paths are Go's 404.
"""

from __future__ import annotations

import html
import logging
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler

from sandbox.httpserver import BackgroundHTTPServer

log = logging.getLogger("sandbox.istiod.controlz")

CONTROLZ_PORT = 9876  # pkg/ctrlz/options.go DefaultControlZPort
# (title, prefix) of coreTopics, in their order.
TOPICS = (("Logging Scopes", "scope"), ("Memory Usage", "mem"),
          ("Environment Variables", "env"), ("Process Info", "proc"),
          ("Command-Line Arguments", "arg"), ("Version Info", "version"), ("Signals", "signal"))


def _page(title: str, content: str) -> bytes:
    sidebar = "\n".join(f'<li>\n<a href="/{prefix}z/">{html.escape(name)}</a>\n</li>'
                        for name, prefix in TOPICS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>ControlZ / {html.escape(title)}</title></head>
<body>
<main>
<nav class="sidebar"><div class="card">
<div class="card-header" id="header"><div>ControlZ</div></div>
<div class="card-body"><ul class="tree">
{sidebar}
</ul></div></div></nav>
<main aria-labelledby="title"><h1 id="title">{html.escape(title)}</h1>
{content}
</main>
</main>
</body>
</html>
""".encode()


def _home() -> bytes:
    rows = (("Process Name", "sandbox.istiod"),
            ("Hostname", socket.gethostname()), ("Process ID", str(os.getpid())))
    table = "\n".join(f"<tr><td>{k}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return _page("Istio ControlZ", "<p>\n    Make a selection in the left sidebar to inspect "
                 "&amp; control aspects of this process.\n</p>\n<table><tbody>\n"
                 f"{table}\n</tbody></table>")


def _topic(title: str) -> bytes:
    if title == "Command-Line Arguments":
        # pkg/ctrlz/topics/assets/templates/args.html: a row per argument, its index and value
        rows = "".join(f"<tr>\n<td>{i}</td>\n<td>{html.escape(a)}</td>\n</tr>\n"
                       for i, a in enumerate(sys.argv))
        body = ("<p>\n    The set of command-line arguments used when starting this process.\n"
                "</p>\n<table>\n<thead>\n<tr>\n<th>Index</th>\n<th>Value</th>\n</tr>\n</thead>\n"
                f"<tbody>\n{rows}</tbody>\n</table>")
    else:
        body = "<p>(not imitated by the sandbox)</p>"
    return _page(title, body)


class ControlZServer:
    """The ControlZ HTTP server of the sandbox istiod, on its own thread."""

    def __init__(self, address: tuple[str, int]):
        self.httpd = BackgroundHTTPServer(address, _Handler, name="controlz")

    def start(self) -> None:
        self.httpd.start()

    def stop(self) -> None:
        self.httpd.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self):  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        titles = {f"/{prefix}z/": name for name, prefix in TOPICS}
        if path == "/":
            self._send(200, _home(), "text/html; charset=utf-8")
        elif path in titles or path.rstrip("/") + "/" in titles:
            self._send(200, _topic(titles[path.rstrip("/") + "/"]), "text/html; charset=utf-8")
        else:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:
            pass
