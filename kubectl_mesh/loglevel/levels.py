"""Envoy log levels and the `--level` spec: parsing, validation against the loggers each
proxy really has, and the per-pod plan (levels before → levels after).

Everything here is pure: no I/O, so the rules are unit-tested without a cluster.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from kubectl_mesh.errors import UsageError

# Envoy's own names, most verbose first (`/logging` prints `levels: trace debug ...`).
LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")
# Accepted spellings Envoy itself refuses (`?level=warn` answers 400 "unknown logger level").
ALIASES = {"warn": "warning", "err": "error", "crit": "critical"}
# Envoy 1.40's loggers (POST /logging on the proxy image's Envoy), for shell completion;
# the commands themselves always work from the pod's own list.
ENVOY_LOGGERS = (
    "a2a", "admin", "ai_protocol_manager", "alternate_protocols_cache", "aws", "assert",
    "backtrace", "basic_auth", "cache_filter", "client", "config", "connection",
    "conn_handler", "compression", "credential_injector", "decompression", "dns", "dubbo",
    "envoy_bug", "ext_authz", "ext_proc", "rocketmq", "file", "filter", "forward_proxy",
    "geolocation", "grpc", "happy_eyeballs", "hc", "health_checker", "http", "http2",
    "hystrix", "init", "io", "jwt", "json_rpc", "kafka", "key_value_store", "lua",
    "local_rate_limit", "main", "matcher", "mcp", "misc", "mongo", "multi_connection",
    "notification", "oauth2", "quic", "quic_stream", "pool", "rate_limit_quota", "rbac",
    "rds", "redis", "router", "runtime", "stats", "secret", "sse", "tap", "testing",
    "thrift", "tracing", "upstream", "udp", "wasm", "websocket", "go",
)
FALLBACK_LEVEL = "warning"  # Istio's default when the injector ConfigMap says nothing


def closest(word: str, names: Iterable[str]) -> str | None:
    """The most similar of `names` (difflib), or None when nothing is close."""
    found = difflib.get_close_matches(word, sorted(set(names)), n=1, cutoff=0.6)
    return found[0] if found else None


def normalize_level(text: str) -> str:
    """`WARN` -> `warning`; an unknown level is a UsageError listing the valid ones."""
    word = text.strip().lower()
    word = ALIASES.get(word, word)
    if word in LEVELS:
        return word
    near = closest(word, list(LEVELS) + list(ALIASES))
    guess = f"did you mean {ALIASES.get(near, near)!r}? " if near else ""
    raise UsageError(f"unknown log level {text.strip()!r}: {guess}valid levels: "
                     f"{', '.join(LEVELS)} (warn = warning)")


@dataclass(frozen=True)
class LevelSpec:
    """What `--level` asked for: one level for every logger, or levels for named loggers."""

    every: str | None = None  # `--level debug`
    loggers: tuple[tuple[str, str], ...] = ()  # `--level http:debug,router=trace`

    @classmethod
    def parse(cls, text: str) -> LevelSpec:
        """`debug` | `http:debug,router=trace` (levels normalized, loggers kept as typed)."""
        raw = text.strip()
        if not raw:
            raise UsageError("--level is empty", hint="e.g. --level debug or --level http:debug")
        if ":" not in raw and "=" not in raw and "," not in raw:
            return cls(every=normalize_level(raw))
        pairs: dict[str, str] = {}
        for part in raw.split(","):
            part = part.strip()
            name, sep, level = part.replace("=", ":", 1).partition(":")
            if not sep or not name.strip() or not level.strip():
                raise UsageError(f"invalid --level part {part!r}",
                                 hint="use LEVEL or LOGGER:LEVEL[,LOGGER:LEVEL...], "
                                      "e.g. http:debug,router:trace")
            name = name.strip()
            if name in pairs:
                raise UsageError(f"logger {name!r} appears twice in --level {text!r}")
            pairs[name] = normalize_level(level)
        return cls(loggers=tuple(pairs.items()))

    @classmethod
    def everything(cls, level: str) -> LevelSpec:
        return cls(every=normalize_level(level))

    def __str__(self) -> str:
        return self.every or ",".join(f"{n}:{lvl}" for n, lvl in self.loggers)

    def check_loggers(self, known_by_pod: Mapping[str, Iterable[str]]) -> None:
        """Every named logger must exist on every pod; else a UsageError listing the loggers
        all pods have (and the closest), raised before anything is changed anywhere."""
        known = {pod: set(names) for pod, names in known_by_pod.items()}
        valid = set.intersection(*known.values()) if known else set()
        for name, _ in self.loggers:
            lacking = [pod for pod, names in known.items() if name not in names]
            if not lacking:
                continue
            if len(lacking) == len(known):
                who = "no selected pod has it" if len(known) > 1 else f"{lacking[0]} has no such logger"
            else:
                who = f"{len(lacking)} of {len(known)} pods lack it: {', '.join(lacking[:3])}" + \
                      (" ..." if len(lacking) > 3 else "")
            near = closest(name, valid)
            guess = f"did you mean {near!r}? " if near else ""
            raise UsageError(f"unknown logger {name!r} ({who}): {guess}valid loggers: "
                             f"{', '.join(sorted(valid))}")

    def apply_to(self, current: Mapping[str, str]) -> dict[str, str]:
        """The levels a proxy whose levels are `current` should end up with."""
        if self.every:
            return {name: self.every for name in current}
        wanted = dict(current)
        wanted.update(self.loggers)
        return wanted


@dataclass(frozen=True)
class PodPlan:
    """One proxy: its levels now and the levels it should have; `ref` is `name.namespace`."""

    ref: str
    before: Mapping[str, str]
    after: Mapping[str, str]
    pod: object = None  # kube.pods.Pod, to reconnect (None in pure tests)

    @classmethod
    def of(cls, ref: str, before: Mapping[str, str], after: Mapping[str, str],
           pod: object = None) -> PodPlan:
        return cls(ref, MappingProxyType(dict(before)), MappingProxyType(dict(after)), pod)

    @property
    def changes(self) -> dict[str, tuple[str, str]]:
        """{logger: (old, new)} for the loggers whose level moves, in Envoy's order."""
        return {n: (old, self.after[n]) for n, old in self.before.items()
                if n in self.after and self.after[n] != old}

    def forward(self) -> dict[str, str]:
        """The `paths=` to send: only the loggers that change."""
        return {n: new for n, (_, new) in self.changes.items()}

    def backward(self) -> dict[str, str]:
        """The `paths=` that put back exactly what was there before."""
        return {n: old for n, (old, _) in self.changes.items()}

    def reversed(self) -> PodPlan:
        return PodPlan(self.ref, self.after, self.before, self.pod)


def plan(spec: LevelSpec, current: Sequence[tuple[str, Mapping[str, str], object]]) -> list[PodPlan]:
    """Validate `spec` against every pod's loggers, then one PodPlan per pod.

    `current` is (ref, {logger: level}, pod) per pod; raises UsageError before anything is sent.
    """
    spec.check_loggers({ref: levels.keys() for ref, levels, _ in current})
    return [PodPlan.of(ref, levels, spec.apply_to(levels), pod) for ref, levels, pod in current]


def describe(plan_: PodPlan, *, verb: str = "") -> str:
    """`gw-7d9f.istio-system: http warning→debug` (changes grouped by transition)."""
    changes = plan_.changes
    if not changes:
        return f"{plan_.ref}: unchanged"
    groups: dict[tuple[str, str], list[str]] = {}
    for name, move in changes.items():
        groups.setdefault(move, []).append(name)
    parts = []
    for (old, new), names in groups.items():
        if len(names) == len(plan_.before) and len(names) > 3:
            who = f"all {len(names)} loggers"
        elif len(names) > 6:
            who = f"{', '.join(names[:5])} and {len(names) - 5} more"
        else:
            who = ", ".join(names)
        parts.append(f"{who} {old}→{new}")
    suffix = f" ({verb})" if verb else ""
    return f"{plan_.ref}: {'; '.join(parts)}{suffix}"
