"""Which messages the user asked not to see: `--suppress CODE=RESOURCE` and the
`galley.istio.io/analyze-suppress` annotation (istio/pkg/config/analysis/local/istiod_analyze.go
filterMessages). RESOURCE is `Kind namespace/name` (the message's origin) or `Kind
name.namespace` (the form istioctl's help shows); `*` matches any run of characters."""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.options import Suppression
from kubectl_mesh.analyze.resources import SUPPRESS_ANNOTATION


def _labels(message: Message) -> tuple[str, ...]:
    res = message.resource
    if not res.namespace:
        return (f"{res.kind} {res.name}",)
    return (f"{res.kind} {res.namespace}/{res.name}", f"{res.kind} {res.name}.{res.namespace}")


def _glob(pattern: str, text: str) -> bool:
    """ryanuber/go-glob: `*` is the only special character."""
    if "*" not in pattern:
        return pattern == text
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, text, re.DOTALL) is not None


def suppressed(message: Message, suppressions: Sequence[Suppression]) -> bool:
    res = message.resource
    if res is None:
        return False
    annotated = str(res.annotations.get(SUPPRESS_ANNOTATION, "") or "")
    if annotated and any(code == "*" or code == message.type.code
                         for code in annotated.split(",")):
        return True
    for s in suppressions:
        if s.code == message.type.code and any(_glob(s.resource, label)
                                               for label in _labels(message)):
            return True
    return False


def keep(messages: Iterable[Message], suppressions: Sequence[Suppression]) -> list[Message]:
    return [m for m in messages if not suppressed(m, suppressions)]
