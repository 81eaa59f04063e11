"""`review --server`: ask a running webhook (as a dry run) instead of evaluating locally."""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from webhook.errors import CheckFailed, UsageError
from webhook.manifests import dig
from webhook.review import Answer, Subject

DEFAULT_SERVER_PATH = "/mutate"


class RemoteWebhook:
    """Sends AdmissionReviews (dry run) to a running webhook over HTTPS, TLS 1.2 at least."""

    def __init__(self, url: str, ca_file: str | None, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise UsageError(f"--server {url}: expected an https:// URL")
        if parsed.path in ("", "/"):
            parsed = parsed._replace(path=DEFAULT_SERVER_PATH)
        self.url = urllib.parse.urlunsplit(parsed)
        try:
            self.context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-file {ca_file}: cannot load a CA bundle: {exc}") from None
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.timeout = timeout

    def ask(self, subject: Subject) -> Answer:
        body = dict(subject.review)
        body["request"] = {**subject.review["request"], "dryRun": True}
        reply = self._post(json.dumps(body).encode(), subject.label)
        response = reply.get("response") if isinstance(reply, dict) else None
        if not isinstance(response, dict):
            raise CheckFailed(f"{self.url}: answer for {subject.label} has no response object")
        if response.get("uid") != subject.request.uid:
            raise CheckFailed(f"{self.url}: answer for {subject.label} carries the wrong uid")
        patch = decode_patch(response, f"{self.url}: answer for {subject.label}")
        warnings = [str(w) for w in response.get("warnings") or []]
        if response.get("allowed") is not True:
            message = dig(response, ("status", "message")) or "no reason given"
            status = f"DENIED by the server: {message}"
        else:
            status = "mutated" if patch else "not mutated"
        return Answer(reply, patch, warnings, f"{status} (answer from {self.url})")

    def _post(self, data: bytes, label: str) -> Any:
        request = urllib.request.Request(
            self.url, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode(errors="replace").strip().splitlines()
            reason = detail[0] if detail else exc.reason
            raise CheckFailed(f"{self.url}: HTTP {exc.code} for {label}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CheckFailed(f"{self.url}: cannot reach the webhook: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise CheckFailed(f"{self.url}: answer for {label} is not JSON") from None


def decode_patch(response: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    encoded = response.get("patch")
    if not encoded:
        return []
    if response.get("patchType") != "JSONPatch":
        raise CheckFailed(f"{where}: patchType is {response.get('patchType')!r}, not JSONPatch")
    try:
        patch = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise CheckFailed(f"{where}: the patch is not base64 JSON") from None
    if not isinstance(patch, list):
        raise CheckFailed(f"{where}: the patch is not a list of operations")
    return patch
