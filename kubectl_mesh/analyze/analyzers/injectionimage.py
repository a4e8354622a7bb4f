"""injection.ImageAnalyzer (istio/pkg/config/analysis/analyzers/injection/injection-image.go):
in namespaces with injection on (istio-injection=enabled: revision default; istio.io/rev=REV),
pods whose istio-proxy image is not the one the injector of that revision
(ConfigMap istio-sidecar-injector[-REV], key `values`: global.hub/proxy.image:tag) would
inject, nor its `-<imageType>` variant (IST0158, one message per namespace). Pods that name
their own image (sidecar.istio.io/proxyImage) are left out. The image type is the mesh
config's defaultConfig.image.imageType, overridden by the pod's proxy.istio.io/config
annotation (util.EffectiveProxyConfigResolver.ImageType; ProxyConfig objects are not read)."""

from __future__ import annotations

import json
from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, as_list

INJECTOR = "istio-sidecar-injector"
PROXY = "istio-proxy"


def injector_image(cm: Resource) -> str:
    """GetIstioProxyImage: proxy.image if it has a `/`, else hub/image:tag; "" unreadable."""
    try:
        values = json.loads(str(as_dict(cm.obj.get("data")).get("values") or ""))
    except ValueError:
        return ""
    glob = as_dict(as_dict(values).get("global"))
    image = str(as_dict(glob.get("proxy")).get("image") or "")
    if "/" in image:
        return image
    return f"{glob.get('hub') or ''}/{image}:{glob.get('tag') or ''}"


def _injector_name(revision: str) -> str:
    """util.GetInjectorConfigMapName."""
    return INJECTOR if not revision or revision == "default" else f"{INJECTOR}-{revision}"


def _image_type(store: Store, pod: Resource) -> str:
    import yaml

    variant = store.mesh.image_type
    text = pod.annotations.get("proxy.istio.io/config")
    if text:
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            config = None
        image_type = as_dict(as_dict(config).get("image")).get("imageType")
        if isinstance(image_type, str) and image_type:
            variant = image_type
    return variant


def proxy_images(store: Store) -> Iterator[Message]:
    images = {cm.name: injector_image(cm) for cm in store.of("ConfigMap")
              if cm.name.startswith(INJECTOR)}
    if not images:
        return
    revisions = {}
    namespaces = {}
    for ns in store.of("Namespace"):
        namespaces[ns.name] = ns
        if "istio.io/rev" in ns.labels:
            revisions[ns.name] = ns.labels["istio.io/rev"]
        elif ns.labels.get("istio-injection") == "enabled":
            revisions[ns.name] = "default"
    mismatched: dict[str, list[str]] = {}
    for pod in store.of("Pod"):
        if pod.namespace not in revisions or pod.annotations.get("sidecar.istio.io/proxyImage"):
            continue
        expected = images.get(_injector_name(revisions[pod.namespace]))
        if expected is None:
            continue
        variant = _image_type(store, pod)
        for container in [as_dict(c) for key in ("containers", "initContainers")
                          for c in as_list(pod.spec.get(key))]:
            if container.get("name") != PROXY:
                continue
            image = container.get("image") or ""
            if image != expected and image != f"{expected}-{variant}":
                mismatched.setdefault(pod.namespace, []).append(pod.name)
    for ns, pods in mismatched.items():
        if ns in namespaces:
            yield Message(msg.PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE, (sorted(pods),),
                          namespaces[ns])
