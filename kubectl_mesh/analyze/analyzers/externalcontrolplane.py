"""Istio's webhook configurations that call istiod by `url:` (an external control plane),
istio/pkg/config/analysis/analyzers/externalcontrolplane/externalcontrolplane.go
`ExternalControlPlaneAnalyzer`:

- the ValidatingWebhookConfigurations `istiod-default-validator` and `istio-validator*`, and the
  MutatingWebhookConfigurations `istio-sidecar-injector*`, are read webhook by webhook;
- a webhook whose `url` Go's net/url cannot parse, or with neither `url` nor `service`, is
  IST0163 (Warning);
- a webhook whose `url` host is an IP address is IST0164 (Info).
"""

from __future__ import annotations

import ipaddress
from typing import Iterator, Optional

from kubectl_mesh.analyze import messages as msg
from kubectl_mesh.analyze.messages import Message
from kubectl_mesh.analyze.resources import Resource, Store, as_dict, as_list

DEFAULT_VALIDATOR = "istiod-default-validator"
VALIDATOR_PREFIX = "istio-validator"
INJECTOR_PREFIX = "istio-sidecar-injector"

INVALID_FORMAT = "was provided in an invalid format"
BLANK = "is blank"


def webhook_urls(store: Store) -> Iterator[Message]:
    for config in store.of("ValidatingWebhookConfiguration"):
        if config.name == DEFAULT_VALIDATOR or config.name.startswith(VALIDATOR_PREFIX):
            yield from _webhooks(config)
    for config in store.of("MutatingWebhookConfiguration"):
        if config.name.startswith(INJECTOR_PREFIX):
            yield from _webhooks(config)


def _webhooks(config: Resource) -> Iterator[Message]:
    for hook in as_list(config.obj.get("webhooks")):
        hook = as_dict(hook)
        name = str(hook.get("name") or "")
        client = as_dict(hook.get("clientConfig"))
        url = client.get("url")
        if url is not None:
            url = str(url)
            host = url_hostname(url)
            if host is None:
                yield Message(msg.INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
                              (url, name, INVALID_FORMAT), config)
            elif _is_ip(host):
                yield Message(msg.EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME, (url, name),
                              config)
        elif client.get("service") is None:
            yield Message(msg.INVALID_EXTERNAL_CONTROL_PLANE_CONFIG, ("", name, BLANK), config)


def _is_ip(host: str) -> bool:
    """net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone."""
    if "%" in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Go's net/url (go1.26 src/net/url/url.go `Parse`, strict colons as for a go 1.26 module):
# only what decides whether a URL parses and what its Hostname() is.

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HOST_CHARS = _ALNUM | frozenset("-_.~!$&'()*+,;=:[]<>\"")  # shouldEscape(c, encodeHost) false
_USERINFO_CHARS = _ALNUM | frozenset("-._:~!$&'()*+,;=%@")  # validUserinfo
_HEX = frozenset("0123456789abcdefABCDEF")


class _Invalid(Exception):
    pass


def url_hostname(url: str) -> Optional[str]:
    """`url.Parse(url).Hostname()`, or None where url.Parse fails."""
    try:
        return _split_host_port(_parse(url))
    except _Invalid:
        return None


def _parse(raw: str) -> str:
    """The Host url.Parse gives `raw`; _Invalid where it returns an error."""
    raw, _, fragment = raw.partition("#")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise _Invalid("invalid control character in URL")
    _unescape(fragment, host=False)
    if raw == "*":
        return ""
    scheme, rest = _scheme(raw)
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return ""  # opaque: no host
        if ":" in rest.partition("/")[0]:
            raise _Invalid("first path segment in URL cannot contain colon")
    host = ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        host = _authority(scheme, authority)
        rest = slash + path
    _unescape(rest, host=False)
    return host


def _scheme(raw: str) -> tuple[str, str]:
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise _Invalid("missing protocol scheme")
            return raw[:i].lower(), raw[i + 1:]
        return "", raw
    return "", raw


def _authority(scheme: str, authority: str) -> str:
    userinfo, at, host = authority.rpartition("@")
    host = _host(scheme, host)
    if at:
        if any(c not in _USERINFO_CHARS for c in userinfo):
            raise _Invalid("invalid userinfo")
        for part in userinfo.split(":", 1):
            _unescape(part, host=False)
    return host


def _valid_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _host(scheme: str, host: str) -> str:
    bracket = host.rfind("[")
    if bracket > 0:
        raise _Invalid("invalid IP-literal")
    if bracket == 0:
        close = host.rfind("]")
        if close < 0:
            raise _Invalid("missing ']' in host")
        port = host[close + 1:]
        if not _valid_port(port):
            raise _Invalid("invalid port")
        literal = host[1:close]
        zone = literal.find("%25")
        if zone >= 0:
            address = _unescape(literal[:zone], host=True) + "%" + \
                _unescape(literal[zone + 3:], host=True, zone=True)
        else:
            address = _unescape(literal, host=True)
        try:  # netip.ParseAddr: an IPv6 address (a zone allowed), not IPv4
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise _Invalid("invalid host") from None
        if ip.version == 4:
            raise _Invalid("invalid IP-literal")
        return f"[{address}]{port}"
    first = host.find(":")
    if first >= 0:
        last = host.rfind(":")
        # http and https keep the first colon (strict colons): a second one is no port
        colon = first if scheme in ("http", "https") else last
        if not _valid_port(host[colon:]):
            raise _Invalid("invalid port")
    return _unescape(host, host=True)


def _unescape(text: str, host: bool, zone: bool = False) -> str:
    """url.unescape's checks: `%` and two hex digits; in a host no %-escaped ASCII (but %25)
    and only the characters a host may have."""
    out = bytearray()
    i = 0
    data = text.encode("utf-8", "surrogateescape")
    while i < len(data):
        c = data[i]
        if c == 0x25:  # %
            pair = data[i + 1:i + 3].decode("latin-1")
            if len(pair) < 2 or any(ch not in _HEX for ch in pair):
                raise _Invalid("invalid URL escape")
            value = int(pair, 16)
            if host and not zone and value < 0x80 and pair != "25":
                raise _Invalid("invalid URL escape")
            if zone and pair != "25" and value != 0x20 and chr(value) not in _HOST_CHARS:
                raise _Invalid("invalid URL escape")
            out.append(value)
            i += 3
            continue
        if host and c < 0x80 and chr(c) not in _HOST_CHARS:
            raise _Invalid("invalid character in host name")
        out.append(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _split_host_port(host_port: str) -> str:
    """URL.Hostname (splitHostPort): the port cut off, the brackets of an IPv6 literal too."""
    host = host_port
    colon = host.rfind(":")
    if colon >= 0 and _valid_port(host[colon:]):
        host = host[:colon]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host
