"""How `kubectl mesh sync` reaches istiod: its xDS debug type first, as `istioctl
proxy-status` does, its HTTP debug endpoint as the fallback.

Per istiod pod, over the session's port-forward channels:
1. XDS on 15012: TLS verified against the `istio-ca-root-cert` ConfigMap (or --cert-dir,
   or not at all with --insecure) and a TokenRequest token (service account `default` of
   the istio namespace, audience istio-ca);
2. XDS on 15010 (plaintext) – with --plaintext, or when no token or root certificate could
   be had for 15012 (istiod answers debug types there only with
   ENABLE_DEBUG_ENDPOINT_AUTH=false);
3. HTTP `/debug/syncz` on 15014 (off where ENABLE_DEBUG_ON_HTTP=false: 404).
The first that answers is used for the whole run; falling back is said once on stderr, and
when nothing answers, one error names each way's failure (exit 5). `--verify` asks HTTP
first: only `/debug/syncz` lists the nonces sent, which its LAGGING check compares with the
Envoy's versions (the xDS `ClientConfig` has a status and a time per type, no nonce).
`--diff` asks for istiod's config dump on the way syncz answered: over XDS the debug type
`istio.io/debug/config_dump` (as `istioctl proxy-status <pod>`), HTTP
`/debug/config_dump` when syncz came over HTTP or the XDS dump failed (said once); when
neither gives it, one error names each failure (exit 5).

`--xds-address HOST:PORT` (an external or managed control plane, e.g. istiod outside the
cluster) skips pod discovery: one TCP connection there, TLS and token as for 15012 unless
--plaintext or --cert-dir; no HTTP fallback.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence

from kubectl_mesh.errors import (BadInputError, ForbiddenError, MeshError, NotFoundError,
                                 UnreachableError, UsageError)
from kubectl_mesh.sync import istiodxds as xds
from kubectl_mesh.sync.istiod import DEBUG_PORT, IstiodDebug
from kubectl_mesh.sync.options import ReachOptions
from kubectl_mesh.syncz import ProxySync


def split_address(address: str) -> tuple[str, int]:
    """`host:port` / `[v6]:port` → (host, port); UsageError otherwise."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--xds-address {address!r} is not HOST:PORT",
                         hint="e.g. --xds-address istiod.example.com:15012")
    return host, int(port)


@dataclass(frozen=True)
class ConfigDump:
    """What istiod would send a proxy (its config dump JSON), the way it was read (`XDS
    15012`, `HTTP 15014`) and, when that is HTTP, why XDS was not used."""

    config: dict
    via: str
    xds_failed: str = ""


class Istiod:
    """One istiod as the sync command uses it, whichever way it was reached: `proxies()`
    (syncz) and, for --diff, `config_dump()` (the way syncz answered on, HTTP 15014 as the
    fallback)."""

    def __init__(self, name: str, client, pod=None, channel_to=None, timeout=None,
                 first: list[ProxySync] | None = None, xds_failures: Sequence[str] = ()):
        self.name = name
        self.client = client  # IstiodXds or IstiodDebug
        self.pod = pod
        self._channel_to = channel_to
        self._timeout = timeout
        self._first = first  # the answer that proved this way works: the first poll's
        self._xds_failures = tuple(xds_failures)  # why XDS did not answer, if it did not
        self._lock = threading.Lock()
        self._http: IstiodDebug | None = client if isinstance(client, IstiodDebug) else None
        self._http_channel = None

    @property
    def via(self) -> str:
        return self.client.via

    def proxies(self, namespace: str | None = None) -> list[ProxySync]:
        with self._lock:
            first, self._first = self._first, None
        if first is not None and namespace is None:
            return first
        return _proxies(self.client, namespace)

    def config_dump(self, proxy_id: str) -> ConfigDump:
        """What istiod would send `proxy_id`: over XDS (`istio.io/debug/config_dump`) when
        syncz came that way, else (or when that fails) over HTTP 15014; NotFoundError when
        istiod has no connection from the proxy, one UnreachableError naming each way's
        failure when neither answers."""
        failures = list(self._xds_failures)
        if isinstance(self.client, xds.IstiodXds):
            try:
                dump = self.client.config_dump(proxy_id)
            except xds.XdsUnavailable as e:
                failures.append(f"{self.via}: {_one_line(e)}")
            else:
                if dump is None:
                    raise NotFoundError(f"istiod {self.client.where} has no connection from "
                                        f"proxy {proxy_id}",
                                        hint="it may have just reconnected to another istiod: "
                                             "run it again")
                return ConfigDump(dump, self.via)
        if self.pod is None:  # --xds-address: no pod to reach 15014 on
            raise UnreachableError(f"cannot read what {self.client.where} would send "
                                   f"{proxy_id}: {'; '.join(failures)}",
                                   hint="README: How sync reaches istiod")
        try:
            if self._http is None:
                self._http_channel = self._channel_to(self.pod, DEBUG_PORT)
                self._http = IstiodDebug(self.pod, self._http_channel, self._timeout)
            return ConfigDump(self._http.config_dump(proxy_id), self._http.via,
                              "; ".join(failures))
        except (UnreachableError, BadInputError) as e:
            failures.append(f"HTTP {DEBUG_PORT}: {_http_reason(e, self.pod)}")
            raise UnreachableError(f"cannot read what istiod {self.pod.ref} would send "
                                   f"{proxy_id}: {'; '.join(failures)}",
                                   hint="README: How sync reaches istiod") from e

    def close(self) -> None:
        for thing in (self._http, self._http_channel):
            if thing is not None and thing is not self.client:
                thing.close()
        self.client.close()


def _proxies(client, namespace: str | None) -> list[ProxySync]:
    try:
        return client.proxies(namespace)
    except xds.XdsUnavailable as e:
        raise UnreachableError(f"istiod {client.where}: {client.via}: {e}") from e


class _Credentials:
    """The token and root certificate for 15012, fetched once per run (lazily, thread-safe):
    either XdsCredentials or the reason there are none."""

    def __init__(self, api, namespace: str, revision: str | None, reach: ReachOptions):
        self._api, self._namespace, self._revision, self._reach = api, namespace, revision, reach
        self._lock = threading.Lock()
        self._done = False
        self._value: xds.XdsCredentials | None = None
        self._why = ""

    def get(self) -> tuple[xds.XdsCredentials | None, str]:
        with self._lock:
            if not self._done:
                self._value, self._why = self._make()
                self._done = True
            return self._value, self._why

    def _make(self) -> tuple[xds.XdsCredentials | None, str]:
        reach, name = self._reach, self._reach.authority or xds.server_name(self._namespace,
                                                                             self._revision)
        # The token and the root certificate are two API requests: both at once.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            token_f = None if reach.cert_dir else pool.submit(xds.request_token, self._api,
                                                               self._namespace)
            root_f = None if (reach.cert_dir or reach.insecure) else pool.submit(
                xds.root_certificate, self._api, self._namespace)
            token = root = None
            if token_f is not None:
                try:
                    token = token_f.result()
                except (MeshError, xds.XdsUnavailable) as e:
                    return None, f"no token for serviceaccount {self._namespace}/" \
                                 f"{xds.TOKEN_SERVICE_ACCOUNT} ({_one_line(e)})"
            if root_f is not None:
                try:
                    root = root_f.result()
                except MeshError as e:
                    return None, f"cannot read ConfigMap {self._namespace}/" \
                                 f"{xds.ROOT_CONFIGMAP} ({_one_line(e)})"
                if root is None and not reach.xds_address:
                    return None, f"no ConfigMap {self._namespace}/{xds.ROOT_CONFIGMAP} to " \
                                 "verify istiod's certificate with (--insecure skips the check)"
        try:
            tls = xds.tls_context(root, insecure=reach.insecure, cert_dir=reach.cert_dir)
        except (OSError, ValueError) as e:
            raise UsageError(f"--cert-dir {reach.cert_dir}: {e}",
                             hint="it holds root-cert.pem, cert-chain.pem and key.pem") from e
        if root is None and not reach.cert_dir and not reach.insecure:
            tls.load_default_certs()  # an external control plane with a public certificate
        return xds.XdsCredentials(tls, name, token), ""


def _one_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _reach_pod(pod, channel_to, creds: _Credentials, reach: ReachOptions, namespace: str,
               timeout, channels: list, notices, http_first: bool = False) -> Istiod:
    """The first way to `pod`'s sync state that answers (see the module docstring); with
    `http_first`, HTTP before XDS (--verify: only HTTP's syncz has the nonces that show a
    version lag)."""
    failures: list[str] = []

    def xds_ways() -> Iterator[Istiod]:
        ports = [xds.PLAINTEXT_PORT] if reach.plaintext else [xds.SECURE_PORT,
                                                               xds.PLAINTEXT_PORT]
        for port in ports:
            if port == xds.SECURE_PORT:
                # the forward opens while the token and root certificate are fetched
                with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                    opening = pool.submit(_channel, port, f"XDS {port}")
                    credentials, why = creds.get()
                    channel = opening.result()
                if credentials is None:
                    failures.append(f"XDS {port}: {why}")
                    continue
            elif not reach.plaintext and creds.get()[0] is not None:
                continue  # 15012 could be tried: 15010 would refuse the debug type anyway
            else:
                credentials = xds.XdsCredentials(None, None, None)
                channel = _channel(port, f"XDS {port}")
            if channel is None:
                continue
            client = xds.IstiodXds(pod.name, channel.connect, credentials, namespace, timeout,
                                   pod.ref)
            try:
                first = client.proxies()
            except xds.XdsUnavailable as e:
                seen = channel.errors()
                failures.append(f"XDS {port}: {seen[-1] if seen else e}")
                continue
            yield Istiod(pod.name, client, pod, channel_to, timeout, first)

    def http_way() -> Iterator[Istiod]:
        channel = _channel(DEBUG_PORT, f"HTTP {DEBUG_PORT}")
        if channel is None:
            return
        client = IstiodDebug(pod, channel, timeout)
        try:
            first = client.proxies()
        except MeshError as e:
            if isinstance(e, ForbiddenError):
                raise
            client.close()
            failures.append(f"HTTP {DEBUG_PORT}: {_http_reason(e, pod)}")
            return
        yield Istiod(pod.name, client, pod, channel_to, timeout, first,
                     [f for f in failures if f.startswith("XDS")])

    def _channel(port: int, label: str):
        try:
            channel = channel_to(pod, port)
        except ForbiddenError:
            raise  # RBAC on port-forward: the same for every port (exit 4)
        except MeshError as e:
            failures.append(f"{label}: {_one_line(e)}")
            return None
        channels.append(channel)
        return channel

    order = (http_way, xds_ways) if http_first else (xds_ways, http_way)
    for number, ways in enumerate(order):
        for istiod in ways():
            if number and http_first:
                notices.once("sync-http-fallback",
                             f"note: istiod's HTTP debug interface did not answer "
                             f"({'; '.join(failures)}); reading syncz over {istiod.via}, "
                             "which has no nonces: --verify cannot check LAGGING")
            elif number:
                notices.once("sync-xds-fallback",
                             f"note: istiod's XDS debug interface did not answer "
                             f"({'; '.join(failures)}); reading /debug/syncz over HTTP "
                             f"{DEBUG_PORT}")
            return istiod
    raise _unreachable(pod, failures)


def _http_reason(e: MeshError, pod) -> str:
    text = e.message.replace(f"istiod {pod.ref} ", "", 1)
    return text + " (ENABLE_DEBUG_ON_HTTP=false?)" if "answered 404" in text else text


def _unreachable(pod, failures: list[str]) -> UnreachableError:
    return UnreachableError(f"cannot read the sync state of istiod {pod.ref}: "
                            + "; ".join(failures),
                            hint="README: How sync reaches istiod")


@contextlib.contextmanager
def open_istiods(session, pods: Sequence, reach: ReachOptions, namespace: str,
                 revision: str | None, timeout: float | None,
                 http_first: bool = False) -> Iterator[list[Istiod]]:
    """Every istiod pod reached (in parallel), or the one at --xds-address; all channels are
    closed on exit. `http_first`: see `_reach_pod`."""
    channels: list = []
    istiods: list[Istiod] = []
    creds = _Credentials(session.api, namespace, revision, reach)
    try:
        if reach.xds_address:
            istiods.append(_reach_address(reach, creds, namespace, timeout))
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(pods))) as pool:
                futures = [pool.submit(_reach_pod, pod, session.channel, creds, reach,
                                       namespace, timeout, channels, session.notices,
                                       http_first) for pod in pods]
                errors = []
                for future in futures:  # wait for all, so the finally closes every channel
                    try:
                        istiods.append(future.result())
                    except Exception as e:  # noqa: BLE001 - the first is raised below
                        errors.append(e)
            if errors:
                raise errors[0]
        yield istiods
    finally:
        for istiod in istiods:
            istiod.close()
        for channel in channels:
            channel.close()


def _reach_address(reach: ReachOptions, creds: _Credentials, namespace: str,
                   timeout) -> Istiod:
    host, port = split_address(reach.xds_address)
    if reach.plaintext:
        credentials = xds.XdsCredentials(None, None, None)
    else:
        credentials, why = creds.get()
        if credentials is None:
            raise UnreachableError(f"cannot use --xds-address {reach.xds_address}: {why}",
                                   hint="--plaintext for a plaintext port (15010), --cert-dir "
                                        "for client certificates")
        if not reach.authority:
            credentials = xds.XdsCredentials(credentials.tls, host, credentials.token)

    def connect():
        return socket.create_connection((host, port), timeout=timeout)

    client = xds.IstiodXds(None, connect, credentials, namespace, timeout, reach.xds_address)
    client.via = f"XDS {reach.xds_address}"
    try:
        first = client.proxies()
    except xds.XdsUnavailable as e:
        raise UnreachableError(f"cannot read the sync state at --xds-address "
                               f"{reach.xds_address}: {e}",
                               hint="check the address, --plaintext/--insecure/--authority, "
                                    "and that this is istiod's xDS port") from e
    return Istiod(client.name, client, first=first)


def fetch_proxies(istiods: Sequence[Istiod]) -> dict[str, list[ProxySync]]:
    """{istiod name: the proxies it lists}, every istiod asked at once."""
    if len(istiods) == 1:
        return {istiods[0].name: istiods[0].proxies()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(istiods)) as pool:
        listed = list(pool.map(lambda i: i.proxies(), istiods))
    return {i.name: proxies for i, proxies in zip(istiods, listed)}
