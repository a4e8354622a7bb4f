"""Checks of what a kubeconfig says, before it is used: the type of every field read here
(per file), the server URL, and that a token can be sent in a header. Messages name the file,
cluster, user or field - never a value, which may be a credential.

Field types as kubectl has them: it decodes a kubeconfig strictly into Go structs
(k8s.io/client-go `tools/clientcmd/api/v1/types.go`: `Config`, `NamedCluster`, `Cluster`,
`AuthInfo`, `ExecConfig`, `Context`) and refuses a file whose field has the wrong type ("json:
cannot unmarshal string into Go struct field Config.clusters of type []v1.NamedCluster"). YAML
`null` is accepted everywhere, as Go's decoder does.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from kubectl_mesh.errors import BadInputError

STRING, BOOL, MAPPING, STRINGS = "a string", "true or false", "a mapping", "a list of strings"

# section -> (the key holding each entry's body, the body's fields and their types)
SECTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "clusters": ("cluster", {
        "server": STRING, "tls-server-name": STRING, "insecure-skip-tls-verify": BOOL,
        "certificate-authority": STRING, "certificate-authority-data": STRING,
        "proxy-url": STRING, "disable-compression": BOOL}),
    "users": ("user", {
        "client-certificate": STRING, "client-certificate-data": STRING,
        "client-key": STRING, "client-key-data": STRING, "token": STRING, "tokenFile": STRING,
        "username": STRING, "password": STRING, "exec": MAPPING, "auth-provider": MAPPING,
        "as": STRING, "as-groups": STRINGS, "as-uid": STRING}),
    "contexts": ("context", {"cluster": STRING, "user": STRING, "namespace": STRING}),
}
EXEC_FIELDS = {"command": STRING, "args": STRINGS, "env": "a list of {name, value}",
               "apiVersion": STRING, "installHint": STRING, "provideClusterInfo": BOOL,
               "interactiveMode": STRING}

_TYPES = {STRING: str, BOOL: bool, MAPPING: dict}


def check_shape(doc: dict, path: str) -> None:
    """BadInputError naming the first field of kubeconfig `path` whose type is wrong."""
    _expect(doc.get("current-context"), STRING, "current-context", path)
    for section, (inner, fields) in SECTIONS.items():
        entries = doc.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise _wrong(section, entries, "a list", path)
        for i, entry in enumerate(entries):
            where = f"{section}[{i}]"
            if not isinstance(entry, dict):
                raise _wrong(where, entry, "a mapping with name and " + inner, path)
            _expect(entry.get("name"), STRING, f"{where}.name", path)
            body = entry.get(inner)
            _expect(body, MAPPING, f"{where}.{inner}", path)
            for key, kind in fields.items():
                _expect((body or {}).get(key), kind, f"{where}.{inner}.{key}", path)
            exec_cfg = (body or {}).get("exec") if inner == "user" else None
            if exec_cfg:
                _check_exec(exec_cfg, f"{where}.user.exec", path)


def _check_exec(exec_cfg: dict, where: str, path: str) -> None:
    for key, kind in EXEC_FIELDS.items():
        value = exec_cfg.get(key)
        if key == "args":
            if value is not None and not (isinstance(value, list)
                                          and all(isinstance(a, str) for a in value)):
                raise _wrong(f"{where}.args", value, STRINGS, path)
        elif key == "env":
            if value is not None and not (isinstance(value, list) and all(
                    isinstance(e, dict) and isinstance(e.get("name"), str)
                    and isinstance(e.get("value", ""), str) for e in value)):
                raise _wrong(f"{where}.env", value, kind, path)
        else:
            _expect(value, kind, f"{where}.{key}", path)


def _expect(value: Any, kind: str, where: str, path: str) -> None:
    if value is None:
        return
    if kind == STRINGS:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise _wrong(where, value, kind, path)
        return
    wanted = _TYPES[kind]
    # bool is an int in Python but not a string; a string is never a bool.
    if not isinstance(value, wanted):
        raise _wrong(where, value, kind, path)


def _wrong(where: str, value: Any, expected: str, path: str) -> BadInputError:
    return BadInputError(f"kubeconfig {path}: {where} is {_kind_of(value)}, expected {expected}",
                         hint="fix that field in the file")


def _kind_of(value: Any) -> str:
    """What a YAML value is, in the words of the expectations above (never the value)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def yaml_reason(error: Exception) -> str:
    """A YAML error as one line: the problem and its line/column, without quoting the file."""
    problem = getattr(error, "problem", None) or type(error).__name__
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem


# A token goes into an `Authorization: Bearer` header: visible ASCII, spaces and tabs only
# (RFC 9110 field-value; Go's httpguts.ValidHeaderFieldValue rejects control characters too).
_HEADER_SAFE = re.compile(r"[\t\x20-\x7e]*")


def check_token(token: str, what: str) -> str:
    """`token` if it can be sent in a header; else a BadInputError naming `what`, never the
    token itself."""
    if not _HEADER_SAFE.fullmatch(token):
        raise BadInputError(f"{what} contains a line break, a control character or a non-ASCII "
                            "character, which cannot be sent in an HTTP header",
                            hint="check that it is the right token or token file")
    return token


def server_url(raw: str, what: str, tls: bool) -> tuple[str, bool]:
    """(the server URL to use, whether it named its scheme) for `server:` of `what`.

    As client-go's `rest.DefaultServerURL`: a bare `host:port` gets https:// when TLS is
    configured (a CA, a client certificate or insecure-skip-tls-verify), else http://; a URL
    with any other scheme than http/https is refused, like Go's HTTP client does
    ("unsupported protocol scheme")."""
    text = raw.strip()
    shown = redact(text)
    said = "://" in text
    if not said:
        text = ("https://" if tls else "http://") + text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as e:
        raise BadInputError(f"{what}: server {shown!r} is not a URL ({e})",
                            hint="expected e.g. https://203.0.113.10:6443") from None
    if parts.scheme not in ("http", "https"):
        raise BadInputError(f"{what}: server {shown!r} has an unsupported protocol scheme "
                            f'"{parts.scheme}"', hint="use https://")
    if not parts.hostname:
        raise BadInputError(f"{what}: server {shown!r} has no host",
                            hint="expected e.g. https://203.0.113.10:6443")
    if parts.query or parts.fragment:
        raise BadInputError(f"{what}: server {shown!r} has a query or fragment",
                            hint="expected e.g. https://203.0.113.10:6443[/path-prefix]")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/"), said


def redact(url: str) -> str:
    """`url` without the user:password a URL may carry before its host."""
    return re.sub(r"//[^/@]*@", "//REDACTED@", url, count=1)
