"""How the generic app behaves in particular pods (scenario `Behaviour` documents,
pod annotations, or env), expressed as the app's environment variables."""

from __future__ import annotations

import threading

ANNOTATION_PREFIX = "sandbox.kubectl-mesh.io/"


class Behaviours:
    def __init__(self, documents: list[dict] | None = None):
        self._docs = [d.get("spec") or {} for d in documents or []]
        self._lock = threading.Lock()
        self._order: dict[str, list[tuple[int, str]]] = {}  # doc index -> [(seq, uid)]

    def note_pod(self, pod: dict, seq: int) -> None:
        """Remember creation order: `replica: N` means the N-th matching pod created."""
        with self._lock:
            for i, spec in enumerate(self._docs):
                if self._matches(spec, pod):
                    self._order.setdefault(str(i), []).append((seq, pod["metadata"]["uid"]))

    @staticmethod
    def _matches(spec: dict, pod: dict) -> bool:
        meta = pod.get("metadata") or {}
        if spec.get("namespace") and spec["namespace"] != meta.get("namespace"):
            return False
        labels = meta.get("labels") or {}
        return all(labels.get(k) == v for k, v in (spec.get("selector") or {}).items())

    def env_for(self, pod: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        uid = pod["metadata"].get("uid")
        with self._lock:
            for i, spec in enumerate(self._docs):
                if not self._matches(spec, pod):
                    continue
                if "replica" in spec:
                    order = [u for _, u in sorted(self._order.get(str(i), []))]
                    if uid not in order or order.index(uid) != int(spec["replica"]):
                        continue
                if "latency" in spec:
                    env["SANDBOX_LATENCY"] = str(spec["latency"])
                if "errorRate" in spec:
                    env["SANDBOX_ERROR_RATE"] = str(spec["errorRate"])
                if "errorCode" in spec:
                    env["SANDBOX_ERROR_CODE"] = str(spec["errorCode"])
                if "startupDelay" in spec:
                    env["SANDBOX_STARTUP_DELAY"] = str(spec["startupDelay"])
        ann = pod["metadata"].get("annotations") or {}
        for key, var in (("latency", "SANDBOX_LATENCY"), ("error-rate", "SANDBOX_ERROR_RATE"),
                         ("error-code", "SANDBOX_ERROR_CODE"),
                         ("startup-delay", "SANDBOX_STARTUP_DELAY")):
            if ANNOTATION_PREFIX + key in ann:
                env[var] = ann[ANNOTATION_PREFIX + key]
        return env
