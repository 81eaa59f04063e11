"""`oidc verify` against a real HTTPS issuer on loopback: STS's checks, in order, with reasons."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import LocalTLS, run_cli_async, served_over_tls
from oidc_support import pyjwt_decode

from webhook.errors import CheckFailed
from webhook.oidc import keys
from webhook.oidc.jwks import build_jwks
from webhook.oidc.jws import b64url_decode, b64url_encode, parse_compact, sign_compact
from webhook.oidc.site import write_site
from webhook.oidc.token import service_account_claims, sign_token
from webhook.oidc.verify import CLOCK_SKEW_SECONDS, verify_token

ISSUER_PATH = "/cluster-1"


@dataclass
class StaticIssuer:
    """An HTTPS static host on 127.0.0.1 serving `root` below ISSUER_PATH, like S3 or GitHub."""

    root: Path
    port: int
    ca_file: Path
    requests: list[str]
    # requests for these paths hang until the test ends, like a host that accepts and never answers
    stalled_paths: set[str] = field(default_factory=set)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{ISSUER_PATH}"


@pytest.fixture
async def static_issuer(local_tls: LocalTLS, tmp_path: Path) -> AsyncIterator[StaticIssuer]:
    root = (tmp_path / "site").resolve()
    requests: list[str] = []
    stalled_paths: set[str] = set()
    test_over = asyncio.Event()

    async def serve_file(request: web.Request) -> web.StreamResponse:
        requests.append(request.path)
        if request.path in stalled_paths:
            await test_over.wait()
        relative = request.path.removeprefix(ISSUER_PATH + "/")
        path = (root / relative).resolve()
        if request.path == relative or not path.is_relative_to(root) or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve_file)
    async with served_over_tls(app, local_tls) as port:
        try:
            yield StaticIssuer(root, port, local_tls.ca_file, requests, stalled_paths)
        finally:
            test_over.set()


@pytest.fixture(params=["rsa", "ec"])
def signing_key(request: pytest.FixtureRequest) -> keys.PrivateKey:
    return keys.generate_private_key(request.param)


def mint(
    key: keys.PrivateKey,
    issuer: str,
    *,
    now: int | None = None,
    expiration: int = 3600,
    **claim_overrides: object,
) -> str:
    claims = service_account_claims(
        issuer=issuer,
        namespace="team-a",
        service_account="s3-reader",
        audiences=["sts.amazonaws.com"],
        expiration=expiration,
        pod="reader-0",
        now=now,
    )
    claims.update(claim_overrides)
    return sign_token(claims, key)


async def expect_failure(check: str, token: str, **kwargs: Any) -> str:
    with pytest.raises(CheckFailed) as caught:
        await verify_token(token, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"token rejected at the {check!r} check: "), message
    assert token not in message
    assert "\n" not in message
    return message


@dataclass
class Issuer:
    """The static issuer plus the key it publishes: publish a site, mint tokens, verify them."""

    server: StaticIssuer
    key: keys.PrivateKey

    @property
    def url(self) -> str:
        return self.server.url()

    def publish(self, issuer: str | None = None, **site_options: Any) -> dict[str, Any]:
        """Lay out the site (for `issuer`, default the server's URL); verify_token's options."""
        write_site(self.server.root, issuer or self.url, [self.key.public_key()], **site_options)
        return {"issuer": self.url, "audience": "sts.amazonaws.com", "ca_file": self.server.ca_file}

    def mint(self, **overrides: Any) -> str:
        return mint(self.key, overrides.pop("iss", self.url), **overrides)


@pytest.fixture
def issuer(static_issuer: StaticIssuer, signing_key: keys.PrivateKey) -> Issuer:
    return Issuer(static_issuer, signing_key)


async def test_good_token_verifies_and_returns_its_claims(issuer: Issuer) -> None:
    options = issuer.publish()
    token = issuer.mint()
    verified = await verify_token(token, **options)
    assert verified.claims["sub"] == "system:serviceaccount:team-a:s3-reader"
    assert verified.kid == keys.key_id(issuer.key)
    assert verified.keys_from == f"{issuer.url}/jwks.json"
    assert issuer.server.requests == [
        f"{ISSUER_PATH}/.well-known/openid-configuration",
        f"{ISSUER_PATH}/jwks.json",
    ]
    # the independent implementation agrees with what we accepted
    jwks = json.loads((issuer.server.root / "jwks.json").read_text())
    assert pyjwt_decode(token, jwks, audience="sts.amazonaws.com", issuer=issuer.url)


async def test_api_server_jwks_layout_is_followed_through_discovery(issuer: Issuer) -> None:
    options = issuer.publish(jwks_uri=f"{issuer.url}/openid/v1/jwks")
    verified = await verify_token(issuer.mint(), **options)
    assert verified.keys_from.endswith(f"{ISSUER_PATH}/openid/v1/jwks")


async def test_wrong_audience(issuer: Issuer) -> None:
    options = issuer.publish()
    message = await expect_failure("aud", issuer.mint(aud=["vault"]), **options)
    assert "'sts.amazonaws.com'" in message


async def test_wrong_issuer_in_token(issuer: Issuer) -> None:
    options = issuer.publish()
    token = issuer.mint(iss="https://kubernetes.default.svc")
    message = await expect_failure("iss", token, **options)
    assert "'https://kubernetes.default.svc'" in message and "--service-account-issuer" in message


async def test_expired_token_beyond_the_clock_skew(issuer: Issuer) -> None:
    options = issuer.publish()
    now = int(time.time())
    await expect_failure("exp", issuer.mint(now=now - 7200, expiration=600), **options)
    # inside the allowance it still passes, as STS would
    issued = now - 600 - CLOCK_SKEW_SECONDS + 20
    await verify_token(issuer.mint(now=issued, expiration=600), **options)


async def test_token_not_yet_valid(issuer: Issuer) -> None:
    options = issuer.publish()
    await expect_failure("nbf", issuer.mint(now=int(time.time()) + 3600), **options)


async def test_unknown_kid(issuer: Issuer) -> None:
    options = issuer.publish()
    other = keys.generate_private_key("ec")
    message = await expect_failure("kid", mint(other, issuer.url), **options)
    assert keys.key_id(other) in message and "oidc jwks" in message


async def test_tampered_payload(issuer: Issuer) -> None:
    options = issuer.publish()
    header, payload, signature = issuer.mint().split(".")
    claims = json.loads(b64url_decode(payload))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = f"{header}.{b64url_encode(json.dumps(claims).encode())}.{signature}"
    await expect_failure("signature", forged, **options)


async def test_discovery_issuer_mismatch(issuer: Issuer) -> None:
    """Published for https://localhost:PORT/..., checked as https://127.0.0.1:PORT/..."""
    options = issuer.publish(issuer=issuer.server.url("localhost"))
    message = await expect_failure("discovery issuer", issuer.mint(), **options)
    assert issuer.server.url("localhost") in message
    assert issuer.server.requests == [f"{ISSUER_PATH}/.well-known/openid-configuration"]


async def test_site_not_published(issuer: Issuer) -> None:
    options = {"issuer": issuer.url, "audience": "sts.amazonaws.com"}
    message = await expect_failure(
        "discovery", issuer.mint(), ca_file=issuer.server.ca_file, **options
    )
    assert "HTTP 404" in message


async def test_a_host_that_never_answers_fails_within_the_timeout(issuer: Issuer) -> None:
    options = issuer.publish()
    issuer.server.stalled_paths.add(f"{ISSUER_PATH}/jwks.json")
    message = await expect_failure("jwks", issuer.mint(), timeout=0.5, **options)
    assert "did not answer in time" in message


async def test_certificate_is_verified_against_the_system_store_by_default(
    issuer: Issuer,
) -> None:
    options = issuer.publish()
    options["ca_file"] = None  # the test CA is in no system store
    message = await expect_failure("discovery", issuer.mint(), **options)
    assert "not trusted" in message and "--ca-file" in message
    assert issuer.server.requests == []


async def test_legacy_token_without_kid_finds_the_empty_kid_key(issuer: Issuer) -> None:
    claims = parse_compact(issuer.mint()).claims
    legacy = sign_compact({"alg": keys.algorithm(issuer.key)}, claims, issuer.key)
    message = await expect_failure("kid", legacy, **issuer.publish())
    assert "--legacy-empty-kid" in message
    verified = await verify_token(legacy, **issuer.publish(legacy_empty_kid=True))
    assert verified.kid == ""


async def test_unsigned_token_is_refused_before_any_fetch(static_issuer: StaticIssuer) -> None:
    claims = {"iss": static_issuer.url(), "aud": ["sts.amazonaws.com"], "exp": 2**40}
    unsigned = (
        ".".join(b64url_encode(json.dumps(part).encode()) for part in ({"alg": "none"}, claims))
        + "."
    )
    jwks = build_jwks([keys.generate_private_key("ec")])["keys"]
    await expect_failure(
        "alg", unsigned, issuer=static_issuer.url(), audience="sts.amazonaws.com", jwks=jwks
    )
    await expect_failure(
        "token format", "not.a-token", issuer=static_issuer.url(), audience="x", jwks=jwks
    )


async def test_jwks_that_leaks_a_private_key_is_refused(signing_key: keys.PrivateKey) -> None:
    issuer = "https://oidc.example.com"
    jwks = build_jwks([signing_key])["keys"]
    jwks[0]["d"] = "AAAA"
    await expect_failure(
        "jwks", mint(signing_key, issuer), issuer=issuer, audience="sts.amazonaws.com", jwks=jwks
    )


# The CLI, as a user runs it ----------------------------------------------------------------


@pytest.fixture
async def cli_issuer(static_issuer: StaticIssuer, tmp_path: Path) -> tuple[StaticIssuer, Path]:
    """Keys made and the site laid out by the CLI itself, served by the static issuer."""
    keydir = tmp_path / "keys"
    code, _, err = await run_cli_async("oidc", "keygen", "--out", str(keydir))
    assert code == 0, err
    code, _, err = await run_cli_async(
        "oidc", "site", "--issuer", static_issuer.url(),
        "--public-key", str(keydir / "public.pem"), "--out", str(static_issuer.root),
    )  # fmt: skip
    assert code == 0, err
    return static_issuer, keydir


async def cli_token(issuer: str, keydir: Path, *extra: str) -> str:
    code, out, err = await run_cli_async(
        "oidc", "token", "--signing-key", str(keydir / "private_key.pem"), "--issuer", issuer,
        "--namespace", "team-a", "--service-account", "s3-reader", *extra,
    )  # fmt: skip
    assert code == 0, err
    return out.strip()


async def test_cli_verify_good_token_from_stdin_prints_claims_not_token(
    cli_issuer: tuple[StaticIssuer, Path],
) -> None:
    issuer, keydir = cli_issuer
    token = await cli_token(issuer.url(), keydir)
    code, out, err = await run_cli_async(
        "oidc", "verify", "-", "--issuer", issuer.url(), "--ca-file", str(issuer.ca_file),
        stdin=token + "\n",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["sub"] == "system:serviceaccount:team-a:s3-reader"
    assert token not in out + err
    assert token.split(".")[2] not in out + err


async def test_cli_verify_wrong_audience_exits_1_naming_the_check(
    cli_issuer: tuple[StaticIssuer, Path], tmp_path: Path
) -> None:
    issuer, keydir = cli_issuer
    token_file = tmp_path / "token"
    token_file.write_text(await cli_token(issuer.url(), keydir, "--audience", "vault"))
    code, out, err = await run_cli_async(
        "oidc", "verify", str(token_file), "--issuer", issuer.url(),
        "--ca-file", str(issuer.ca_file),
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1 and "'aud' check" in err


async def test_cli_verify_with_jwks_file_fetches_nothing(
    cli_issuer: tuple[StaticIssuer, Path], tmp_path: Path
) -> None:
    issuer, keydir = cli_issuer
    token_file = tmp_path / "token"
    token_file.write_text(await cli_token(issuer.url(), keydir))
    code, out, err = await run_cli_async(
        "oidc", "verify", str(token_file), "--issuer", issuer.url(),
        "--jwks", str(issuer.root / "jwks.json"),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["iss"] == issuer.url()
    assert issuer.requests == []


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1/x", "https://127.0.0.1/x/", "https://127.0.0.1/x?a=b", "https://h/x#f"],
)
async def test_cli_verify_refuses_bad_issuer_urls(tmp_path: Path, issuer: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("a.b.c")
    code, out, err = await run_cli_async("oidc", "verify", str(token_file), "--issuer", issuer)
    assert code == 2
    assert out == "" and len(err.splitlines()) == 1


async def test_cli_verify_will_not_echo_a_token_given_in_place_of_a_file() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    code, out, err = await run_cli_async("oidc", "verify", token, "--issuer", "https://h.example")
    assert code == 2
    assert token not in out + err
