"""deprecation.DeprecationAnalyzer (istio/pkg/config/analysis/analyzers/deprecation/
deprecation.go), its field checks: an HTTP fault delay's `percent` (use `percentage`) and a
Sidecar's outboundTrafficPolicy.egressProxy (ignored), IST0002. (Its third check, the removed
rbac.istio.io CRDs, needs CustomResourceDefinitions, which analyze does not read.)"""

from __future__ import annotations

from typing import Iterator

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Store, as_dict, as_list


def fields(store: Store) -> Iterator[Message]:
    for vs in store.of("VirtualService"):
        for route in as_list(vs.spec.get("http")):
            delay = as_dict(as_dict(as_dict(route).get("fault")).get("delay"))
            percent = delay.get("percent")
            if isinstance(percent, int) and not isinstance(percent, bool) and percent > 0:
                yield Message(msg.DEPRECATED, (
                    "HTTPRoute.fault.delay.percent is deprecated; use "
                    "HTTPRoute.fault.delay.percentage",), vs)
    for sc in store.of("Sidecar"):
        policy = sc.spec.get("outboundTrafficPolicy")
        if isinstance(policy, dict) and policy.get("egressProxy") is not None:
            yield Message(msg.DEPRECATED, ("OutboundTrafficPolicy.EgressProxy ignored",), sc)
