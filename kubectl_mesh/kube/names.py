"""Kubernetes object names, label keys and values, checked as the API machinery does
(k8s.io/apimachinery `pkg/api/validate/content`: `IsDNS1123Label`, `IsDNS1123Subdomain`,
`IsLabelKey`, `IsLabelValue`). Each check returns what is wrong in words, or "" when valid.

Only the standard library: the flag parser imports this on every run.
"""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_KEY_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_MAX, SUBDOMAIN_MAX = 63, 253


def dns1123_label_problem(value: str) -> str:
    """Why `value` is no DNS-1123 label (what a namespace name is), or ""."""
    if len(value) > LABEL_MAX:
        return f"is longer than {LABEL_MAX} characters"
    if not DNS1123_LABEL.fullmatch(value):
        return ("is not a DNS-1123 label (lower-case letters, digits and '-', starting and "
                "ending with a letter or digit)")
    return ""


def dns1123_subdomain_problem(value: str) -> str:
    """Why `value` is no DNS-1123 subdomain (what pod and workload names are), or ""."""
    if len(value) > SUBDOMAIN_MAX:
        return f"is longer than {SUBDOMAIN_MAX} characters"
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        return ("is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit)")
    return ""


def label_key_problem(key: str) -> str:
    """Why `key` is no label key (`[prefix/]name`), or ""."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if "/" in prefix:
            return "has more than one '/'"
        if not prefix:
            return "has an empty prefix before '/'"
        problem = dns1123_subdomain_problem(prefix)
        if problem:
            return f"has a prefix that {problem}"
    if not name:
        return "has an empty name"
    if len(name) > LABEL_MAX:
        return f"has a name longer than {LABEL_MAX} characters"
    if not _LABEL_KEY_NAME.fullmatch(name):
        return ("has a name that is not letters, digits, '-', '_' or '.' starting and ending "
                "with a letter or digit")
    return ""


def label_value_problem(value: str) -> str:
    """Why `value` is no label value, or "" (the empty value is valid)."""
    if len(value) > LABEL_MAX:
        return f"is longer than {LABEL_MAX} characters"
    if value and not _LABEL_KEY_NAME.fullmatch(value):
        return "is not letters, digits, '-', '_' or '.' starting and ending with a letter or digit"
    return ""
