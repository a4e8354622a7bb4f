"""exec, attach and port-forward for the API double, over WebSocket and SPDY/3.1 (server side).

The pod runtime calls these from `on_pod_subresource`; each returns when the connection ends.
"""

from .portforward import serve_portforward
from .remotecommand import serve_attach, serve_exec
from .status import StreamError

__all__ = ["StreamError", "serve_attach", "serve_exec", "serve_portforward"]
