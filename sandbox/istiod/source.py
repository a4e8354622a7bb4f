"""Where objects come from: a Kubernetes API (list + watch) or a multi-document YAML file.

Both call `on_change(objects)` with the full current object set after every change.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Callable

import requests
import requests.adapters
import requests.auth
import yaml

log = logging.getLogger("sandbox.istiod.source")

OnChange = Callable[[list], None]

# (kind, list path) of everything istiod reads.
KINDS = (
    ("Namespace", "/api/v1/namespaces"),
    ("Service", "/api/v1/services"),
    ("Pod", "/api/v1/pods"),
    ("VirtualService", "/apis/networking.istio.io/v1/virtualservices"),
    ("DestinationRule", "/apis/networking.istio.io/v1/destinationrules"),
    ("Gateway", "/apis/networking.istio.io/v1/gateways"),
    # the root certificate's ConfigMaps, which the namespace controller keeps as it wrote them
    # (pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go: a filtered client)
    ("ConfigMap", "/api/v1/configmaps?fieldSelector=metadata.name%3Distio-ca-root-cert"),
)
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_VERSIONS = {"Namespace": "v1", "Service": "v1", "Pod": "v1", "ConfigMap": "v1"}


class FileSource:
    """Objects from a multi-document YAML file, re-read when its mtime changes."""

    def __init__(self, path: str, on_change: OnChange, poll_interval: float = 0.2):
        self.path = path
        self._on_change = on_change
        self._interval = poll_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="istiod-file")

    def load(self) -> list[dict]:
        with open(self.path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != last:
                    objects = self.load()
                    last = mtime
                    log.info("loaded %d objects from %s", len(objects), self.path)
                    self._on_change(objects)
            except (OSError, yaml.YAMLError) as e:
                log.warning("cannot read %s: %s", self.path, e)
            self._stop.wait(self._interval)


class _CaAdapter(requests.adapters.HTTPAdapter):
    """Verifies TLS against in-memory CA data: no temporary CA file to leak."""

    def __init__(self, ca_pem: str):
        self._context = ssl.create_default_context(cadata=ca_pem)
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str | None = None
    ca_pem: str | None = None       # certificate-authority-data, decoded
    ca_file: str | None = None      # certificate-authority
    insecure: bool = False
    token_file: str | None = None   # read again for every request (a renewed token)

    @classmethod
    def load(cls, path: str) -> KubeConfig:
        """Server, CA and bearer token of the kubeconfig's current context."""
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}

        def named(section: str, name: str) -> dict:
            for item in config.get(section) or []:
                if item.get("name") == name:
                    return item.get(section[:-1]) or {}
            raise ValueError(f"{path}: no {section[:-1]} named {name!r}")

        context = named("contexts", config.get("current-context", ""))
        cluster = named("clusters", context.get("cluster", ""))
        user = named("users", context.get("user", "")) if context.get("user") else {}
        token = user.get("token")
        if not token and user.get("tokenFile"):
            with open(user["tokenFile"], encoding="utf-8") as f:
                token = f.read().strip()
        ca_data = cluster.get("certificate-authority-data")
        return cls(server=cluster["server"].rstrip("/"), token=token,
                   ca_pem=base64.b64decode(ca_data).decode() if ca_data else None,
                   ca_file=cluster.get("certificate-authority"),
                   insecure=bool(cluster.get("insecure-skip-tls-verify")))

    @classmethod
    def in_cluster(cls, environ=os.environ) -> KubeConfig:
        """The API server as a pod reaches it, as client-go's rest.InClusterConfig
        (staging/src/k8s.io/client-go/rest/config.go): https://$KUBERNETES_SERVICE_HOST:
        $KUBERNETES_SERVICE_PORT, the service account's token (re-read, as BearerTokenFile
        is) and ca.crt from /var/run/secrets/kubernetes.io/serviceaccount. A sandbox pod has
        no mount namespace: that directory is where $SANDBOX_MOUNTS maps it on the node."""
        host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ValueError("not in a cluster: KUBERNETES_SERVICE_HOST and "
                             "KUBERNETES_SERVICE_PORT must be set")
        mounts = json.loads(environ.get("SANDBOX_MOUNTS") or "{}")
        directory = mounts.get(SERVICE_ACCOUNT_DIR, SERVICE_ACCOUNT_DIR)
        token_file, ca_file = os.path.join(directory, "token"), os.path.join(directory, "ca.crt")
        if not os.path.exists(token_file):
            raise ValueError(f"not in a cluster: no service account token at {token_file}")
        host = f"[{host}]" if ":" in host else host
        return cls(server=f"https://{host}:{port}", token_file=token_file,
                   ca_file=ca_file if os.path.exists(ca_file) else None)

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of the server URL; None when the host is not an IP address (an
        Endpoint must be one)."""
        url = urllib.parse.urlsplit(self.server)
        try:
            ipaddress.ip_address(url.hostname or "")
        except ValueError:
            return None
        return url.hostname, url.port or (443 if url.scheme == "https" else 80)

    def session(self) -> requests.Session:
        session = requests.Session()
        if self.insecure:
            session.verify = False
        elif self.ca_pem and self.server.startswith("https://"):
            session.mount("https://", _CaAdapter(self.ca_pem))
        elif self.ca_file:
            session.verify = self.ca_file
        if self.token_file:
            session.auth = _TokenFileAuth(self.token_file)
        elif self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        return session


def advertised_address(config: KubeConfig) -> tuple[str, int] | None:
    """(IP, port) the API server advertises in discovery: `GET /api`'s
    serverAddressByClientCIDRs, its --advertise-address and secure port (k8s.io/apiserver
    pkg/server/config.go: DiscoveryAddresses from ExternalAddress; pkg/endpoints/discovery/
    legacy.go), the address its endpoint reconciler puts in the `kubernetes` Service's
    EndpointSlice. None when it advertises none (the API double) or does not answer."""
    try:
        response = config.session().get(config.server + "/api", timeout=10)
        entries = response.json().get("serverAddressByClientCIDRs") or [] \
            if response.status_code == 200 else []
    except (requests.RequestException, ValueError):
        return None
    for entry in entries:
        host, _, port = (entry.get("serverAddress") or "").rpartition(":")
        try:
            return str(ipaddress.ip_address(host.strip("[]"))), int(port)
        except ValueError:
            continue
    return None


class _TokenFileAuth(requests.auth.AuthBase):
    """A bearer token read from its file for each request: the kubelet renews a projected
    token in place (client-go's transport re-reads BearerTokenFile likewise)."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, request):
        with open(self.path, encoding="utf-8") as f:
            request.headers["Authorization"] = f"Bearer {f.read().strip()}"
        return request


class KubeSource:
    """LIST then WATCH each kind; relist after errors, 410 Gone or a closed watch."""

    def __init__(self, kubeconfig: KubeConfig, on_change: OnChange, backoff: float = 0.5):
        self._config = kubeconfig
        self._on_change = on_change
        self._backoff = backoff
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], dict]] = {kind: {} for kind, _ in KINDS}
        self._synced: set[str] = set()
        self._session = kubeconfig.session()
        self._threads = [threading.Thread(target=self._run, args=(kind, path), daemon=True,
                                          name=f"istiod-watch-{kind}") for kind, path in KINDS]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._session.close()

    @property
    def synced(self) -> bool:
        """True once every kind has been listed at least once (istiod's "ready")."""
        with self._lock:
            return len(self._synced) == len(KINDS)

    def _publish(self) -> None:
        with self._lock:
            if len(self._synced) < len(KINDS):
                return  # wait for a complete first view rather than pushing half a mesh
            objects = [o for by_key in self._objects.values() for o in by_key.values()]
        self._on_change(objects)

    def _run(self, kind: str, path: str) -> None:
        while not self._stop.is_set():
            try:
                version = self._list(kind, path)
                self._watch(kind, path, version)
            except (requests.RequestException, ValueError) as e:
                if self._stop.is_set():
                    return
                log.warning("%s list/watch failed: %s (relisting)", kind, e)
            self._stop.wait(self._backoff)

    def _list(self, kind: str, path: str) -> str:
        response = self._session.get(self._config.server + path, timeout=10)
        response.raise_for_status()
        body = response.json()
        items = {}
        for item in body.get("items") or []:
            # List items carry no kind/apiVersion; translation needs them.
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", API_VERSIONS.get(kind, "networking.istio.io/v1"))
            items[_key(item)] = item
        with self._lock:
            self._objects[kind] = items
            self._synced.add(kind)
        self._publish()
        return (body.get("metadata") or {}).get("resourceVersion", "")

    def _watch(self, kind: str, path: str, version: str) -> None:
        # timeoutSeconds: a silently dead connection would otherwise stall this kind forever.
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "300"}
        with self._session.get(self._config.server + path, params=params, stream=True,
                               timeout=(10, None)) as response:
            if response.status_code == 410:
                return
            response.raise_for_status()
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                kind_of_event = event.get("type")
                obj = event.get("object") or {}
                if kind_of_event == "ERROR":
                    log.info("%s watch error %s: relisting", kind, obj.get("message", obj))
                    return
                if kind_of_event not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # BOOKMARK
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", API_VERSIONS.get(kind, "networking.istio.io/v1"))
                with self._lock:
                    if kind_of_event == "DELETED":
                        self._objects[kind].pop(_key(obj), None)
                    else:
                        self._objects[kind][_key(obj)] = obj
                self._publish()


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")
