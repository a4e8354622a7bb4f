"""Pod volumes as a kubelet sets them up, in the pod's directory on the node:
`<state>/pods/<namespace>/<pod>/volumes/<volume>/`.

Kinds (pkg/volume/*): `emptyDir` (an empty directory), `configMap` and `secret` (one file per
key, or the `items` chosen, at their `path`; a missing object is an error unless `optional`),
`downwardAPI` (metadata.name, namespace, uid, labels and annotations by `fieldRef`), and
`projected`, whose `serviceAccountToken` source is a token of the pod's service account from
the TokenRequest API, bound to the pod (boundObjectRef), for the source's `audience` and
`expirationSeconds` (default 3600 s; pkg/volume/projected/projected.go `collectData`), renewed
once 80 % of its lifetime has passed (pkg/kubelet/token/token_manager.go `requiresRefresh`).
Files are written atomically (a new file renamed over the old), as the kubelet's
AtomicWriter does.

Pods are processes without a mount namespace: a container finds its volumes through the
environment, `SANDBOX_VOLUMES` (the pod's volumes directory) and `SANDBOX_MOUNTS` (JSON:
mountPath → directory on the node)."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import threading
import time
import urllib.parse

from .client import ApiStatus, NodeClient

DEFAULT_TOKEN_SECONDS = 3600
REFRESH_FRACTION = 0.8


class VolumeError(RuntimeError):
    """A volume that cannot be set up (the kubelet's FailedMount): the pod does not start."""


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _write(path: pathlib.Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


class PodVolumes:
    """The volumes of the pods on this node: `mount(pod)` before its containers start,
    `unmount(pod)` once they are gone; a thread renews the projected tokens."""

    def __init__(self, client: NodeClient, state_dir: pathlib.Path):
        self.client = client
        self.state_dir = state_dir
        self._lock = threading.Lock()
        # (pod uid) → [(renew at, file, token request path, request body)]
        self._tokens: dict[str, list[tuple[float, pathlib.Path, str, dict]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name="kubelet-tokens")

    def start(self) -> "PodVolumes":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def directory(self, pod: dict) -> pathlib.Path:
        m = pod["metadata"]
        return self.state_dir / "pods" / m["namespace"] / m["name"] / "volumes"

    # -- set up
    def mount(self, pod: dict) -> dict[str, str]:
        """Set up every volume of `pod`; the environment its containers get."""
        root = self.directory(pod)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        spec = pod.get("spec") or {}
        for volume in spec.get("volumes") or []:
            target = root / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in volume:
                continue
            for key, source in (("configMap", "configMap"), ("secret", "secret"),
                                ("downwardAPI", "downwardAPI")):
                if key in volume:
                    self._source(pod, source, volume[key], target)
            if "projected" in volume:
                for source in volume["projected"].get("sources") or []:
                    for kind in ("configMap", "secret", "downwardAPI", "serviceAccountToken"):
                        if kind in source:
                            self._source(pod, kind, source[kind], target)
        return {"SANDBOX_VOLUMES": str(root)}

    def mounts(self, pod: dict, container: dict) -> dict[str, str]:
        """mountPath → directory on the node, for `container`'s volumeMounts."""
        root = self.directory(pod)
        return {m["mountPath"]: str(root / m["name"] / m.get("subPath", ""))
                for m in container.get("volumeMounts") or []}

    def _source(self, pod: dict, kind: str, source: dict, target: pathlib.Path) -> None:
        m = pod["metadata"]
        ns = m["namespace"]
        if kind in ("configMap", "secret"):
            name = source.get("name") if kind == "configMap" else \
                source.get("secretName") or source.get("name")
            plural = "configmaps" if kind == "configMap" else "secrets"
            try:
                obj = self.client.request("GET", f"/api/v1/namespaces/{_q(ns)}/{plural}/{_q(name)}")
            except ApiStatus as e:
                if e.code == 404 and source.get("optional"):
                    return
                raise VolumeError(f'{kind} "{name}" not found' if e.code == 404 else str(e)) from None
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            if kind == "configMap":
                data |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
            else:
                data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            items = source.get("items")
            chosen = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
            for key, path in chosen:
                if key not in data:
                    if source.get("optional"):
                        continue
                    raise VolumeError(f'{kind} "{name}" has no key "{key}"')
                _write(target / path, data[key], 0o600 if kind == "secret" else 0o644)
        elif kind == "downwardAPI":
            for item in source.get("items") or []:
                field = (item.get("fieldRef") or {}).get("fieldPath", "")
                _write(target / item["path"], _field(pod, field).encode())
        elif kind == "serviceAccountToken":
            account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
            seconds = int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": seconds,
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                                "name": m["name"], "uid": m["uid"]}}}
            if source.get("audience"):
                body["spec"]["audiences"] = [source["audience"]]
            path = f"/api/v1/namespaces/{_q(ns)}/serviceaccounts/{_q(account)}/token"
            file = target / source["path"]
            self._request_token(path, body, file)
            with self._lock:
                self._tokens.setdefault(m["uid"], []).append(
                    (time.monotonic() + seconds * REFRESH_FRACTION, file, path, body))

    def _request_token(self, path: str, body: dict, file: pathlib.Path) -> None:
        try:
            answer = self.client.request("POST", path, body)
        except ApiStatus as e:
            raise VolumeError(f"token for {path}: {e}") from None
        _write(file, answer["status"]["token"].encode(), 0o600)

    # -- renewal and tear-down
    def _renew_loop(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self._lock:
                due = [(uid, i, entry) for uid, entries in self._tokens.items()
                       for i, entry in enumerate(entries) if entry[0] <= now]
            for uid, i, (_, file, path, body) in due:
                try:
                    self._request_token(path, body, file)
                except VolumeError:
                    continue  # tried again next round
                seconds = body["spec"]["expirationSeconds"]
                with self._lock:
                    entries = self._tokens.get(uid)
                    if entries and i < len(entries):
                        entries[i] = (time.monotonic() + seconds * REFRESH_FRACTION, file, path,
                                      body)

    def unmount(self, pod: dict) -> None:
        with self._lock:
            self._tokens.pop(pod["metadata"]["uid"], None)
        shutil.rmtree(self.directory(pod), ignore_errors=True)


def _field(pod: dict, path: str) -> str:
    m = pod["metadata"]
    if path in ("metadata.labels", "metadata.annotations"):
        values = m.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
    return str({"metadata.name": m.get("name"), "metadata.namespace": m.get("namespace"),
                "metadata.uid": m.get("uid")}.get(path, ""))
