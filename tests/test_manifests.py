"""The kustomize trees, built by `kubectl kustomize` as a user builds them, checked for what keeps a
cluster safe (fail open, never intercept itself, least privilege) and for a working install.

The self-signed tree is built in a copy of the repository layout after running `irsa-webhook
certs` there, so the real certs/ is never touched.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import REPO_ROOT
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from webhook import __version__
from webhook.cli import build_parser, main
from webhook.server.envflags import env_name, raise_for_bad_env
from webhook.servingcerts import service_dns_names

TREES = ("self-signed", "cert-manager")
SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
CERT_MANAGER_GROUP = "cert-manager.io/"
NAMESPACE = "irsa-webhook"
SECRET_KEYS = {"tls.crt", "tls.key", "ca.crt"}

Obj = dict[str, Any]


def kustomize(tree: Path) -> list[Obj]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(tree)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone-like layout (manifests/, certs/kustomization.yaml), then `irsa-webhook certs`."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(REPO_ROOT / "manifests", root / "manifests")
    (root / "certs").mkdir()
    shutil.copy(REPO_ROOT / "certs" / "kustomization.yaml", root / "certs")
    assert main(["certs", "--out", str(root / "certs")]) == 0
    return root


@pytest.fixture(scope="module")
def built(layout: Path) -> dict[str, list[Obj]]:
    return {tree: kustomize(layout / "manifests" / tree) for tree in TREES}


def only(objects: list[Obj], kind: str) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def by_kind_and_name(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(objects: list[Obj]) -> Obj:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) as the API server applies it."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            raise AssertionError(f"unknown selector operator {operator}")
        if not ok:
            return False
    return True


def serve_args(objects: list[Obj], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """`irsa-webhook serve` parsed with the Deployment's env and args, as the container starts."""
    spec = container(objects)
    for variable in spec.get("env", []):
        monkeypatch.setenv(variable["name"], variable["value"])
    args = build_parser().parse_args(["serve", *spec.get("args", [])])
    raise_for_bad_env(args)
    return args


def serve_env_names() -> set[str]:
    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    serve = subparsers.choices["serve"]
    return {
        env_name(action)
        for action in serve._actions
        if any(option.startswith("--") for option in action.option_strings)
    }


# --- every tree ------------------------------------------------------------------------------


@pytest.mark.parametrize("tree", TREES)
def test_tree_is_a_complete_install(built: dict[str, list[Obj]], tree: str) -> None:
    kinds = sorted(obj["kind"] for obj in built[tree])
    core = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PodDisruptionBudget",
        "Secret" if tree == "self-signed" else "Certificate",
        "Service",
        "ServiceAccount",
    ]
    extra = ["Certificate", "Issuer", "Issuer"] if tree == "cert-manager" else []
    assert kinds == sorted(core + extra)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("tree", TREES)
def test_every_object_is_schema_valid(built: dict[str, list[Obj]], tree: str, version: str) -> None:
    checked = 0
    for obj in built[tree]:
        if obj["apiVersion"].startswith(CERT_MANAGER_GROUP):
            continue  # custom resources: kubernetes-validate has no schema for them
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked == 9 if tree == "self-signed" else 8


@pytest.mark.parametrize("tree", TREES)
def test_webhook_fails_open_on_pod_creation_only(built: dict[str, list[Obj]], tree: str) -> None:
    (webhook,) = only(built[tree], "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert 1 <= webhook["timeoutSeconds"] <= 10
    (rule,) = webhook["rules"]
    assert rule["operations"] == ["CREATE"]
    assert (rule["apiGroups"], rule["apiVersions"], rule["resources"]) == ([""], ["v1"], ["pods"])


@pytest.mark.parametrize("tree", TREES)
def test_webhook_never_sees_its_own_pods_and_honours_the_opt_out_label(
    built: dict[str, list[Obj]], tree: str
) -> None:
    objects = built[tree]
    (webhook,) = only(objects, "MutatingWebhookConfiguration")["webhooks"]
    deployment = only(objects, "Deployment")
    own_namespace = {"kubernetes.io/metadata.name": deployment["metadata"]["namespace"]}
    assert not selector_matches(webhook["namespaceSelector"], own_namespace)
    assert selector_matches(webhook["namespaceSelector"], {"kubernetes.io/metadata.name": "apps"})
    assert selector_matches(
        webhook["namespaceSelector"], {"kubernetes.io/metadata.name": "kube-system"}
    ), "IRSA add-ons in kube-system need credentials too"
    own_pod = deployment["spec"]["template"]["metadata"]["labels"]
    assert not selector_matches(webhook["objectSelector"], own_pod)
    assert not selector_matches(webhook["objectSelector"], {"irsa-webhook.io/skip": "true"})
    assert selector_matches(webhook["objectSelector"], {"app": "x"})
    assert selector_matches(webhook["objectSelector"], {"irsa-webhook.io/skip": "false"})


@pytest.mark.parametrize("tree", TREES)
def test_webhook_reaches_the_service_on_the_serving_port(
    built: dict[str, list[Obj]], tree: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = built[tree]
    (webhook,) = only(objects, "MutatingWebhookConfiguration")["webhooks"]
    target = webhook["clientConfig"]["service"]
    assert target["path"] == "/mutate"
    service = only(objects, "Service")
    assert (target["name"], target["namespace"]) == (
        service["metadata"]["name"],
        service["metadata"]["namespace"],
    )
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == target["port"]]
    assert target["port"] == 443
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    args = serve_args(objects, monkeypatch)
    assert ports[port["targetPort"]] == args.port
    assert ports["metrics"] == args.metrics_port
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels)


@pytest.mark.parametrize("tree", TREES)
def test_rbac_is_read_only_on_serviceaccounts(built: dict[str, list[Obj]], tree: str) -> None:
    objects = built[tree]
    role = only(objects, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}
    ]
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding")]
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    account = only(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": pod["serviceAccountName"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    assert account["metadata"]["name"] == pod["serviceAccountName"]
    # The token is mounted in the webhook's pod only: it needs it to watch the API.
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is True


@pytest.mark.parametrize("tree", TREES)
def test_deployment_survives_a_node_and_a_drain(built: dict[str, list[Obj]], tree: str) -> None:
    objects = built[tree]
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 2
    (spread,) = pod["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert selector_matches(spread["labelSelector"], pod["metadata"]["labels"])
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    budget = only(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert selector_matches(budget["spec"]["selector"], pod["metadata"]["labels"])


@pytest.mark.parametrize("tree", TREES)
def test_pod_runs_hardened(built: dict[str, list[Obj]], tree: str) -> None:
    objects = built[tree]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    spec = container(objects)
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert context["runAsUser"] == pod["securityContext"]["runAsUser"] > 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(spec["resources"][kind]) == {"cpu", "memory"}, kind
    namespace = only(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("tree", TREES)
def test_probes_use_health_endpoints_over_tls(built: dict[str, list[Obj]], tree: str) -> None:
    spec = container(built[tree])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        check = spec[probe]["httpGet"]
        assert (check["path"], check["port"], check["scheme"]) == (path, "webhook", "HTTPS")


@pytest.mark.parametrize("tree", TREES)
def test_serve_accepts_the_deployment_configuration_and_finds_its_certificate(
    built: dict[str, list[Obj]], tree: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = built[tree]
    spec = container(objects)
    env_names = {variable["name"] for variable in spec["env"]}
    unknown = env_names - serve_env_names()
    assert not unknown, f"not flags of serve: {unknown}"
    args = serve_args(objects, monkeypatch)
    assert args.log_format == "json"
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    (mount,) = spec["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True
    assert args.tls_cert == Path(mount["mountPath"]) / "tls.crt"
    assert args.tls_key == Path(mount["mountPath"]) / "tls.key"
    # The key file is readable by the container's group only (fsGroup owns the volume).
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]
    assert volume["secret"]["secretName"] == "irsa-webhook-tls"


@pytest.mark.parametrize("tree", TREES)
def test_image_is_the_package_version(built: dict[str, list[Obj]], tree: str) -> None:
    assert container(built[tree])["image"].endswith(f"/irsa-webhook:{__version__}")


# --- self-signed -----------------------------------------------------------------------------


def test_self_signed_secret_holds_the_certs_files(
    built: dict[str, list[Obj]], layout: Path
) -> None:
    objects = built["self-signed"]
    volume = only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    secret = by_kind_and_name(objects, "Secret", volume["secret"]["secretName"])
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert set(secret["data"]) == SECRET_KEYS
    for key in SECRET_KEYS:
        assert base64.b64decode(secret["data"][key]) == (layout / "certs" / key).read_bytes()


def test_self_signed_ca_bundle_is_the_generated_ca(
    built: dict[str, list[Obj]], layout: Path
) -> None:
    (webhook,) = only(built["self-signed"], "MutatingWebhookConfiguration")["webhooks"]
    ca_pem = base64.b64decode(webhook["clientConfig"]["caBundle"])
    assert ca_pem == (layout / "certs" / "ca.crt").read_bytes()
    # The API server's check: the served certificate chains to the caBundle for the Service name.
    service = webhook["clientConfig"]["service"]
    name = f"{service['name']}.{service['namespace']}.svc"
    leaf = x509.load_pem_x509_certificate((layout / "certs" / "tls.crt").read_bytes())
    store = Store(x509.load_pem_x509_certificates(ca_pem))
    PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name)).verify(leaf, [])


def test_self_signed_renewal_keeps_the_ca_bundle(
    layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(layout, clone)
    before = only(kustomize(clone / "manifests" / "self-signed"), "MutatingWebhookConfiguration")
    assert main(["certs", "--out", str(clone / "certs"), "--force"]) == 0
    capsys.readouterr()
    after_objects = kustomize(clone / "manifests" / "self-signed")
    after = only(after_objects, "MutatingWebhookConfiguration")
    assert (
        after["webhooks"][0]["clientConfig"]["caBundle"]
        == (before["webhooks"][0]["clientConfig"]["caBundle"])
    )
    secret = only(after_objects, "Secret")
    renewed = (clone / "certs" / "tls.crt").read_bytes()
    assert (
        base64.b64decode(secret["data"]["tls.crt"])
        == renewed
        != (layout / "certs" / "tls.crt").read_bytes()
    )


def test_self_signed_without_certs_fails_naming_the_missing_file(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "certs").mkdir()
    shutil.copy(REPO_ROOT / "certs" / "kustomization.yaml", tmp_path / "certs")
    result = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "manifests" / "self-signed")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "tls.crt" in result.stderr


# --- cert-manager ----------------------------------------------------------------------------


def test_cert_manager_issues_the_mounted_secret_for_the_service_names(
    built: dict[str, list[Obj]],
) -> None:
    objects = built["cert-manager"]
    configuration = only(objects, "MutatingWebhookConfiguration")
    (webhook,) = configuration["webhooks"]
    assert "caBundle" not in webhook["clientConfig"]
    source = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    namespace, name = source.split("/")
    serving = by_kind_and_name(objects, "Certificate", name)
    assert serving["metadata"]["namespace"] == namespace == NAMESPACE
    volume = only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert serving["spec"]["secretName"] == volume["secret"]["secretName"]
    service = only(objects, "Service")["metadata"]
    assert tuple(serving["spec"]["dnsNames"]) == service_dns_names(
        service["name"], service["namespace"]
    )
    assert "server auth" in serving["spec"]["usages"]
    assert not serving["spec"].get("isCA")
    # The chain: serving Certificate <- CA Issuer <- CA Certificate <- self-signed Issuer.
    ca_issuer = by_kind_and_name(objects, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca_cert = [
        o
        for o in objects
        if o["kind"] == "Certificate"
        and o["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
    ]
    assert len(ca_cert) == 1 and ca_cert[0]["spec"]["isCA"] is True
    root = by_kind_and_name(objects, "Issuer", ca_cert[0]["spec"]["issuerRef"]["name"])
    assert root["spec"] == {"selfSigned": {}}
    for obj in objects:
        if obj["apiVersion"].startswith(CERT_MANAGER_GROUP):
            assert obj["apiVersion"] == "cert-manager.io/v1"
            assert obj["metadata"]["namespace"] == NAMESPACE
