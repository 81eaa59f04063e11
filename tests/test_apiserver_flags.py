"""`irsa-webhook apiserver flags`: each format parsed back (YAML with yaml.safe_load)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from test_microk8s import KeyFiles, bash_words, make_keys, values

from webhook.apiserver.argsfile import ArgsFile

ISSUER = "https://oidc.example.com/cluster-1"
CLUSTER_LOCAL = "https://kubernetes.default.svc.cluster.local"


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return make_keys(tmp_path / "keys")


def flags(keys: KeyFiles, fmt: str, *extra: str) -> str:
    result = run_cli(
        "apiserver", "flags", "--issuer", ISSUER, "--public-key", str(keys.public),
        "--signing-key", str(keys.private), "--format", fmt, *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "install -m 0600" in result.stderr  # where the key copies go, on stderr
    return result.stdout


def test_kubeadm_v1beta4_repeats_flags_and_mounts_the_key_folder(keys: KeyFiles) -> None:
    config = yaml.safe_load(flags(keys, "kubeadm", "--key-dir", "/etc/kubernetes/irsa"))

    assert config["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert config["kind"] == "ClusterConfiguration"
    args = [(arg["name"], arg["value"]) for arg in config["apiServer"]["extraArgs"]]
    prefix = f"/etc/kubernetes/irsa/sa-signer-{keys.kid[:16]}"
    assert args == [
        ("service-account-issuer", ISSUER),
        ("service-account-issuer", CLUSTER_LOCAL),
        ("service-account-key-file", "/etc/kubernetes/pki/sa.pub"),
        ("service-account-key-file", f"{prefix}.pub"),
        ("service-account-signing-key-file", f"{prefix}.key"),
        ("api-audiences", CLUSTER_LOCAL),
    ]
    (volume,) = config["apiServer"]["extraVolumes"]
    assert volume["hostPath"] == volume["mountPath"] == "/etc/kubernetes/irsa"
    assert volume["readOnly"] is True


def test_k3s_lists_previous_values_explicitly(keys: KeyFiles) -> None:
    config = yaml.safe_load(flags(keys, "k3s", "--api-audiences", "vault"))

    args = config["kube-apiserver-arg"]
    tls = "/var/lib/rancher/k3s/server/tls"
    assert args == [
        f"service-account-issuer={ISSUER}",
        f"service-account-issuer={CLUSTER_LOCAL}",
        f"service-account-key-file={tls}/service.key",
        f"service-account-key-file={tls}/irsa/sa-signer-{keys.kid[:16]}.pub",
        f"service-account-signing-key-file={tls}/irsa/sa-signer-{keys.kid[:16]}.key",
        f"api-audiences={CLUSTER_LOCAL},k3s,vault",
    ]


def test_kind_patch_and_mount_meet_in_the_node(keys: KeyFiles, tmp_path: Path) -> None:
    host_dir = tmp_path / "irsa-keys"
    config = yaml.safe_load(flags(keys, "kind", "--key-dir", str(host_dir)))

    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    (node,) = config["nodes"]
    (mount,) = node["extraMounts"]
    assert node["role"] == "control-plane"
    assert mount["hostPath"] == str(host_dir)
    (patch_text,) = config["kubeadmConfigPatches"]
    patch = yaml.safe_load(patch_text)
    assert patch["kind"] == "ClusterConfiguration"
    extra_args = patch["apiServer"]["extraArgs"]
    assert extra_args["service-account-issuer"] == ISSUER
    assert extra_args["service-account-signing-key-file"].startswith(mount["containerPath"] + "/")
    assert extra_args["service-account-key-file"].startswith(mount["containerPath"] + "/")
    (volume,) = patch["apiServer"]["extraVolumes"]
    assert volume["hostPath"] == mount["containerPath"] == volume["mountPath"]


def test_microk8s_lines_read_as_the_wrapper_shell_reads_them(
    keys: KeyFiles, tmp_path: Path
) -> None:
    text = flags(keys, "microk8s")
    (tmp_path / "lines").write_text(text)

    words = bash_words(tmp_path / "lines", Path("/var/snap/microk8s/current"))
    assert ArgsFile(text).active_words({"SNAP_DATA": "/var/snap/microk8s/current"}) == words
    assert values(words, "service-account-issuer") == [ISSUER, "https://kubernetes.default.svc"]
    assert values(words, "service-account-signing-key-file") == [
        f"/var/snap/microk8s/current/certs/irsa/sa-signer-{keys.kid[:16]}.key"
    ]


def test_drop_previous_and_explicit_previous_values(keys: KeyFiles) -> None:
    dropped = yaml.safe_load(flags(keys, "k3s", "--drop-previous"))["kube-apiserver-arg"]
    assert [a for a in dropped if a.startswith("service-account-issuer=")] == [
        f"service-account-issuer={ISSUER}"
    ]
    previous = ("--previous-issuer", "https://old.example")
    previous += ("--previous-key-file", "/etc/kubernetes/pki/old.pub")
    kept = yaml.safe_load(flags(keys, "kubeadm", *previous))["apiServer"]["extraArgs"]
    assert [a["value"] for a in kept if a["name"] == "service-account-issuer"] == [
        ISSUER,
        "https://old.example",
    ]
    assert [a["value"] for a in kept if a["name"] == "service-account-key-file"][:1] == [
        "/etc/kubernetes/pki/old.pub"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--format", "kind", "--previous-issuer", "https://old.example"), "new cluster"),
        (("--format", "k3s", "--issuer", "https://oidc.example.com/"), "must not end with"),
        (("--format", "k3s", "--key-dir", "/etc/my keys"), "space"),
    ],
)
def test_refusals_are_one_line_exit_2(keys: KeyFiles, extra: tuple[str, ...], message: str) -> None:
    result = run_cli(
        "apiserver", "flags", "--issuer", ISSUER, "--public-key", str(keys.public),
        "--signing-key", str(keys.private), *extra,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stdout == ""


def test_mismatched_keys_are_refused(keys: KeyFiles, tmp_path: Path) -> None:
    other = make_keys(tmp_path / "other")
    result = run_cli(
        "apiserver", "flags", "--issuer", ISSUER, "--public-key", str(other.public),
        "--signing-key", str(keys.private), "--format", "kubeadm",
    )  # fmt: skip
    assert result.returncode == 2 and "not the public half" in result.stderr
