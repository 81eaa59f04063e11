"""boto3 clients from the standard AWS configuration (environment, profiles, AWS_ENDPOINT_URL)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# IAM is global; STS needs some region, and us-east-1 is the one every partition-aws account has.
FALLBACK_REGION = "us-east-1"

# Standard retry mode backs off on throttling, so a busy account still gets through.
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=30
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who the credentials belong to, from STS GetCallerIdentity."""

    account: str
    arn: str

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1]


class AwsClients:
    """The IAM and STS clients a command uses, sharing one session (one credential lookup)."""

    def __init__(self, profile: str | None = None) -> None:
        self._session = boto3.session.Session(profile_name=profile)
        # boto3 reads AWS_DEFAULT_REGION and profiles; other SDKs (and the webhook) set AWS_REGION.
        self._region = self._session.region_name or os.environ.get("AWS_REGION") or FALLBACK_REGION
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, region_name=self._region, config=_CLIENT_CONFIG
            )
        return self._clients[service]

    @property
    def iam(self) -> Any:
        return self.client("iam")

    def caller(self) -> Caller:
        identity = self.client("sts").get_caller_identity()
        return Caller(account=identity["Account"], arn=identity["Arn"])
