"""The pure core: what the webhook does to one pod. No I/O, no globals.

The patch has the reference webhook's shape (aws/amazon-eks-pod-identity-webhook): the token
volume first (`add /spec/volumes` when the pod has none, else prepended at `/spec/volumes/0`),
then the whole `containers` list and, when there are any, the whole `initContainers` list. Only
the containers we change are new dicts; the rest of the pod is shared, never copied, because
this runs for every pod created in the cluster.

Unlike the reference, a pod that needs no change gets an empty patch (reinvocation is a no-op),
and every decision a user could be surprised by comes back as a warning.
"""

from __future__ import annotations

import csv
import functools
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook.goparse import parse_go_bool, parse_go_int64
from webhook.identity import ServiceAccountIdentity
from webhook.settings import MIN_TOKEN_EXPIRATION, MutationSettings

Outcome = Literal["mutated", "skipped"]

VOLUME_NAME = "aws-iam-token"
TOKEN_FILE_NAME = "token"

ROLE_ARN_ENV = "AWS_ROLE_ARN"
TOKEN_FILE_ENV = "AWS_WEB_IDENTITY_TOKEN_FILE"
REGION_ENV = "AWS_REGION"
DEFAULT_REGION_ENV = "AWS_DEFAULT_REGION"
STS_REGIONAL_ENV = "AWS_STS_REGIONAL_ENDPOINTS"

# The reference logs (and we warn about) role ARNs that do not look like IAM roles.
_ROLE_ARN = re.compile(r"^arn:aws[a-z0-9-]*:iam::\d{12}:role/[\w/.@+=,-]+$")
# Go's strconv.ParseInt(s, 10, 64): optional sign, ASCII digits, nothing else.
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_INT64_MAX = 2**63 - 1
# kube-apiserver refuses projected tokens valid longer than this; the reference injects it anyway.
MAX_TOKEN_EXPIRATION = 2**32
# Admission warnings are shown one per line by kubectl; keep user values short and printable.
_MAX_QUOTED = 80


@dataclass(frozen=True, slots=True)
class Mutation:
    """The answer for one pod: JSON Patch ops (empty when nothing changes) and the explanation."""

    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = "skipped"
    reason: str = ""  # why the pod was not mutated, for logs and review; "" when mutated


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the ServiceAccount, the flags and the pod annotations decide together."""

    role_arn: str
    audience: str
    regional_sts: bool
    token_expiration: int
    token_file: str
    skip: frozenset[str]


def quoted(value: object) -> str:
    """A user-supplied value for a warning: quoted, printable, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    if len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 3] + "..."
    return f'"{text}"'


def is_role_arn(value: str) -> bool:
    return bool(_ROLE_ARN.match(value))


@functools.lru_cache(maxsize=64)  # the same few mount paths, for every pod
def token_file_path(mount_path: str, windows: bool) -> str:
    """`<mount path>/token` cleaned like Go's filepath.Join; `C:\\...` on Windows nodes."""
    path = posixpath.normpath(posixpath.join(mount_path, TOKEN_FILE_NAME))
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return "C:" + path.replace("/", "\\") if windows else path


def projected_token_volume(audience: str, expiration: int) -> dict[str, Any]:
    token: dict[str, Any] = {"audience": audience} if audience else {}
    token["expirationSeconds"] = expiration
    token["path"] = TOKEN_FILE_NAME
    return {"name": VOLUME_NAME, "projected": {"sources": [{"serviceAccountToken": token}]}}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def service_account_name(spec: Mapping[str, Any]) -> str:
    """The pod's ServiceAccount: serviceAccountName, else the deprecated serviceAccount."""
    for key in ("serviceAccountName", "serviceAccount"):
        value = spec.get(key)
        if isinstance(value, str) and value:
            return value
    return "default"


def _expiration(raw: str | None, fallback: int, where: str, key: str, warnings: list[str]) -> int:
    """A token-expiration annotation: invalid -> fallback (warned), below the minimum -> raised."""
    if raw is None:
        return fallback
    parsed = parse_go_int64(raw)
    if parsed is None:
        warnings.append(
            f"{where} annotation {key}={quoted(raw)} is not a whole number of seconds: "
            f"ignored, token expiration is {fallback}s"
        )
        return fallback
    if parsed < MIN_TOKEN_EXPIRATION:
        warnings.append(
            f"{where} annotation {key}={quoted(raw)} is below the API server's minimum: "
            f"token expiration raised to {MIN_TOKEN_EXPIRATION}s"
        )
        return MIN_TOKEN_EXPIRATION
    if parsed > MAX_TOKEN_EXPIRATION:
        warnings.append(
            f"{where} annotation {key}={quoted(raw)} is above the API server's maximum of "
            f"{MAX_TOKEN_EXPIRATION}s: the API server will reject the pod"
        )
    return parsed


def _skip_containers(raw: str | None, key: str, warnings: list[str]) -> frozenset[str]:
    """The reference reads the annotation as one CSV record; a malformed one skips nothing."""
    if raw is None:
        return frozenset()
    try:
        record = next(csv.reader([raw.split("\n", 1)[0]], strict=True), [])
    except csv.Error:
        warnings.append(
            f"pod annotation {key}={quoted(raw)} is not a comma-separated list: "
            "no container skipped"
        )
        return frozenset()
    return frozenset(record)


def _plan(
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    identity: ServiceAccountIdentity,
    settings: MutationSettings,
    role_arn: str,
    warnings: list[str],
) -> _Plan:
    sa = identity.annotations
    audience_key = settings.annotation("audience")
    audience = sa.get(audience_key, settings.token_audience)

    regional = settings.sts_regional_endpoint
    sts_key = settings.annotation("sts-regional-endpoints")
    if sts_key in sa:
        parsed = parse_go_bool(sa[sts_key])
        if parsed is None:
            warnings.append(
                f"ServiceAccount annotation {sts_key}={quoted(sa[sts_key])} is not true or "
                f"false: ignored, regional STS endpoint is {str(regional).lower()}"
            )
        else:
            regional = parsed

    expiration_key = settings.annotation("token-expiration")
    expiration = _expiration(
        sa.get(expiration_key),
        settings.token_expiration,
        "ServiceAccount",
        expiration_key,
        warnings,
    )
    pod_annotations = _mapping(_mapping(pod.get("metadata")).get("annotations"))
    pod_expiration = pod_annotations.get(expiration_key)
    expiration = _expiration(
        pod_expiration if isinstance(pod_expiration, str) else None,
        expiration,
        "pod",
        expiration_key,
        warnings,
    )

    skip_key = settings.annotation("skip-containers")
    skip_raw = pod_annotations.get(skip_key)
    skip = _skip_containers(skip_raw if isinstance(skip_raw, str) else None, skip_key, warnings)

    node_selector = _mapping(spec.get("nodeSelector"))
    windows = "windows" in (
        node_selector.get("kubernetes.io/os"),
        node_selector.get("beta.kubernetes.io/os"),
    )
    return _Plan(
        role_arn=role_arn,
        audience=audience,
        regional_sts=regional,
        token_expiration=expiration,
        token_file=token_file_path(settings.token_mount_path, windows),
        skip=skip,
    )


def _existing_token_volume(
    spec: Mapping[str, Any], audience: str
) -> tuple[Mapping[str, Any] | None, bool]:
    """The pod's volume named aws-iam-token, and whether it is the token this webhook injects."""
    for volume in _sequence(spec.get("volumes")):
        if not isinstance(volume, Mapping) or volume.get("name") != VOLUME_NAME:
            continue
        for source in _sequence(_mapping(volume.get("projected")).get("sources")):
            token = _mapping(_mapping(source).get("serviceAccountToken"))
            if (
                token
                and (token.get("audience") or "") == audience
                and token.get("path") == TOKEN_FILE_NAME
            ):
                return volume, True
        return volume, False
    return None, False


def _env_names(env: Sequence[Any]) -> set[str]:
    return {e["name"] for e in env if isinstance(e, Mapping) and isinstance(e.get("name"), str)}


def _named(kind: str, container: Mapping[str, Any]) -> str:
    """`container "app"` for a warning; built only when there is one to give."""
    return f"{kind} {quoted(container.get('name', ''))}"


def _mutate_container(
    container: Mapping[str, Any],
    kind: str,
    plan: _Plan,
    settings: MutationSettings,
    warnings: list[str],
) -> dict[str, Any] | None:
    """The changed container, or None when it needs nothing (or cannot be changed safely)."""
    env = container.get("env")
    mounts = container.get("volumeMounts")
    if (env is not None and not isinstance(env, list)) or (
        mounts is not None and not isinstance(mounts, list)
    ):
        warnings.append(
            f"{_named(kind, container)} has a malformed env or volumeMounts: left unchanged"
        )
        return None
    env = env or []
    mounts = mounts or []
    names = _env_names(env)

    for item in env:
        if (
            isinstance(item, Mapping)
            and item.get("name") == ROLE_ARN_ENV
            and isinstance(item.get("value"), str)
            and item["value"] != plan.role_arn
        ):
            warnings.append(
                f"{_named(kind, container)} sets {ROLE_ARN_ENV}={quoted(item['value'])}, not the "
                f"ServiceAccount's role {quoted(plan.role_arn)}: the container's value is kept"
            )

    web_identity = ROLE_ARN_ENV in names or TOKEN_FILE_ENV in names
    region = REGION_ENV in names or DEFAULT_REGION_ENV in names
    regional_sts = STS_REGIONAL_ENV in names
    if web_identity and region and regional_sts:
        return None  # the reference leaves such a container entirely alone, mount included

    added: list[dict[str, str]] = []
    if not regional_sts and plan.regional_sts:
        added.append({"name": STS_REGIONAL_ENV, "value": "regional"})
    if not region and settings.aws_default_region:
        added.append({"name": DEFAULT_REGION_ENV, "value": settings.aws_default_region})
        added.append({"name": REGION_ENV, "value": settings.aws_default_region})
    if not web_identity:
        added.append({"name": ROLE_ARN_ENV, "value": plan.role_arn})
        added.append({"name": TOKEN_FILE_ENV, "value": plan.token_file})

    new_mount: dict[str, Any] | None = None
    mount_path = settings.token_mount_path
    if not any(isinstance(m, Mapping) and m.get("name") == VOLUME_NAME for m in mounts):
        clash = next(
            (
                m
                for m in mounts
                if isinstance(m, Mapping)
                and isinstance(m.get("mountPath"), str)
                and m["mountPath"].rstrip("/") == mount_path.rstrip("/")
            ),
            None,
        )
        if clash is None:
            new_mount = {"name": VOLUME_NAME, "readOnly": True, "mountPath": mount_path}
        else:
            warnings.append(
                f"{_named(kind, container)} already mounts volume "
                f"{quoted(clash.get('name', ''))} at {mount_path}: token not mounted there, "
                "the API server would reject a second mount at the same path"
            )

    if not added and new_mount is None:
        return None
    changed = dict(container)
    if added:
        changed["env"] = [*env, *added]
    if new_mount is not None:
        changed["volumeMounts"] = [*mounts, new_mount]
    return changed


def _not_mutated(reason: str, warnings: list[str] | None = None) -> Mutation:
    return Mutation(warnings=warnings or [], outcome="skipped", reason=reason)


def mutate_pod(
    pod: Mapping[str, Any],
    identity: ServiceAccountIdentity | None,
    settings: MutationSettings,
    *,
    namespace: str = "",
) -> Mutation:
    """identity None means the ServiceAccount is unknown (no mutation, a warning).

    `namespace` (the request's) only names the ServiceAccount in messages.
    """
    if not isinstance(pod, Mapping) or not isinstance(pod.get("spec"), Mapping):
        return _not_mutated("the object is not a pod with a spec")
    spec: Mapping[str, Any] = pod["spec"]
    account = service_account_name(spec)
    if identity is None:
        where = namespace or str(_mapping(pod.get("metadata")).get("namespace") or "")
        full = f"{where}/{account}" if where else account
        return _not_mutated(
            f"ServiceAccount {full} not found",
            [f"ServiceAccount {quoted(full)} not found: no AWS credentials injected"],
        )

    role_key = settings.annotation("role-arn")
    role_arn = identity.annotations.get(role_key, "")
    if not role_arn:
        return _not_mutated(f"ServiceAccount {identity.name} has no {role_key} annotation")

    warnings: list[str] = []
    if not is_role_arn(role_arn):
        warnings.append(
            f"ServiceAccount annotation {role_key}={quoted(role_arn)} is not an IAM role ARN "
            "(arn:<partition>:iam::<account>:role/<name>): injected as is, STS will refuse it"
        )
    plan = _plan(pod, spec, identity, settings, role_arn, warnings)

    volume, ours = _existing_token_volume(spec, plan.audience)
    if volume is not None and not ours:
        warnings.append(
            f"the pod declares its own volume {VOLUME_NAME}, which is reserved for the "
            f"projected token of audience {quoted(plan.audience)}: pod not mutated"
        )
        return _not_mutated(f"pod declares its own {VOLUME_NAME} volume", warnings)

    known: set[str] = set()
    lists: dict[str, tuple[list[Any], bool]] = {}
    mutated_names: list[str] = []
    for key, kind in (("initContainers", "init container"), ("containers", "container")):
        containers = spec.get(key)
        if not isinstance(containers, list):
            continue
        result: list[Any] = []
        changed_any = False
        for container in containers:
            if not isinstance(container, Mapping):
                result.append(container)
                continue
            container_name = container.get("name")
            if isinstance(container_name, str):
                known.add(container_name)
            if container_name in plan.skip:
                result.append(container)
                continue
            changed = _mutate_container(container, kind, plan, settings, warnings)
            if changed is None:
                result.append(container)
            else:
                result.append(changed)
                changed_any = True
                mutated_names.append(str(container_name))
        lists[key] = (result, changed_any)

    for unknown in sorted(plan.skip - known):
        warnings.append(
            f"pod annotation {settings.annotation('skip-containers')} names "
            f"{quoted(unknown)}, which is not a container of this pod"
        )

    patch: list[dict[str, Any]] = []
    if volume is None:
        new_volume = projected_token_volume(plan.audience, plan.token_expiration)
        if isinstance(spec.get("volumes"), list):
            patch.append({"op": "add", "path": "/spec/volumes/0", "value": new_volume})
        else:
            patch.append({"op": "add", "path": "/spec/volumes", "value": [new_volume]})
    if volume is None or any(changed for _, changed in lists.values()):
        if "containers" in lists:
            patch.append({"op": "add", "path": "/spec/containers", "value": lists["containers"][0]})
        init = lists.get("initContainers")
        if init and init[0]:
            patch.append({"op": "add", "path": "/spec/initContainers", "value": init[0]})

    if not patch:
        return _not_mutated("already mutated: nothing to add", warnings)

    audit = {
        "role-arn": plan.role_arn,
        "audience": plan.audience,
        "token-expiration": str(plan.token_expiration),
    }
    if mutated_names:
        audit["containers"] = ",".join(mutated_names)
    return Mutation(patch=patch, warnings=warnings, audit_annotations=audit, outcome="mutated")
