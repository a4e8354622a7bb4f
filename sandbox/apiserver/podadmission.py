"""What the real API server adds to a pod it creates, besides the webhooks' changes:

- defaulting (k8s.io/kubernetes pkg/apis/core/v1/defaults.go): `SetDefaults_PodSpec` (dnsPolicy
  ClusterFirst, restartPolicy Always, securityContext {}, terminationGracePeriodSeconds 30,
  schedulerName default-scheduler, the deprecated `serviceAccount` mirroring
  `serviceAccountName`), `SetDefaults_Pod` (enableServiceLinks true, requests from limits),
  `SetDefaults_Container` (imagePullPolicy Always for a `latest` or untagged image without a
  digest, else IfNotPresent; the termination message path and policy),
  `SetDefaults_ContainerPort` (protocol TCP);
- the ServiceAccount admission plugin (plugin/pkg/admission/serviceaccount/admission.go
  `Admit`): serviceAccountName `default` when empty; the service account must exist
  (`getServiceAccount`: for `default`, up to 10 tries 100-200 ms apart while the controller
  manager creates it), else 403 `error looking up service account NS/NAME`; unless the pod or
  the service account sets automountServiceAccountToken false, a `kube-api-access-<5>`
  projected volume (`TokenVolumeSource`: a 3607 s token, the `kube-root-ca.crt` ConfigMap's
  ca.crt, the namespace) mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in
  every init and regular container that has nothing mounted there (`mountServiceAccountToken`);
  the service account's imagePullSecrets;
- DefaultTolerationSeconds (plugin/pkg/admission/defaulttolerationseconds/admission.go): the
  node.kubernetes.io/not-ready and /unreachable NoExecute tolerations for 300 s, unless a
  toleration already covers them;
- Priority (plugin/pkg/admission/priority/admission.go `admitPod`): priority from the
  PriorityClass (no class: 0, `PreemptLowerPriority`; the two built-in system classes), 403
  for an unknown class.

The chain runs before the sidecar injector and again after it, as the real one is re-invoked
once a mutating webhook changed the object (k8s.io/apiserver pkg/admission/reinvocation.go;
webhook/mutating/dispatcher.go `SetShouldReinvoke`): every step here is idempotent, and the
injected containers get the token mount too.
"""

from __future__ import annotations

import secrets
import time

from .. import qos
from . import kinds

TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
# pkg/serviceaccount/claims.go WarnOnlyBoundTokenExpirationSeconds
TOKEN_EXPIRATION_SECONDS = 3607
# pkg/apis/scheduling/types.go: the built-in classes (SystemCriticalPriority and +1000)
PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
# k8s.io/apimachinery pkg/util/rand: the alphabet of generated name suffixes
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def image_tag(image: str) -> str | None:
    """The image reference's tag, `latest` when it has neither tag nor digest, None when it
    has a digest only (docker/distribution reference parsing, as
    pkg/util/parsers.ParseImageName)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return None if digest else "latest"


def _containers(spec: dict) -> list[dict]:
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def set_defaults(spec: dict) -> None:
    """The API server's defaults of a pod spec (pkg/apis/core/v1/defaults.go)."""
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for c in _containers(spec):
        if not c.get("imagePullPolicy"):
            c["imagePullPolicy"] = "Always" if image_tag(c.get("image") or "") == "latest" \
                else "IfNotPresent"
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")
        qos.default_requests(c)


def _tolerations(spec: dict) -> None:
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key", "") in (key, "") and t.get("effect", "") in ("NoExecute", "")
                   for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})


def _token_volume() -> dict:
    return {"projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def _mount_token(spec: dict) -> None:
    volumes = spec.setdefault("volumes", [])
    name = next((v["name"] for v in volumes if v.get("name", "").startswith(TOKEN_VOLUME_PREFIX)),
                None)
    has_volume = name is not None
    name = name or TOKEN_VOLUME_PREFIX + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    needed = False
    for c in _containers(spec):
        mounts = c.setdefault("volumeMounts", [])
        if not any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
            mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
            needed = True
    if needed and not has_volume:
        volumes.append({"name": name, **_token_volume()})
    if not volumes:
        del spec["volumes"]


class PodAdmission:
    """An admission callable `(kind, obj, old)` for `Api.admission`: pods at creation."""

    def __init__(self, store, *, tries: int = 10):
        self.store = store
        self.tries = tries

    def __call__(self, kind: kinds.Kind, obj: dict, old: dict | None) -> None:
        if kind.key != "pods" or old is not None:
            return
        spec = obj.setdefault("spec", {})
        set_defaults(spec)
        self._service_account(obj, spec)
        _tolerations(spec)
        self._priority(obj, spec)
        # the pod strategy's PrepareForCreate, after admission (pkg/registry/core/pod/strategy.go)
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Pending")
        status["qosClass"] = qos.pod_qos(spec)

    def _service_account(self, pod: dict, spec: dict) -> None:
        from .server import ApiError

        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        name = spec.get("serviceAccountName") or "default"
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        account = self._await_account(namespace, name)
        if account is None:
            raise ApiError(403, "Forbidden", f'pods "{meta.get("name", "")}" is forbidden: error '
                           f'looking up service account {namespace}/{name}: serviceaccount '
                           f'"{name}" not found', {"name": meta.get("name", ""), "kind": "pods"})
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is not False:
            _mount_token(spec)
        if not spec.get("imagePullSecrets") and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")}
                                        for s in account["imagePullSecrets"]]

    def _await_account(self, namespace: str, name: str) -> dict | None:
        tries = self.tries if name == "default" else 1
        for attempt in range(tries):
            account = self.store.find("serviceaccounts", namespace, name)
            if account is not None:
                return account
            if attempt + 1 < tries:
                time.sleep(0.1 + secrets.randbelow(100) / 1000)
        return None

    @staticmethod
    def _priority(pod: dict, spec: dict) -> None:
        from .server import ApiError

        if "priority" in spec and "preemptionPolicy" in spec:
            return  # admitted before the injector: the class cannot have changed
        cls = spec.get("priorityClassName") or ""
        if cls and cls not in PRIORITY_CLASSES:
            name = pod["metadata"].get("name", "")
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: no PriorityClass with '
                           f'name {cls} was found', {"name": name, "kind": "pods"})
        priority = PRIORITY_CLASSES.get(cls, 0)
        if spec.get("priority") is not None and spec["priority"] != priority:
            name = pod["metadata"].get("name", "")
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: the integer value of '
                           f'priority ({spec["priority"]}) must not be provided in pod spec; '
                           f'priority admission controller computed {priority} from the given '
                           'PriorityClass name', {"name": name, "kind": "pods"})
        spec["priority"] = priority
        spec["preemptionPolicy"] = "PreemptLowerPriority"
