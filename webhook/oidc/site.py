"""A directory laid out exactly as the issuer URL serves it, ready for any static host.

The directory's root is the issuer URL: the discovery document lands at
`.well-known/openid-configuration` and the JWKS at the path of `jwks_uri` below the issuer.
Only public keys are written; a directory that already holds a private key is refused because
everything in it is meant to be published.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from webhook.errors import UsageError
from webhook.oidc.discovery import (
    WELL_KNOWN_PATH,
    default_jwks_uri,
    discovery_document,
    document_json,
)
from webhook.oidc.jwks import build_jwks, jwks_json
from webhook.oidc.keys import PrivateKey, PublicKey, algorithm

# GitHub Pages runs Jekyll, which drops dot-directories such as .well-known unless told not to.
NO_JEKYLL_MARKER = ".nojekyll"
_RAW_GITHUB = re.compile(r"^https://raw\.githubusercontent\.com/([^/]+)/([^/]+)/([^/]+)(/.*)?$")
_S3_VIRTUAL_HOST = re.compile(r"^https://([^./]+)\.s3[.-]([a-z0-9-]+)\.amazonaws\.com(/.*)?$")


@dataclass(frozen=True)
class Site:
    out_dir: Path
    issuer: str
    discovery_path: Path
    jwks_path: Path
    jwks_uri: str


def jwks_path_below_issuer(issuer: str, jwks_uri: str) -> PurePosixPath:
    """Where the JWKS file goes inside the site, or UsageError when DIR could not serve it."""
    prefix = f"{issuer}/"
    relative = jwks_uri[len(prefix) :] if jwks_uri.startswith(prefix) else None
    parts = urlsplit(jwks_uri)
    segments = relative.split("/") if relative else []
    if (
        relative is None
        or parts.query
        or "?" in jwks_uri
        or "#" in jwks_uri
        or "%" in relative
        or any(segment in ("", ".", "..") for segment in segments)
        or relative == WELL_KNOWN_PATH
    ):
        raise UsageError(
            f"--jwks-uri {jwks_uri!r} is not a file path below the issuer {issuer!r}, so it "
            "cannot be served from the site directory: publish that JWKS yourself "
            "(`irsa-webhook oidc jwks`) or choose a jwks_uri under the issuer"
        )
    return PurePosixPath(relative)


def _refuse_private_material(out_dir: Path) -> None:
    if not out_dir.is_dir():
        return
    for path in out_dir.glob("*.pem"):
        try:
            holds_secret = b"PRIVATE KEY" in path.read_bytes()
        except OSError:
            continue
        if holds_secret:
            raise UsageError(
                f"{out_dir} holds a private key ({path.name}) and everything in a site directory "
                "gets published: choose another --out directory"
            )


def write_site(
    out_dir: Path,
    issuer: str,
    public_keys: Sequence[PublicKey | PrivateKey],
    *,
    jwks_uri: str | None = None,
    legacy_empty_kid: bool = False,
) -> Site:
    """Write the discovery document and the JWKS (public members only) under `out_dir`."""
    jwks_uri = jwks_uri or default_jwks_uri(issuer)
    relative = jwks_path_below_issuer(issuer, jwks_uri)
    _refuse_private_material(out_dir)
    document = discovery_document(issuer, jwks_uri, (algorithm(k) for k in public_keys))
    jwks = build_jwks(public_keys, legacy_empty_kid=legacy_empty_kid)
    discovery_path = out_dir / WELL_KNOWN_PATH
    jwks_path = out_dir.joinpath(*relative.parts)
    try:
        for path, text in ((discovery_path, document_json(document)), (jwks_path, jwks_json(jwks))):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (out_dir / NO_JEKYLL_MARKER).touch()
    except OSError as exc:
        raise UsageError(f"cannot write the site under {out_dir}: {exc.strerror or exc}") from None
    return Site(out_dir, issuer, discovery_path, jwks_path, jwks_uri)


def next_steps(site: Site) -> str:
    """How to publish the site on the usual hosts, tailored when the issuer names one."""
    out, issuer = site.out_dir, site.issuer
    files = [site.discovery_path.relative_to(out), site.jwks_path.relative_to(out)]
    lines = [f"wrote {out / f}" for f in files]
    lines += [
        "",
        f"Publish {out} so that {issuer}/{WELL_KNOWN_PATH} serves the first file (HTTPS only):",
    ]
    github = _RAW_GITHUB.match(issuer)
    s3 = _S3_VIRTUAL_HOST.match(issuer)
    if github:
        owner, repo, branch, sub = github.groups()
        where = f"the folder {sub.strip('/')!r} of" if sub else "the root of"
        lines += [
            f"  GitHub: copy {out}/ into {where} the public repository {owner}/{repo}, branch "
            f"{branch}, including the .well-known directory; commit and push.",
        ]
    elif s3:
        bucket, region, sub = s3.groups()
        target = f"s3://{bucket}{sub or ''}/"
        lines += [
            f"  S3: aws s3 cp {out}/ {target} --recursive --exclude {NO_JEKYLL_MARKER} "
            "--content-type application/json",
            f"      and allow public s3:GetObject on those two objects (bucket {bucket}, "
            f"region {region}).",
        ]
    else:
        lines += [
            "  GitHub repository served raw: push the contents to a public repository and use "
            "the issuer https://raw.githubusercontent.com/OWNER/REPO/BRANCH",
            "  S3: aws s3 cp DIR/ s3://BUCKET/ --recursive --content-type application/json, "
            "allow public reads, issuer https://BUCKET.s3.REGION.amazonaws.com",
            "  any static host (nginx, GitHub Pages, CloudFront): serve the directory at the "
            f"issuer URL; {NO_JEKYLL_MARKER} keeps GitHub Pages from hiding .well-known",
        ]
    lines += [
        "The certificate must be one STS trusts. Then check end to end:",
        "  irsa-webhook oidc token --signing-key private_key.pem --issuer "
        f"{issuer} --namespace NS --service-account SA \\",
        f"    | irsa-webhook oidc verify - --issuer {issuer}",
    ]
    return "\n".join(lines) + "\n"
