"""The ADS server (SotW, gRPC) and the per-proxy, per-type sync state syncz reports.

Sync state follows istiod: per type the nonce sent, the nonce ACKed, the send time and the
last NACK message. A NACK leaves "acked" at the last good nonce; the next good ACK clears the
error. Requests carrying a nonce other than the last one sent are stale and ignored (Envoy
re-subscribes to EDS with an old nonce when CDS and EDS change together).

Versions follow istiod too. Every config change makes a new global push version
(`DiscoveryServer.NextVersion`, pilot/pkg/xds/discovery.go: `<RFC 3339 time>/<counter>`).
Each push event first records that version as the proxy's `LastPushContext` – whether or not
the proxy then gets anything (`pushConnection` calls `computeProxyState` before
`ProxyNeedsPush`, pilot/pkg/xds/ads.go) – and every response carries the version of the push
that sent it as `version_info` and as the prefix of its nonce (`pushXds`,
pilot/pkg/xds/xdsgen.go: `VersionInfo: PushVersion, Nonce: nonce(PushVersion)`; `nonce()` in
discovery.go appends a UUID). A type whose content did not change for this proxy is not sent
(this double's stand-in for `ProxyNeedsPush` and `cdsNeedsPush`/`ldsNeedsPush`/`rdsNeedsPush`,
which skip RDS on most pushes): so Envoy's per-type versions trail the global one, and differ
between types.

Both ADS methods are served: `StreamAggregatedResources` (SotW) and `DeltaAggregatedResources`
(Delta xDS, what real proxies use: `ISTIO_DELTA_XDS` defaults to true). The delta stream follows
pilot/pkg/xds/delta.go: `shouldRespondDelta` (a NACK only records its message; a stale nonce is
ignored; an ACK records the nonce and clears the error; a request that changes the subscription
is answered with the newly subscribed resources only), `pushDeltaXds` (every response carries
the push version as `system_version_info` and `nonce(PushVersion)`; a pushed type is sent whole,
as istiod's LDS/RDS generators and its full CDS/EDS pushes do, each resource named and without
a version, and `removed_resources` lists what was watched but is no longer generated),
`forceEDSPush` after a CDS request, and `sendDelta` records the nonce and send time for syncz as
SotW does. Not imitated: istiod's incremental CDS (`BuildDeltaClusters`, when only Services or
DestinationRules changed) and EDS (endpoint-only pushes) send just the changed resources; this
double resends the type, which an Envoy applies the same way (unchanged resources are skipped).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import grpc
from google.protobuf import json_format
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.status.v3 import csds_pb2

from sandbox.istiod import faults, resources, statusgen, translate
from sandbox.istiod.mesh import Mesh
from sandbox.istiod.proxy import BadNodeId, Proxy
from sandbox.istiod.security import AuthenticationError, Identity

log = logging.getLogger("sandbox.istiod.ads")

ISTIOD_VERSION = "1.28.0-sandbox"


@dataclass(frozen=True)
class PushContext:
    """One config snapshot and the global push version it was made under (istiod's
    `model.PushContext` and its `PushVersion`)."""

    version: str
    mesh: Mesh


@dataclass
class WatchedResource:
    """What one proxy subscribed to for one type URL, and where its sync stands."""

    type_url: str
    # on a delta stream, CDS/LDS (wildcard types) keep here the names last sent
    # (`newResourceNames` in pushDeltaXds), EDS/RDS the names subscribed
    names: list[str] = field(default_factory=list)
    names_sent: list[str] | None = None
    nonce_sent: str = ""
    version_sent: str = ""  # the push version the last response carried
    content_sent: str = ""  # a hash of what it held: an unchanged type is not pushed again
    sent_time: datetime | None = None
    nonce_acked: str = ""
    last_error: str = ""


@dataclass
class Connection:
    """One ADS stream. Only its stream thread writes; debug readers take `lock`."""

    id: str
    peer: str
    connected_at: datetime
    events: queue.Queue = field(default_factory=queue.Queue, repr=False)
    proxy: Proxy | None = None
    # istiod's proxy.LastPushContext: the newest push this stream has processed, sent
    # anything or not. Responses and `/debug/config_dump` are generated from it.
    push: PushContext | None = None
    watched: dict[str, WatchedResource] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    identity: Identity | None = None  # verified on the TLS port (con.proxy.VerifiedIdentity)
    delta: bool = False  # a DeltaAggregatedResources stream

    def watched_copy(self) -> dict[str, WatchedResource]:
        with self.lock:
            return {k: WatchedResource(**vars(v)) for k, v in self.watched.items()}


def _envoy_version(node) -> str:
    build = node.user_agent_build_version.version
    if build.major_number or build.minor_number:
        return f"{build.major_number}.{build.minor_number}.{build.patch}"
    return ""


def _metadata(node) -> dict:
    return json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}


class StreamRefused(Exception):
    """End the stream with a gRPC status (istiod returns `status.Error(code, msg)`)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def _hostname() -> str:
    """Go's os.Hostname() in a pod is the pod name; sandbox pods share the host's UTS
    namespace, so the runtime passes the pod name as $HOSTNAME, as container runtimes do."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


class AdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Serves the current Mesh to every connected proxy and pushes when it changes."""

    def __init__(self, mesh: Mesh | None = None, identifier: str | None = None,
                 authenticator=None, debug_access: statusgen.DebugAccess | None = None):
        """`authenticator` reviews the callers of the TLS port (None: they stay anonymous);
        `debug_access` says who may ask the debug types."""
        self._authenticator = authenticator
        self.debug_access = debug_access or statusgen.DebugAccess()
        self._lock = threading.Lock()
        self._connections: dict[str, Connection] = {}
        # proxy id → the connection a `half-open` fault left behind, listed until it heals
        # (or, once its pod is gone, until keepalive would have noticed: faults.GHOST_TTL)
        self._ghosts: dict[str, Connection] = {}
        self._orphaned: dict[str, float] = {}  # proxy id → when its ghost's pod disappeared
        self._ids = itertools.count(1)
        self._packer = resources.Packer()
        self._push_counter = itertools.count(1)
        self._global_push = PushContext(self._next_version(), mesh or Mesh())
        # what istiod puts in control_plane.identifier of its debug syncz answers
        self._identifier = json.dumps({"Component": "istiod",
                                       "ID": identifier or _hostname(),
                                       "Info": {"version": ISTIOD_VERSION}})

    @property
    def mesh(self) -> Mesh:
        with self._lock:
            return self._global_push.mesh

    @property
    def push_version(self) -> str:
        """The global push version (istiod's `globalPushContext().PushVersion`)."""
        with self._lock:
            return self._global_push.version

    def _next_version(self) -> str:
        """istiod's `NextVersion()`: `time.Now().Format(time.RFC3339) + "/" + counter`."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{now}/{next(self._push_counter)}"

    def set_mesh(self, mesh: Mesh) -> None:
        """Replace the snapshot, under a new global push version, and push to every
        connected proxy."""
        with self._lock:
            self._global_push = push = PushContext(self._next_version(), mesh)
            connections = list(self._connections.values())
            # A healed half-open connection is noticed and forgotten; one whose pod is gone
            # lingers until keepalive would notice.
            for proxy_id, ghost in list(self._ghosts.items()):
                if mesh.pod(ghost.proxy.name, ghost.proxy.namespace) is None:
                    self._orphaned.setdefault(proxy_id, time.monotonic())
                elif faults.fault_of(mesh, ghost.proxy.name, ghost.proxy.namespace) != \
                        faults.HALF_OPEN:
                    del self._ghosts[proxy_id]
                    self._orphaned.pop(proxy_id, None)
        for conn in connections:
            conn.events.put(("push", push))

    def connections(self) -> list[Connection]:
        """Connected proxies that identified themselves (and half-open leftovers), sorted by
        proxy id."""
        with self._lock:
            conns = [c for c in self._connections.values() if c.proxy is not None]
            live = {c.proxy.id for c in conns}
            now = time.monotonic()
            for proxy_id, since in list(self._orphaned.items()):
                if now - since > faults.GHOST_TTL:
                    self._ghosts.pop(proxy_id, None)
                    del self._orphaned[proxy_id]
            conns += [g for proxy_id, g in self._ghosts.items() if proxy_id not in live]
        return sorted(conns, key=lambda c: (c.proxy.id, c.id))

    def connection_for(self, proxy_id: str) -> Connection | None:
        return next((c for c in reversed(self.connections()) if c.proxy.id == proxy_id), None)

    # -- the gRPC method -------------------------------------------------------------------

    def StreamAggregatedResources(self, request_iterator, context) -> Iterator:
        return self._stream(request_iterator, context, delta=False)

    def DeltaAggregatedResources(self, request_iterator, context) -> Iterator:
        """`StreamDeltas` (pilot/pkg/xds/delta.go): the same authentication, connection
        bookkeeping and push events as the SotW stream; requests and responses are delta."""
        return self._stream(request_iterator, context, delta=True)

    def _stream(self, request_iterator, context, delta: bool) -> Iterator:
        conn = Connection(id=f"{context.peer()}-{next(self._ids)}", peer=context.peer(),
                          connected_at=datetime.now(timezone.utc), delta=delta)
        if self._secure(context) and self._authenticator is not None:
            # authenticate() in pilot/pkg/xds/auth.go, before the stream is read
            try:
                conn.identity = self._authenticator.authenticate(context.invocation_metadata())
            except AuthenticationError as e:
                log.info("ADS stream from %s refused: %s", conn.peer, e)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, f"authentication failure: {e}")
            except Exception as e:  # the API server unreachable: the same answer
                log.warning("token review for %s failed: %s", conn.peer, e)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, f"authentication failure: {e}")
        context.add_callback(lambda: conn.events.put(("closed", None)))
        threading.Thread(target=self._read, args=(request_iterator, conn), daemon=True,
                         name=f"ads-read-{conn.id}").start()
        with self._lock:
            # initConnection (ads.go) sets LastPushContext to the global push context; every
            # later change reaches this stream as a push event.
            conn.push = self._global_push
            self._connections[conn.id] = conn
        try:
            while True:
                kind, request = conn.events.get()
                if kind == "closed":
                    return
                try:
                    if kind == "push":
                        responses = self._on_push(conn, request)
                    elif delta:
                        responses = self._on_delta_request(conn, request)
                    else:
                        responses = self._on_request(conn, request)
                except BadNodeId as e:
                    log.warning("closing stream %s: %s", conn.peer, e)
                    return
                except StreamRefused as e:
                    log.info("ADS stream %s refused: %s", conn.peer, e)
                    context.abort(e.code, str(e))
                except Exception:  # never let one bad request or push kill the stream
                    log.exception("ADS error for %s", conn.proxy.id if conn.proxy else conn.peer)
                    continue
                if self._half_open(conn):
                    context.abort(grpc.StatusCode.UNAVAILABLE,
                                  "sandbox fault: connection dropped on the proxy's side")
                yield from responses
        finally:
            with self._lock:
                self._connections.pop(conn.id, None)
            log.info("ADS stream closed: %s", conn.proxy.id if conn.proxy else conn.peer)

    @staticmethod
    def _secure(context) -> bool:
        """Whether the stream came in over TLS (the 15012 port)."""
        kind = context.auth_context().get("transport_security_type") or []
        return b"ssl" in kind

    def _half_open(self, conn: Connection) -> bool:
        """Whether a `half-open` fault applies to `conn`'s proxy; if so, the first of its
        connections to hit it stays listed as a ghost. A healthy connection replaces one."""
        if conn.proxy is None:
            return False
        fault = faults.fault_of(self.mesh, conn.proxy.name, conn.proxy.namespace)
        with self._lock:
            if fault != faults.HALF_OPEN:
                self._ghosts.pop(conn.proxy.id, None)
                self._orphaned.pop(conn.proxy.id, None)
                return False
            self._ghosts.setdefault(conn.proxy.id, conn)
        log.info("sandbox fault half-open: dropping the stream of %s", conn.proxy.id)
        return True

    @staticmethod
    def _read(request_iterator, conn: Connection) -> None:
        try:
            for request in request_iterator:
                conn.events.put(("request", request))
        except Exception as e:  # stream cancelled or broken: the generator ends the stream
            log.debug("ADS read ended for %s: %s", conn.peer, e)
        finally:
            conn.events.put(("closed", None))

    # -- request handling --------------------------------------------------------------------

    def _identify(self, conn: Connection, request) -> None:
        """initConnection: the first request's node names the proxy."""
        if conn.proxy is None:
            proxy = Proxy.from_node_id(request.node.id, _metadata(request.node),
                                       _envoy_version(request.node))
            self._authorize(proxy, conn.identity)
            conn.proxy = proxy
            log.info("ADS %sstream from %s (%s)", "delta " if conn.delta else "",
                     conn.proxy.id, conn.peer)

    def _on_request(self, conn: Connection, request) -> list:
        self._identify(conn, request)
        type_url = request.type_url
        names = list(request.resource_names)
        if type_url.startswith(statusgen.DEBUG_TYPE_PREFIX):
            return [self._debug_response(conn, type_url, names)]
        watched = conn.watched.get(type_url)
        if request.response_nonce and watched is not None:
            if request.response_nonce != watched.nonce_sent:
                log.debug("%s: stale nonce for %s ignored", conn.proxy.id, type_url)
                return []
            with conn.lock:
                watched.names = names
                if request.HasField("error_detail"):
                    watched.last_error = request.error_detail.message
                    log.warning("%s NACK %s: %s", conn.proxy.id, translate.SHORT_NAMES.get(
                        type_url, type_url), request.error_detail.message)
                    return []
                watched.nonce_acked = request.response_nonce
                watched.last_error = ""
            # An ACK that names other resources than we answered is a subscription change.
            if (type_url in translate.NAMED_TYPES
                    and sorted(names) != sorted(watched.names_sent or [])):
                return [r for r in [self._respond(conn, watched, force=True)] if r]
            return []
        # A new subscription (or a new stream resuming with its old version): always answer.
        with conn.lock:
            watched = conn.watched.setdefault(type_url, WatchedResource(type_url))
            watched.names = names
        return [r for r in [self._respond(conn, watched, force=True)] if r]

    def _on_delta_request(self, conn: Connection, request) -> list:
        """`processDeltaRequest` and `shouldRespondDelta` (pilot/pkg/xds/delta.go)."""
        self._identify(conn, request)
        type_url = request.type_url
        if type_url.startswith(statusgen.DEBUG_TYPE_PREFIX):
            return [self._debug_response(conn, type_url, list(request.resource_names_subscribe))]
        short = translate.SHORT_NAMES.get(type_url, type_url)
        watched = conn.watched.get(type_url)
        if request.HasField("error_detail"):
            # checked before the nonce: any NACK records its message, "acked" stays put
            if watched is not None:
                with conn.lock:
                    watched.last_error = request.error_detail.message
            log.warning("%s NACK %s: %s", conn.proxy.id, short, request.error_detail.message)
            return []
        subscribed = _delta_subscribed(request)
        if watched is None:
            # INIT (or RECONNECT with initial_resource_versions): always answer
            names, _ = _delta_watched(set(), request)
            with conn.lock:
                watched = conn.watched[type_url] = WatchedResource(type_url, names=sorted(names))
        else:
            if request.response_nonce and request.response_nonce != watched.nonce_sent:
                log.debug("%s: stale nonce for %s ignored", conn.proxy.id, short)
                return []
            with conn.lock:
                names, changed = _delta_watched(set(watched.names), request)
                watched.names = sorted(names)
                if request.response_nonce:  # an ACK; a spontaneous request only resubscribes
                    watched.nonce_acked = request.response_nonce
                    watched.last_error = ""
            if not changed:
                return []
        # A request names what it adds (`PushRequest.Delta`); `pushDeltaXds` answers with
        # those resources only, and with nothing for EDS/RDS when it only unsubscribes
        # (removal is the parent's business). An empty Delta answers the whole watch.
        unsubscribed = set(request.resource_names_unsubscribe) - {"*"}
        delta = subscribed if subscribed or unsubscribed else None
        responses = [r for r in [self._respond(conn, watched, force=True,
                                               subscribed=delta)] if r]
        if type_url == resources.CLUSTER_TYPE:
            # forceEDSPush: after any CDS request istiod sends EDS too, so that clusters
            # never stay warming (a delta Envoy need not ask for EDS again)
            endpoints = conn.watched.get(translate.ENDPOINT_TYPE)
            if endpoints is not None:
                responses += [r for r in [self._respond(conn, endpoints, force=True)] if r]
        return responses

    @staticmethod
    def _authorize(proxy: Proxy, identity: Identity | None) -> None:
        """`authorize`/`checkConnectionIdentity` (pilot/pkg/xds/auth.go): a verified caller
        must be the namespace (and service account, if the node names one) it claims."""
        if identity is None:
            return
        if proxy.config_namespace != identity.namespace or (
                proxy.service_account and proxy.service_account != identity.service_account):
            raise StreamRefused(grpc.StatusCode.PERMISSION_DENIED,
                                f"authorization failed: no identities ([{identity.spiffe}]) "
                                f"matched {proxy.config_namespace}/{proxy.service_account}")

    def _debug_response(self, conn: Connection, type_url: str, names: list[str]):
        """A debug type's answer (StatusGen), under the current push version."""
        try:
            packed = statusgen.generate(type_url, self.connections(),
                                        conn.identity.namespace if conn.identity else None,
                                        self.debug_access, names)
        except statusgen.Unauthenticated as e:
            log.warning("proxy %s is not authorized to receive debug info. Ensure you are "
                        "connecting over TLS port and are authenticated.", conn.proxy.id)
            raise StreamRefused(grpc.StatusCode.UNAUTHENTICATED, str(e)) from e
        version = self.push_version
        control_plane = base_pb2.ControlPlane(identifier=self._identifier)
        if conn.delta:
            # syncz resources are named by proxy id (statusgen.go `debugSyncz`)
            return discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=version, type_url=type_url,
                nonce=version + str(uuid.uuid4()), control_plane=control_plane,
                resources=[discovery_pb2.Resource(name=_debug_name(type_url, a), resource=a)
                           for a in packed])
        return discovery_pb2.DiscoveryResponse(
            version_info=version, resources=packed, type_url=type_url,
            nonce=version + str(uuid.uuid4()), control_plane=control_plane)

    def _on_push(self, conn: Connection, push: PushContext) -> list:
        with conn.lock:  # computeProxyState: the proxy's LastPushContext moves on regardless
            conn.push = push
        if conn.proxy is None:
            return []
        if faults.fault_of(self.mesh, conn.proxy.name, conn.proxy.namespace) == \
                faults.LOSE_PUSHES:
            lost = self._push(conn)
            with conn.lock:  # istiod believes they arrived and were ACKed
                for watched in conn.watched.values():
                    watched.nonce_acked = watched.nonce_sent
            log.info("sandbox fault lose-pushes: %d response(s) to %s lost", len(lost),
                     conn.proxy.id)
            return []
        return self._push(conn)

    def _push(self, conn: Connection) -> list:
        responses = []
        force = False
        for type_url in translate.PUSH_ORDER:
            watched = conn.watched.get(type_url)
            if watched is not None:
                try:
                    response = self._respond(conn, watched, force=force)
                except Exception:
                    log.exception("push of %s to %s failed", type_url, conn.proxy.id)
                    continue
                if response is not None:
                    responses.append(response)
                # An updated cluster warms until it gets an EDS response, even an unchanged
                # one; an updated listener likewise wants its routes: like istiod's full push,
                # resend the dependent type (same version, new nonce).
                force = response is not None and type_url in (resources.CLUSTER_TYPE,
                                                              resources.LISTENER_TYPE)
        return responses

    def _respond(self, conn: Connection, watched: WatchedResource, force: bool,
                 subscribed: set[str] | None = None):
        """A response for `watched` if its content changed (or `force`), under the push
        version the connection last processed (a subscription change is answered from
        `LastPushContext` too: `shouldRespond` in ads.go). On a delta stream, `subscribed`
        limits the answer to newly subscribed names."""
        push = conn.push  # only this stream's thread replaces it
        named = watched.type_url in translate.NAMED_TYPES
        if watched.type_url not in resources.MESSAGES:
            if not force:
                return None
            content = []  # unknown types (e.g. ECDS if ever subscribed): answer empty
        elif conn.delta and named and (not watched.names or subscribed == set()):
            return None  # EDS/RDS generate nothing for no names: istiod sends no response
        else:
            mesh = push.mesh
            proxy = conn.proxy.with_pod(mesh)
            # a delta stream's wildcard types keep the names sent in `names`: generate all
            names = watched.names if named or not conn.delta else []
            content = translate.for_subscription(mesh, proxy, watched.type_url, names)
        named_content = [(translate.resource_name(watched.type_url, r),
                          self._packer.to_any(watched.type_url, r)) for r in content]
        packed = [a for _, a in named_content]
        digest = resources.digest_of(packed)
        if not force and digest == watched.content_sent:
            return None
        version = push.version
        nonce = version + str(uuid.uuid4())  # istiod's nonce(PushVersion)
        if conn.delta:
            return self._delta_response(conn, watched, named_content, digest, version, nonce,
                                        subscribed)
        with conn.lock:
            watched.nonce_sent = nonce
            watched.version_sent = version
            watched.content_sent = digest
            watched.sent_time = datetime.now(timezone.utc)
            watched.names_sent = list(watched.names)
        log.debug("push %s to %s: version %s nonce %s (%d resources)",
                  translate.SHORT_NAMES.get(watched.type_url), conn.proxy.id, version, nonce,
                  len(packed))
        # no control_plane: istiod names itself only on its debug syncz answers
        # (pilot/pkg/xds/xdsgen.go `ControlPlane(typ)`: nil for every other type), so a
        # real Envoy's control_plane.identifier stays empty
        return discovery_pb2.DiscoveryResponse(
            version_info=version, resources=packed, type_url=watched.type_url, nonce=nonce)

    @staticmethod
    def _delta_response(conn: Connection, watched: WatchedResource, named_content: list,
                        digest: str, version: str, nonce: str, subscribed: set[str] | None):
        """`pushDeltaXds`: the generated resources (only the newly `subscribed` ones when a
        request added names), `removed_resources` = the watched names not generated, and the
        watch's names afterwards: for wildcard types (CDS, LDS) the names just sent
        (`shouldSetWatchedResources`), for EDS/RDS unchanged. Resources carry no version:
        istiod's generators leave `discovery.Resource.Version` empty
        (pilot/pkg/networking/core/cluster.go, pilot/pkg/xds/lds.go, httproute.go, eds.go)."""
        base = set(watched.names)
        if subscribed is not None:
            base = set(subscribed)
            if watched.type_url in translate.NAMED_TYPES:
                named_content = [(n, a) for n, a in named_content if n in subscribed]
        removed = base - {n for n, _ in named_content}
        with conn.lock:
            watched.nonce_sent = nonce
            watched.version_sent = version
            if subscribed is None:
                watched.content_sent = digest
            watched.sent_time = datetime.now(timezone.utc)
            if watched.type_url not in translate.NAMED_TYPES:
                # pushDeltaXds sets newResourceNames from what it generated (when the answer
                # is for a subscription, the resources generated are all of the type anyway)
                watched.names = sorted(n for n, _ in named_content)
            watched.names_sent = list(watched.names)
        log.debug("delta push %s to %s: version %s nonce %s (%d resources, %d removed)",
                  translate.SHORT_NAMES.get(watched.type_url), conn.proxy.id, version, nonce,
                  len(named_content), len(removed))
        return discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=version, type_url=watched.type_url, nonce=nonce,
            resources=[discovery_pb2.Resource(name=n, resource=a) for n, a in named_content],
            removed_resources=sorted(removed))


def _delta_subscribed(request) -> set[str]:
    """`PushRequest.Delta.Subscribed`: the names this request subscribes (or, on reconnect,
    says it holds), without the wildcard `*`."""
    return (set(request.resource_names_subscribe) | set(request.initial_resource_versions)) \
        - {"*"}


def _delta_watched(existing: set[str], request) -> tuple[set[str], bool]:
    """`deltaWatchedResources` (delta.go): the watched names after `request` (without the
    wildcard `*`) and whether they changed."""
    names = set(existing)
    changed = False
    for name in list(request.resource_names_subscribe) + list(request.initial_resource_versions):
        if name not in names:
            names.add(name)
            changed = True
    for name in request.resource_names_unsubscribe:
        if name in names:
            names.discard(name)
            changed = True
    names.discard("*")
    return names, changed


def _debug_name(type_url: str, packed) -> str:
    """A debug resource's name on a delta stream: the proxy id for syncz, else none."""
    if type_url != statusgen.SYNCZ_TYPE:
        return ""
    config = csds_pb2.ClientConfig()
    packed.Unpack(config)
    return config.node.id


def serve(server, ads: AdsServer) -> None:
    """Register `ads` on a grpc.Server."""
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)

