"""The pod spec fields the sandbox's kubelet acts on, validated as the real API server does
before it stores a pod (pkg/apis/core/validation/validation.go): `restartPolicy`
(`validateRestartPolicy`) and `activeDeadlineSeconds` (`ValidatePodSpec` on create: 1 to
2^31-1; `ValidatePodUpdate`: 0 to 2^31-1, set where unset or lowered, never raised or
removed). A value that is not an integer at all fails earlier, when the body is decoded."""

from __future__ import annotations

from .server import ApiError

MAX_INT32 = 2**31 - 1
RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _invalid(name: str, field: str, detail: str) -> ApiError:
    return ApiError(422, "Invalid", f'Pod "{name}" is invalid: {field}: {detail}',
                    {"name": name, "kind": "Pod",
                     "causes": [{"reason": "FieldValueInvalid", "message": detail,
                                 "field": field}]})


def _not_an_integer(value) -> ApiError:
    """encoding/json's complaint about a JSON value that is no int64."""
    json_type = ("bool" if isinstance(value, bool) else f"number {value}"
                 if isinstance(value, float) else {str: "string", list: "array",
                                                   dict: "object"}.get(type(value), "value"))
    return ApiError(400, "BadRequest", 'Pod in version "v1" cannot be handled as a Pod: json: '
                    f"cannot unmarshal {json_type} into Go struct field "
                    "PodSpec.spec.activeDeadlineSeconds of type int64")


def validate(kind, obj: dict, old: dict | None) -> None:
    """An admission callable `(kind, obj, old)` for `Api.admission`."""
    if kind.key != "pods":
        return
    name = (obj.get("metadata") or {}).get("name", "")
    spec = obj.get("spec") or {}
    policy = spec.get("restartPolicy")
    if old is None and policy is not None and policy not in RESTART_POLICIES:
        supported = ", ".join(f'"{p}"' for p in RESTART_POLICIES)
        raise _invalid(name, "spec.restartPolicy",
                       f'Unsupported value: "{policy}": supported values: {supported}')
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is None:
        if old is not None and (old.get("spec") or {}).get("activeDeadlineSeconds") is not None:
            raise _invalid(name, "spec.activeDeadlineSeconds",
                           "Invalid value: \"null\": must not update from a positive integer "
                           "to nil value")
        return
    if isinstance(deadline, bool) or not isinstance(deadline, int):
        raise _not_an_integer(deadline)
    low = 1 if old is None else 0
    if not low <= deadline <= MAX_INT32:
        raise _invalid(name, "spec.activeDeadlineSeconds", f"Invalid value: {deadline}: must be "
                       f"between {low} and {MAX_INT32}, inclusive")
    previous = (old or {}).get("spec", {}).get("activeDeadlineSeconds")
    if previous is not None and deadline > previous:
        raise _invalid(name, "spec.activeDeadlineSeconds", f"Invalid value: {deadline}: must be "
                       "less than or equal to previous value")
