"""The same API-server settings for kubeadm, k3s, kind and MicroK8s, printed in each one's format.

Facts each format rests on:
- kube-apiserver takes --service-account-issuer and --service-account-key-file repeatedly (the
  first issuer signs, all are accepted); --service-account-signing-key-file once; --api-audiences
  defaults to the first issuer when absent.
- kubeadm v1beta4 (the default since kubeadm 1.31) writes extraArgs as a list of {name, value} that
  may repeat a name; v1beta3's map could not, which is why we print v1beta4.
- k3s: the first `kube-apiserver-arg` of a name replaces k3s's default, later ones of the same
  name are appended in order, so we list previous values explicitly.
- kind builds a new cluster (no token was issued before), and its unversioned kubeadm patch is a
  map that holds one value per flag, which is all a new cluster needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from webhook.apiserver.keyfiles import SigningKeyPair
from webhook.apiserver.microk8s import DEFAULT_SNAP_DATA, file_reference
from webhook.errors import UsageError

FORMATS = ("microk8s", "kubeadm", "k3s", "kind")
KIND_NODE_KEY_DIR = "/etc/kubernetes/irsa"
VOLUME_NAME = "irsa-keys"


@dataclass(frozen=True)
class Distribution:
    """Where a distribution keeps keys and what it configures out of the box."""

    name: str
    default_key_dir: str
    previous_issuers: tuple[str, ...]
    previous_key_files: tuple[str, ...]
    previous_audiences: tuple[str, ...]


KUBE_CLUSTER_LOCAL = "https://kubernetes.default.svc.cluster.local"
DISTRIBUTIONS = {
    "microk8s": Distribution(
        "microk8s",
        str(DEFAULT_SNAP_DATA / "certs" / "irsa"),
        ("https://kubernetes.default.svc",),
        ("${SNAP_DATA}/certs/serviceaccount.key",),
        ("https://kubernetes.default.svc",),
    ),
    "kubeadm": Distribution(
        "kubeadm",
        "/etc/kubernetes/irsa",
        (KUBE_CLUSTER_LOCAL,),
        ("/etc/kubernetes/pki/sa.pub",),
        (KUBE_CLUSTER_LOCAL,),
    ),
    "k3s": Distribution(
        "k3s",
        "/var/lib/rancher/k3s/server/tls/irsa",
        (KUBE_CLUSTER_LOCAL,),
        ("/var/lib/rancher/k3s/server/tls/service.key",),
        (KUBE_CLUSTER_LOCAL, "k3s"),
    ),
    "kind": Distribution("kind", "irsa-keys", (), (), ()),
}


@dataclass(frozen=True)
class ApiServerFlags:
    """The four settings, each value as the API server will read it."""

    issuers: tuple[str, ...]
    key_files: tuple[str, ...]
    signing_key_file: str
    audiences: tuple[str, ...]

    def pairs(self) -> list[tuple[str, str]]:
        """(flag, value) in the order they should be given; repeated flags stay repeated."""
        pairs = [("service-account-issuer", issuer) for issuer in self.issuers]
        pairs += [("service-account-key-file", path) for path in self.key_files]
        pairs.append(("service-account-signing-key-file", self.signing_key_file))
        if self.audiences:
            pairs.append(("api-audiences", ",".join(self.audiences)))
        return pairs


def _dedup(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def flags_for(
    distribution: Distribution,
    issuer: str,
    pair: SigningKeyPair,
    key_dir: str,
    *,
    extra_audiences: tuple[str, ...] = (),
    previous_issuers: tuple[str, ...] | None = None,
    previous_key_files: tuple[str, ...] | None = None,
    drop_previous: bool = False,
) -> ApiServerFlags:
    """New issuer and key first; the previous ones kept so tokens already issued stay valid."""
    if distribution.name == "kind" and (previous_issuers or previous_key_files):
        raise UsageError(
            "kind builds a new cluster from this config: there is no previous issuer or key "
            "to keep (drop --previous-issuer/--previous-key-file)"
        )
    old_issuers = distribution.previous_issuers if previous_issuers is None else previous_issuers
    old_keys = distribution.previous_key_files if previous_key_files is None else previous_key_files
    if drop_previous:
        old_issuers, old_keys = (), ()
    # Without a previous setting the API server accepts its first issuer: keep that one too.
    base = distribution.previous_audiences or (issuer,)
    audiences = _dedup(list(base) + list(extra_audiences))
    if audiences == (issuer,):
        audiences = ()  # the API server's default already
    return ApiServerFlags(
        issuers=_dedup([issuer, *old_issuers]),
        key_files=_dedup([*old_keys, f"{key_dir}/{pair.public_name}"]),
        signing_key_file=f"{key_dir}/{pair.private_name}",
        audiences=audiences,
    )


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (kind's kubeadm patch) as `|` blocks a person can read and edit."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def _dump(document: object) -> str:
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)


def _host_path_volume(path: str) -> dict[str, object]:
    return {
        "name": VOLUME_NAME,
        "hostPath": path,
        "mountPath": path,
        "readOnly": True,
        "pathType": "Directory",
    }


def render_microk8s(flags: ApiServerFlags) -> str:
    return "".join(f"--{name}={value}\n" for name, value in flags.pairs())


def render_kubeadm(flags: ApiServerFlags, key_dir: str) -> str:
    return _dump(
        {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "ClusterConfiguration",
            "apiServer": {
                "extraArgs": [{"name": name, "value": value} for name, value in flags.pairs()],
                "extraVolumes": [_host_path_volume(key_dir)],
            },
        }
    )


def render_k3s(flags: ApiServerFlags) -> str:
    return _dump({"kube-apiserver-arg": [f"{name}={value}" for name, value in flags.pairs()]})


def render_kind(flags: ApiServerFlags, host_key_dir: str) -> str:
    patch = _dump(
        {
            "kind": "ClusterConfiguration",
            "apiServer": {
                "extraArgs": dict(flags.pairs()),
                "extraVolumes": [_host_path_volume(KIND_NODE_KEY_DIR)],
            },
        }
    )
    return _dump(
        {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "nodes": [
                {
                    "role": "control-plane",
                    "extraMounts": [
                        {
                            "hostPath": host_key_dir,
                            "containerPath": KIND_NODE_KEY_DIR,
                            "readOnly": True,
                        }
                    ],
                }
            ],
            "kubeadmConfigPatches": [patch],
        }
    )


@dataclass(frozen=True)
class Rendered:
    config: str  # what goes to stdout
    key_dir_on_host: str  # where the key copies must be put
    next_steps: str  # how to apply it


_NEXT_STEPS = {
    "microk8s": (
        "add these lines to /var/snap/microk8s/current/args/kube-apiserver in place of the "
        "current ones, or let `irsa-webhook microk8s configure` do it (with a backup), then "
        "restart: microk8s stop && microk8s start"
    ),
    "kubeadm": (
        "new cluster: `kubeadm init --config` with this ClusterConfiguration. Existing cluster: "
        "merge it into the ClusterConfiguration of the kubeadm-config ConfigMap in kube-system, "
        "then on every control-plane node `kubeadm init phase control-plane apiserver --config "
        "FILE` rewrites the kube-apiserver manifest (the kubelet restarts it)"
    ),
    "k3s": (
        "merge the list into /etc/rancher/k3s/config.yaml on every server node, then "
        "`systemctl restart k3s`"
    ),
    "kind": "kind create cluster --config FILE",
}


def render(
    format_name: str,
    issuer: str,
    pair: SigningKeyPair,
    *,
    key_dir: Path | None = None,
    extra_audiences: tuple[str, ...] = (),
    previous_issuers: tuple[str, ...] | None = None,
    previous_key_files: tuple[str, ...] | None = None,
    drop_previous: bool = False,
) -> Rendered:
    distribution = DISTRIBUTIONS[format_name]
    host_dir = (key_dir or Path(distribution.default_key_dir)).absolute()
    if format_name == "kind":
        flag_dir = KIND_NODE_KEY_DIR
    elif format_name == "microk8s":
        flag_dir = file_reference(host_dir, DEFAULT_SNAP_DATA)
    else:
        flag_dir = str(host_dir)
    flags = flags_for(
        distribution,
        issuer,
        pair,
        flag_dir,
        extra_audiences=extra_audiences,
        previous_issuers=previous_issuers,
        previous_key_files=previous_key_files,
        drop_previous=drop_previous,
    )
    if format_name == "kubeadm":
        config = render_kubeadm(flags, flag_dir)
    elif format_name == "k3s":
        config = render_k3s(flags)
    elif format_name == "kind":
        config = render_kind(flags, str(host_dir))
    else:
        config = render_microk8s(flags)
    return Rendered(config, str(host_dir), _NEXT_STEPS[format_name])
