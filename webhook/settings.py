"""The one settings object that `serve` and `review` share, so the dry run is the production path.

Flag names and defaults follow the Amazon EKS Pod Identity Webhook, so a Deployment of the
reference can switch to us by changing only its image.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from webhook import argtypes

DEFAULT_ANNOTATION_PREFIX = "eks.amazonaws.com"
DEFAULT_TOKEN_AUDIENCE = "sts.amazonaws.com"
DEFAULT_TOKEN_MOUNT_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
DEFAULT_TOKEN_EXPIRATION = 86400
# kube-apiserver refuses projected tokens shorter than ten minutes.
MIN_TOKEN_EXPIRATION = 600


def clamp_token_expiration(seconds: int) -> int:
    return max(seconds, MIN_TOKEN_EXPIRATION)


@dataclass(frozen=True, slots=True)
class MutationSettings:
    """What decides the patch, apart from the pod and its ServiceAccount."""

    annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX
    token_audience: str = DEFAULT_TOKEN_AUDIENCE
    token_mount_path: str = DEFAULT_TOKEN_MOUNT_PATH
    token_expiration: int = DEFAULT_TOKEN_EXPIRATION
    sts_regional_endpoint: bool = False
    aws_default_region: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_expiration", clamp_token_expiration(self.token_expiration))

    def annotation(self, name: str) -> str:
        """The full annotation key for `name` under the configured prefix."""
        return f"{self.annotation_prefix}/{name}"


def add_mutation_flags(parser: argparse.ArgumentParser) -> None:
    """The reference webhook's mutation flags, for every command that mutates pods."""
    group = parser.add_argument_group("mutation (same flags as the EKS pod identity webhook)")
    group.add_argument(
        "--annotation-prefix",
        default=DEFAULT_ANNOTATION_PREFIX,
        help="prefix of the ServiceAccount and pod annotations (default %(default)s)",
    )
    group.add_argument(
        "--token-audience",
        default=DEFAULT_TOKEN_AUDIENCE,
        help="audience of the projected token when the ServiceAccount names none "
        "(default %(default)s)",
    )
    group.add_argument(
        "--token-mount-path",
        default=DEFAULT_TOKEN_MOUNT_PATH,
        help="where the token volume is mounted in each container (default %(default)s)",
    )
    group.add_argument(
        "--token-expiration",
        type=argtypes.whole_seconds,
        default=DEFAULT_TOKEN_EXPIRATION,
        help=f"token lifetime in seconds, at least {MIN_TOKEN_EXPIRATION} (default %(default)s)",
    )
    group.add_argument(
        "--sts-regional-endpoint",
        type=argtypes.go_bool,
        nargs="?",
        const=True,
        default=False,
        metavar="true|false",
        help="inject AWS_STS_REGIONAL_ENDPOINTS=regional (bare flag or =true|false; default false)",
    )
    group.add_argument(
        "--aws-default-region",
        default="",
        help="inject AWS_DEFAULT_REGION and AWS_REGION with this value (default: none)",
    )


def mutation_settings_from_args(args: argparse.Namespace) -> MutationSettings:
    return MutationSettings(
        annotation_prefix=args.annotation_prefix,
        token_audience=args.token_audience,
        token_mount_path=args.token_mount_path,
        token_expiration=args.token_expiration,
        sts_regional_endpoint=args.sts_regional_endpoint,
        aws_default_region=args.aws_default_region,
    )
