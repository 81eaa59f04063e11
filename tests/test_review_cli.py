"""`irsa-webhook review` as users run it: a real subprocess, on the files under examples/."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml
from aiohttp import web
from conftest import REPO_ROOT, LocalTLS, run_cli_async, served_over_tls

from webhook.admission import InvalidReview, admit, parse_review
from webhook.serviceaccounts.offline import OfflineServiceAccounts
from webhook.settings import MutationSettings

EXAMPLES = REPO_ROOT / "examples"
ACCOUNTS = str(EXAMPLES / "serviceaccounts.yaml")
ROLE = "arn:aws:iam::111122223333:role/aws-cli"
TOKEN_FILE = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
CLI_TIMEOUT = 60


def review(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook", "review", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=CLI_TIMEOUT,
        cwd=REPO_ROOT,
    )


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["serviceaccounts.yaml", "pod.yaml", "deployment.yaml"])
def test_examples_are_valid_kubernetes_objects(name: str) -> None:
    for document in yaml.safe_load_all((EXAMPLES / name).read_text()):
        kubernetes_validate.validate(document, "1.30.0", strict=True)


def test_admission_review_input_prints_the_servers_response() -> None:
    result = review("examples/admissionreview.json", "--service-accounts", ACCOUNTS)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    sent = json.loads((EXAMPLES / "admissionreview.json").read_text())
    response = answer["response"]
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert response["uid"] == sent["request"]["uid"] and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert response["auditAnnotations"]["role-arn"] == ROLE
    pod = jsonpatch.apply_patch(
        sent["request"]["object"], json.loads(base64.b64decode(response["patch"]))
    )
    assert env_of(pod["spec"]["containers"][0]) == {
        "AWS_ROLE_ARN": ROLE,
        "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_FILE,
    }
    assert "mutated (ServiceAccount default/aws-cli)" in result.stderr


def test_pod_output_is_a_valid_mutated_pod() -> None:
    result = review(
        "examples/pod.yaml", "--service-accounts", ACCOUNTS, "--output", "pod",
        "--aws-default-region", "eu-west-1", "--sts-regional-endpoint",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (pod,) = yaml.safe_load_all(result.stdout)
    assert kubernetes_validate.validate(pod, "1.30.0", strict=True) is not None
    assert env_of(pod["spec"]["containers"][0]) == {
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_ROLE_ARN": ROLE,
        "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_FILE,
    }
    assert pod["spec"]["volumes"][0]["name"] == "aws-iam-token"


def test_deployment_patch_applies_to_the_deployment_itself() -> None:
    result = review("examples/deployment.yaml", "--service-accounts", ACCOUNTS, "-o", "patch")
    assert result.returncode == 0, result.stderr
    patch = json.loads(result.stdout)
    assert all(op["path"].startswith("/spec/template/spec/") for op in patch)
    deployment = yaml.safe_load((EXAMPLES / "deployment.yaml").read_text())
    mutated = jsonpatch.apply_patch(deployment, patch)
    kubernetes_validate.validate(mutated, "1.30.0", strict=True)
    spec = mutated["spec"]["template"]["spec"]
    uploader, metrics = spec["containers"]
    assert env_of(uploader)["AWS_REGION"] == "eu-west-1"  # the container's own region stays
    assert "AWS_DEFAULT_REGION" not in env_of(uploader)
    assert env_of(uploader)["AWS_ROLE_ARN"] == ROLE
    assert "env" not in metrics  # opted out with skip-containers
    assert env_of(spec["initContainers"][0])["AWS_ROLE_ARN"] == ROLE
    token = spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == 3600  # the template's token-expiration annotation


def test_manifests_default_to_a_diff_with_warnings_on_stderr(tmp_path: Path) -> None:
    pod = yaml.safe_load((EXAMPLES / "pod.yaml").read_text())
    pod["spec"]["containers"][0]["env"] = [
        {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/x"}
    ]
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    result = review(str(path), "--service-accounts", ACCOUNTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"--- a/{path}\n+++ b/{path}\n")
    assert "+  - name: aws-iam-token" in result.stdout
    assert f'Warning: {path}: container "aws-cli" sets AWS_ROLE_ARN=' in result.stderr


def test_stdin_lists_and_cronjobs_with_the_namespace_flag() -> None:
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "@daily",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "serviceAccountName": "aws-cli",
                            "restartPolicy": "Never",
                            "containers": [{"name": "job", "image": "amazon/aws-cli"}],
                        }
                    }
                }
            },
        },
    }
    bundle = {"apiVersion": "v1", "kind": "List", "items": [cronjob, cronjob]}
    accounts = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "aws-cli",
                "namespace": "batch",
                "annotations": {"eks.amazonaws.com/role-arn": ROLE},
            },
        }
    )
    text = accounts + "---\n" + json.dumps(bundle)  # ServiceAccounts in the input count too
    result = review("-", "--namespace", "batch", "-o", "pod", stdin=text)
    assert result.returncode == 0, result.stderr
    jobs = list(yaml.safe_load_all(result.stdout))
    assert len(jobs) == 2
    for job in jobs:
        assert job["kind"] == "CronJob"
        container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert env_of(container)["AWS_ROLE_ARN"] == ROLE
    assert "stdin document 2 item 2: mutated (ServiceAccount batch/nightly" not in result.stderr
    assert "stdin document 2 item 2: mutated (ServiceAccount batch/aws-cli)" in result.stderr


def test_unknown_service_account_and_roleless_one_are_explained() -> None:
    pods = [
        {
            "kind": "Pod",
            "metadata": {"name": n},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "c"}]},
        }
        for n, sa in (("a", "ghost"), ("b", "no-role"))
    ]
    text = "\n---\n".join(json.dumps(p) for p in pods)
    result = review("-", "--service-accounts", ACCOUNTS, "-o", "review", stdin=text)
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(chunk) for chunk in _json_stream(result.stdout))
    assert first["response"]["warnings"] == [
        'ServiceAccount "default/ghost" not found: no AWS credentials injected'
    ]
    assert "patch" not in first["response"] and "patch" not in second["response"]
    assert "not mutated: ServiceAccount no-role has no eks.amazonaws.com/role-arn" in result.stderr


def _json_stream(text: str) -> list[str]:
    decoder, index, chunks = json.JSONDecoder(), 0, []
    while index < len(text.rstrip()):
        obj, end = decoder.raw_decode(text, index)
        chunks.append(json.dumps(obj))
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return chunks


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (None, ["missing.yaml: cannot read"]),
        ("kind: Pod\n---\nspec: [unclosed\n", ["bad.yaml document 2: not valid YAML or JSON"]),
        ("kind: Service\nmetadata: {name: s}\n", ["bad.yaml: cannot review a Service"]),
        ("- just\n- a list\n", ["bad.yaml: cannot review a document without a kind"]),
        ("kind: AdmissionReview\nresponse: {}\n", ["bad.yaml: the AdmissionReview has no request"]),
        (
            "kind: Deployment\nspec: {}\n",
            ["bad.yaml: Deployment has no pod template at spec.template"],
        ),
        ("", ["nothing to review"]),
    ],
)
def test_bad_input_is_one_line_naming_file_and_document(
    tmp_path: Path, content: str | None, fragments: list[str]
) -> None:
    name = "missing.yaml" if content is None else "bad.yaml"
    if content is not None:
        (tmp_path / name).write_text(content)
    result = review(str(tmp_path / name), "--service-accounts", ACCOUNTS)
    assert_one_line_error(result, *fragments)


def test_local_review_needs_service_accounts() -> None:
    assert_one_line_error(review("examples/pod.yaml"), "--service-accounts")


def test_bad_service_accounts_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "sas.yaml"
    bad.write_text("kind: ServiceAccount\nmetadata: {}\n")
    assert_one_line_error(
        review("examples/pod.yaml", "--service-accounts", str(bad)),
        f"{bad}: ServiceAccount has no metadata.name",
    )


# --- remote mode: a real TLS server on loopback whose handler is our own admit() -------------


def _post_app(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    return app


async def test_remote_review_sends_dry_runs_over_tls_and_shows_the_answer(
    local_tls: LocalTLS,
) -> None:
    accounts = OfflineServiceAccounts.from_files([ACCOUNTS])
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, body))
        try:
            parsed = parse_review(body)
        except InvalidReview as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        identity = await accounts.get(parsed.namespace, parsed.service_account)
        answer, _ = admit(parsed, identity, MutationSettings(aws_default_region="ap-south-1"))
        return web.json_response(answer)

    async with served_over_tls(_post_app(handle), local_tls) as port:
        code, out, err = await run_cli_async(
            "review",
            "examples/pod.yaml", "examples/admissionreview.json", "-o", "pod",
            "--server", f"https://localhost:{port}", "--ca-file", str(local_tls.ca_file),
        )  # fmt: skip
    assert code == 0, err
    assert [path for path, _ in seen] == ["/mutate", "/mutate"]
    assert all(body["request"]["dryRun"] is True for _, body in seen)
    pod, from_review = yaml.safe_load_all(out)
    assert env_of(pod["spec"]["containers"][0])["AWS_REGION"] == "ap-south-1"  # the server's flags
    assert env_of(from_review["spec"]["containers"][0])["AWS_ROLE_ARN"] == ROLE
    assert f"answer from https://localhost:{port}/mutate" in err


async def test_remote_review_keeps_an_explicit_path_and_reports_http_errors(
    local_tls: LocalTLS,
) -> None:
    paths: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        paths.append(request.path)
        raise web.HTTPBadRequest(text="request.uid missing\nmore detail")

    async with served_over_tls(_post_app(refuse), local_tls) as port:
        code, out, err = await run_cli_async(
            "review",
            "examples/pod.yaml", "--server", f"https://127.0.0.1:{port}/hooks/irsa",
            "--ca-file", str(local_tls.ca_file),
        )  # fmt: skip
    assert paths == ["/hooks/irsa"]
    assert code == 1 and out == ""
    assert err.strip() == (
        f"irsa-webhook: https://127.0.0.1:{port}/hooks/irsa: HTTP 400 for examples/pod.yaml: "
        "request.uid missing"
    )


async def test_remote_review_refuses_a_server_it_cannot_verify(local_tls: LocalTLS) -> None:
    async def never(request: web.Request) -> web.Response:
        raise AssertionError("the client must not send anything to an unverified server")

    async with served_over_tls(_post_app(never), local_tls) as port:
        code, _, err = await run_cli_async(
            "review", "examples/pod.yaml", "--server", f"https://localhost:{port}"
        )
    assert code == 1
    assert "cannot reach the webhook" in err and "CERTIFICATE_VERIFY_FAILED" in err
    assert len(err.strip().splitlines()) == 1


def test_remote_review_wants_https() -> None:
    assert_one_line_error(
        review("examples/pod.yaml", "--server", "http://localhost:8443"), "expected an https:// URL"
    )
