"""Admission throughput and latency of the webhook against a floor (not a test: a script).

One run starts, each in its own process:
- the webhook: `irsa-webhook serve` with an offline source of 10,000 ServiceAccounts, logging its
  one line per admission to a file, as in production;
- the floor: a bare aiohttp TLS server that reads the body and answers the webhook's own response
  bytes for the same review (same size), so the gap is what the webhook itself costs;
and drives both with wrk (one thread, 16 connections, a Lua POST script), the floor first,
then the webhook.
Prints throughput ratio webhook/floor and p50/p99 latency of each.

    python bench/admission.py [--duration 10] [--connections 16]

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

SERVICE_ACCOUNTS = 10_000
NAMESPACES = 100
ROLE = "arn:aws:iam::111122223333:role/bench-{n}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_service_accounts(path: Path) -> None:
    """10,000 ServiceAccounts in 100 namespaces, every other one bound to a role."""
    per_namespace = SERVICE_ACCOUNTS // NAMESPACES
    docs = []
    for n in range(SERVICE_ACCOUNTS):
        metadata: dict[str, object] = {"name": f"sa-{n}", "namespace": f"ns-{n // per_namespace}"}
        if n % 2 == 0:
            metadata["annotations"] = {"eks.amazonaws.com/role-arn": ROLE.format(n=n)}
        docs.append(
            json.dumps({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata})
        )
    path.write_text("\n---\n".join(docs) + "\n")


def review_body() -> bytes:
    """A typical pod create for an annotated ServiceAccount: the path that mutates."""
    n = 4242
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d9f8c6b5-",
            "namespace": f"ns-{n // (SERVICE_ACCOUNTS // NAMESPACES)}",
            "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5"},
        },
        "spec": {
            "serviceAccountName": f"sa-{n}",
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example/web:1.4.2",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "volumeMounts": [
                        {
                            "name": "kube-api-access-abcde",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        }
                    ],
                },
                {"name": "sidecar", "image": "registry.example/proxy:2.0"},
            ],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": []}}],
        },
    }
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": pod["metadata"]["namespace"],  # type: ignore[index]
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }
    return json.dumps(review).encode()


def wait_until_serving(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def post(url: str, body: bytes, ctx: ssl.SSLContext) -> bytes:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
        return resp.read()


LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.1f %.1f\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(
    url: str, script: Path, seconds: int, connections: int, threads: int
) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+)", out)
    if not match:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    requests, micros, errors, p50, p99 = (float(g) for g in match.groups())
    return {
        "rps": requests / (micros / 1e6),
        "errors": errors,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


def floor_server(port: int, cert: str, key: str, response_file: str) -> None:
    """The floor: aiohttp over TLS doing nothing but read the body and answer fixed bytes."""
    from aiohttp import web

    answer = Path(response_file).read_bytes()

    async def mutate(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_post("/mutate", mutate)
    app.router.add_get("/healthz", healthz)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=ctx, access_log=None, print=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")

    from webhook.certificates import create_ca, issue_serving_cert

    work = Path(tempfile.mkdtemp(prefix="irsa-bench-"))
    ca = create_ca("bench CA")
    issue_serving_cert(ca, ["127.0.0.1"]).write(work / "tls.crt", work / "tls.key")
    (work / "ca.crt").write_bytes(ca.cert_pem)
    write_service_accounts(work / "sas.yaml")
    body = review_body()
    (work / "review.json").write_bytes(body)
    (work / "post.lua").write_text(LUA.replace("{body}", str(work / "review.json")))
    client_ctx = ssl.create_default_context(cafile=str(work / "ca.crt"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    webhook_port, floor_port = free_port(), free_port()
    log_file = (work / "webhook.log").open("wb")
    webhook = subprocess.Popen(
        [sys.executable, "-m", "webhook", "serve", "--service-accounts", str(work / "sas.yaml"),
         "--tls-cert", str(work / "tls.crt"), "--tls-key", str(work / "tls.key"),
         "--bind-address", "127.0.0.1", "--port", str(webhook_port),
         "--metrics-port", str(free_port()), "--log-format", "json"],
        env=env, stderr=log_file,
    )  # fmt: skip
    procs = [webhook]
    try:
        wait_until_serving(f"https://127.0.0.1:{webhook_port}/readyz", client_ctx, webhook)
        answer = post(f"https://127.0.0.1:{webhook_port}/mutate", body, client_ctx)
        assert json.loads(answer)["response"].get("patchType") == "JSONPatch", answer
        (work / "response.json").write_bytes(answer)
        floor = subprocess.Popen(
            [sys.executable, __file__, "floor", str(floor_port), str(work / "tls.crt"),
             str(work / "tls.key"), str(work / "response.json")],
            env=env,
        )  # fmt: skip
        procs.append(floor)
        wait_until_serving(f"https://127.0.0.1:{floor_port}/healthz", client_ctx, floor)
        assert post(f"https://127.0.0.1:{floor_port}/mutate", body, client_ctx) == answer

        results = {}
        for name, port in (("floor", floor_port), ("webhook", webhook_port)):
            url = f"https://127.0.0.1:{port}/mutate"
            run_wrk(url, work / "post.lua", args.warmup, args.connections, args.threads)
            results[name] = run_wrk(
                url, work / "post.lua", args.duration, args.connections, args.threads
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        log_file.close()

    logged = sum(1 for _ in (work / "webhook.log").open("rb"))
    print(
        f"admission benchmark: {SERVICE_ACCOUNTS} ServiceAccounts offline, {args.connections} "
        f"connections, {args.duration}s each, request {len(body)} B, response {len(answer)} B"
    )
    for name, r in results.items():
        print(
            f"  {name:8s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
            f"  errors {r['errors']:.0f}"
        )
    ratio = results["webhook"]["rps"] / results["floor"]["rps"]
    print(f"  throughput ratio webhook/floor: {ratio:.2f} (target >= 0.80)")
    print(f"  webhook p99: {results['webhook']['p99_ms']:.2f} ms (target <= 3 ms)")
    print(f"  webhook log lines written: {logged}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "floor":
        floor_server(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        main()
