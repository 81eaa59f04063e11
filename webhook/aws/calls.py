"""AWS calls as data, so the dry run prints exactly what the real run sends.

A command decides its calls from what it read, then either prints them or makes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

# Parameters that carry a JSON document as a string; shown decoded so a person can read them.
_DOCUMENT_PARAMETERS = frozenset({"AssumeRolePolicyDocument", "PolicyDocument"})


def document_text(document: dict[str, Any]) -> str:
    """The exact string sent for a policy document."""
    return json.dumps(document, indent=2)


@dataclass(frozen=True)
class Call:
    service: str
    operation: str  # the API name, as in IAM's reference and CloudTrail: CreateRole
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """boto3's method name for the operation: CreateRole -> create_role."""
        return xform_name(self.operation)

    def shown(self) -> dict[str, Any]:
        parameters = {
            name: json.loads(value) if name in _DOCUMENT_PARAMETERS else value
            for name, value in self.parameters.items()
        }
        return {"service": self.service, "operation": self.operation, "parameters": parameters}

    def make(self, client: Any) -> dict[str, Any]:
        return getattr(client, self.method)(**self.parameters)


def calls_json(calls: list[Call]) -> str:
    return json.dumps([call.shown() for call in calls], indent=2) + "\n"
