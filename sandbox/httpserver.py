"""One threaded HTTP server on a thread of its own, for every server the sandbox runs in-process
(the API double, the kubelet API, the injection webhook, istiod's debug and ControlZ ports):
`start()` serves, `stop()` shuts the loop down, closes the listening socket and joins the
thread; with `tls` each accepted connection is wrapped, its handshake left to the handler's
thread (a slow or failing client cannot hold up accept). Replies go out without Nagle's wait."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading


class BackgroundHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler, *, name: str,
                 tls: ssl.SSLContext | None = None):
        super().__init__(address, handler)
        self._tls = tls
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name=name)

    def get_request(self):
        sock, addr = super().get_request()
        # Small replies must not wait for the client's delayed ACK (Nagle): ~40 ms each.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is None:
            return sock, addr
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        pass  # a client that went away or failed the handshake is just dropped

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent; a server never started only closes its socket (shutdown() would wait
        for a loop that never ran)."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(5)
        self.server_close()


def server_context(cert: str, key: str, *, client_ca: str | None = None) -> ssl.SSLContext:
    """A TLS server context with this certificate; with `client_ca`, clients must present a
    certificate from that CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
