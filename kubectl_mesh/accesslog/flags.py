"""Envoy's response flags in words: what happened, and which side decided.

Short names are what `%RESPONSE_FLAGS%` prints (Istio's default format); long names are what
`%RESPONSE_FLAGS_LONG%` prints (Envoy 1.40 spells them as below). Both are accepted wherever a
flag is read; an unknown flag is explained as unknown, never an error.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

# Who decided the outcome the flag records.
PROXY = "proxy"  # Envoy itself (timeouts, routing, limits, health)
UPSTREAM = "upstream"  # the application / upstream side (refused, reset, closed)
DOWNSTREAM = "downstream"  # the client that sent the request
POLICY = "policy"  # configured policy: fault injection, rate limit, ext authz, overload


@dataclasses.dataclass(frozen=True)
class ResponseFlag:
    short: str
    long: str
    meaning: str  # what happened, in words
    side: str  # PROXY / UPSTREAM / DOWNSTREAM / POLICY / "unknown"
    why: str  # who decided and what it usually means

    def explain(self) -> str:
        """`UT – upstream request timeout: the proxy gave up waiting ...; the application ...`"""
        return f"{self.short} – {self.meaning}: {self.why}"


_TABLE = (
    ("UH", "NoHealthyUpstream", "no healthy upstream", PROXY,
     "the proxy found no healthy endpoint in the upstream cluster (all failed health checks "
     "or outlier detection, or the subset selects no pods); no request reached an application"),
    ("UF", "UpstreamConnectionFailure", "upstream connection failure", UPSTREAM,
     "the proxy could not connect to the upstream (refused, reset or TLS handshake failed); "
     "the application is down, not listening on that port, or mTLS is misconfigured"),
    ("UO", "UpstreamOverflow", "upstream overflow (circuit breaker)", PROXY,
     "the proxy refused the request because a circuit-breaker limit (connections, pending or "
     "requests) of the cluster was reached; the application never saw it"),
    ("NR", "NoRouteFound", "no route", PROXY,
     "the proxy had no route for this host/path (or no filter chain for the connection); "
     "check the VirtualService hosts and the Host header"),
    ("URX", "UpstreamRetryLimitExceeded", "upstream retry limit exceeded", PROXY,
     "the proxy retried as configured (or hit the TCP connect-attempt limit) and gave up; "
     "each attempt failed upstream – see the other flags on the line"),
    ("NC", "NoClusterFound", "no cluster", PROXY,
     "the route points to an upstream cluster the proxy does not have (e.g. a VirtualService "
     "subset no DestinationRule defines: IST0101)"),
    ("DT", "DurationTimeout", "max duration timeout", PROXY,
     "the request or connection exceeded its max duration (max_connection_duration / "
     "max_downstream_connection_duration) and the proxy ended it"),
    ("DC", "DownstreamConnectionTermination", "downstream connection termination", DOWNSTREAM,
     "the client closed the connection before the response was complete (often the client's "
     "own timeout); code 0 means nothing was sent back"),
    ("LH", "FailedLocalHealthCheck", "local health check failed", PROXY,
     "the local service failed its health check, so the proxy answered for it"),
    ("UT", "UpstreamRequestTimeout", "upstream request timeout", PROXY,
     "the proxy gave up waiting for the upstream (route timeout); the application did not "
     "answer in time – upstream_host names the slow pod"),
    ("LR", "LocalReset", "connection local reset", PROXY,
     "the proxy reset the stream itself (e.g. a local limit or an internal error)"),
    ("UR", "UpstreamRemoteReset", "upstream remote reset", UPSTREAM,
     "the upstream reset the stream (the application crashed, or closed/reset the connection "
     "mid-request)"),
    ("UC", "UpstreamConnectionTermination", "upstream connection termination", UPSTREAM,
     "the upstream closed the connection before the response (often keep-alive races: the "
     "application closed an idle connection the proxy was reusing)"),
    ("DI", "DelayInjected", "delay injected", POLICY,
     "a fault-injection policy (VirtualService fault.delay) delayed the request on purpose"),
    ("FI", "FaultInjected", "fault injected", POLICY,
     "a fault-injection policy (VirtualService fault.abort) answered with an error on purpose"),
    ("RL", "RateLimited", "rate limited", POLICY,
     "the local or global rate limit rejected the request (429)"),
    ("UAEX", "UnauthorizedExternalService", "unauthorized by external authorization", POLICY,
     "the external authorization service denied the request"),
    ("RLSE", "RateLimitServiceError", "rate limit service error", PROXY,
     "the proxy could not reach the rate-limit service and failed the request"),
    ("IH", "InvalidEnvoyRequestHeaders", "invalid request headers", DOWNSTREAM,
     "the client sent an invalid value for an x-envoy-* header (strict header check)"),
    ("SI", "StreamIdleTimeout", "stream idle timeout", PROXY,
     "the stream saw no activity for the idle timeout and the proxy ended it"),
    ("DPE", "DownstreamProtocolError", "downstream protocol error", DOWNSTREAM,
     "the client spoke invalid HTTP (bad framing, headers, or protocol mismatch)"),
    ("UPE", "UpstreamProtocolError", "upstream protocol error", UPSTREAM,
     "the upstream answered with invalid HTTP (often a protocol mismatch: HTTP/2 vs 1.1, or "
     "a plaintext/mTLS port mix-up)"),
    ("UMSDR", "UpstreamMaxStreamDurationReached", "upstream max stream duration reached", PROXY,
     "the upstream stream exceeded its max_stream_duration and the proxy ended it"),
    ("OM", "OverloadManagerTerminated", "overload manager terminated", PROXY,
     "the proxy's overload manager shed the request (memory or connection pressure)"),
    ("DF", "DnsResolutionFailed", "DNS resolution failed", PROXY,
     "the proxy could not resolve the upstream host name (dynamic forward proxy)"),
    ("DO", "DropOverload", "drop overload", PROXY,
     "the request was dropped by the cluster's drop_overload policy (EDS-driven load shed)"),
    ("UDO", "UnconditionalDropOverload", "unconditional drop overload", PROXY,
     "the request was dropped because drop_overload is set to 100%"),
    ("DR", "DownstreamRemoteReset", "downstream remote reset", DOWNSTREAM,
     "the client reset the stream (HTTP/2 RST_STREAM or connection reset)"),
    ("RFCF", "ResponseFromCacheFilter", "response from cache", PROXY,
     "the response was served by the cache filter, not the upstream"),
    ("NFCF", "NoFilterConfigFound", "no filter config found", PROXY,
     "an ECDS filter had no configuration yet, so the proxy failed the request"),
)

FLAGS: dict[str, ResponseFlag] = {row[0]: ResponseFlag(*row) for row in _TABLE}
LONG_TO_SHORT: dict[str, str] = {f.long: f.short for f in FLAGS.values()}


def normalize(flag: str) -> str:
    """A short or long flag name (any case for short ones) → the short name; unknown names
    come back as given (stripped)."""
    flag = flag.strip()
    if flag in FLAGS:
        return flag
    if flag in LONG_TO_SHORT:
        return LONG_TO_SHORT[flag]
    upper = flag.upper()
    return upper if upper in FLAGS else flag


def lookup(flag: str) -> ResponseFlag:
    """The flag's description; an unknown flag gets a placeholder saying so."""
    short = normalize(flag)
    known = FLAGS.get(short)
    if known is not None:
        return known
    return ResponseFlag(short, short, "unknown flag", "unknown",
                        "not a response flag this tool knows (newer Envoy?)")


def explain(flag: str) -> str:
    """One line in words, e.g. `UT – upstream request timeout: the proxy gave up ...`."""
    return lookup(flag).explain()


def legend(flag_sets: Iterable[Iterable[str]]) -> list[str]:
    """Explanations for the distinct flags in a result set (e.g. each record's
    `response_flags`), in a stable order: known flags in table order, then unknown ones."""
    seen = {normalize(f) for flags in flag_sets for f in flags}
    order = {short: i for i, short in enumerate(FLAGS)}
    return [explain(f) for f in sorted(seen, key=lambda f: (order.get(f, len(order)), f))]
