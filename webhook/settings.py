"""The one settings object that `serve` and `review` share, so the dry run is the production path.

Flag names and defaults follow the Amazon EKS Pod Identity Webhook, so a Deployment of the
reference can switch to us by changing only its image.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

DEFAULT_ANNOTATION_PREFIX = "eks.amazonaws.com"
DEFAULT_TOKEN_AUDIENCE = "sts.amazonaws.com"
DEFAULT_TOKEN_MOUNT_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
DEFAULT_TOKEN_EXPIRATION = 86400
# kube-apiserver refuses projected tokens shorter than ten minutes.
MIN_TOKEN_EXPIRATION = 600

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, which the reference applies to annotations: None when invalid."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    return None


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


def _go_bool_flag(value: str) -> bool:
    parsed = parse_go_bool(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return parsed


def _token_expiration_flag(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {value!r}") from None


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
        type=_token_expiration_flag,
        default=DEFAULT_TOKEN_EXPIRATION,
        help=f"token lifetime in seconds, at least {MIN_TOKEN_EXPIRATION} (default %(default)s)",
    )
    group.add_argument(
        "--sts-regional-endpoint",
        type=_go_bool_flag,
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
