"""botocore's exceptions as one line a user can act on, instead of a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.parsers import ResponseParserError

from webhook.errors import CheckFailed

_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
    }
)

NO_CREDENTIALS_HINT = (
    "no AWS credentials found: set AWS_PROFILE (or --profile), AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run `aws configure` / `aws sso login`"
)


def describe_client_error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    message = " ".join(str(error.get("Message", "")).split())
    operation = exc.operation_name
    if code in _DENIED:
        return f"AWS denied {operation} ({code}): {message}"
    if code in _THROTTLED:
        return f"AWS throttled {operation} even after retries ({code}): try again later"
    if code in _BAD_CREDENTIALS:
        return (
            f"AWS rejected the credentials on {operation} ({code}): they are wrong or "
            f"expired: {message}"
        )
    return f"AWS {operation} failed ({code}): {message}"


def describe_aws_error(exc: BotoCoreError | ClientError | ResponseParserError) -> str:
    """One line naming what went wrong and, where there is one, what to do about it."""
    if isinstance(exc, ClientError):
        return describe_client_error(exc)
    if isinstance(exc, NoCredentialsError):
        return NO_CREDENTIALS_HINT
    if isinstance(exc, PartialCredentialsError):
        return f"incomplete AWS credentials: {exc}"
    if isinstance(exc, ProfileNotFound):
        return f"{exc}: check AWS_PROFILE / --profile and ~/.aws/config"
    if isinstance(exc, TokenRetrievalError | SSOError):
        return f"AWS SSO credentials unavailable ({exc}): run `aws sso login`"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach AWS: {exc}"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_REGION"
    if isinstance(exc, ResponseParserError):
        return "AWS sent an answer that is not AWS's format: check AWS_ENDPOINT_URL and proxies"
    return f"AWS call failed: {' '.join(str(exc).split())}"


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn any botocore failure inside the block into CheckFailed (one line, exit 1)."""
    try:
        yield
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        raise CheckFailed(describe_aws_error(exc)) from None
