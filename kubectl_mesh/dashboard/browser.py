"""Opening the URL in the user's browser without ever holding the command up.

Python's `webbrowser` runs some browsers in the foreground (a console browser, or a
`BROWSER` command, is waited for), so it is called in a daemon thread: the dashboard serves
from the moment the URL is printed, whatever the browser does, and ends on its own signal.
"""

from __future__ import annotations

import threading
from typing import IO


def open_browser(url: str, stderr: IO[str]) -> threading.Thread:
    """Start opening `url`; a browser that cannot be found or started is said on stderr."""

    def run() -> None:
        import webbrowser

        try:
            opened = webbrowser.open(url)
        except Exception as e:  # noqa: BLE001 - whatever the browser does, the forward stays
            opened, why = False, f" ({e})"
        else:
            why = ""
        if not opened:
            _say(stderr, f"could not open a browser{why}; open {url} yourself "
                         "(--browser=false skips this)")

    thread = threading.Thread(target=run, name="kubectl-mesh-browser", daemon=True)
    thread.start()
    return thread


def _say(stderr: IO[str], line: str) -> None:
    try:
        stderr.write(line + "\n")
        stderr.flush()
    except (OSError, ValueError):
        pass
