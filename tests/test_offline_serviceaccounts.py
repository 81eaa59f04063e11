"""ServiceAccounts from files: where `review` (and `serve --service-accounts`) look pods up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from webhook.errors import UsageError
from webhook.serviceaccounts import ServiceAccountSource
from webhook.serviceaccounts.offline import OfflineServiceAccounts

ROLE = "arn:aws:iam::111122223333:role/aws-cli"


async def test_examples_file_holds_the_aws_cli_account_and_one_without_role() -> None:
    source = OfflineServiceAccounts.from_files([str(REPO_ROOT / "examples/serviceaccounts.yaml")])
    assert source.is_ready()
    assert len(source) == 2
    aws_cli = await source.get("default", "aws-cli")
    assert aws_cli is not None
    assert aws_cli.annotations == {"eks.amazonaws.com/role-arn": ROLE}
    no_role = await source.get("default", "no-role")
    assert no_role is not None and no_role.annotations == {}
    assert await source.get("other", "aws-cli") is None


async def test_multi_document_yaml_lists_json_and_a_missing_namespace(tmp_path: Path) -> None:
    yaml_file = tmp_path / "sas.yaml"
    yaml_file.write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n"
        "  annotations:\n    eks.amazonaws.com/role-arn: r\n    unrelated/x: y\n"
        "---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ignored\n"
        "---\n"
    )
    json_file = tmp_path / "list.json"
    json_file.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {"kind": "ServiceAccount", "metadata": {"name": "b", "namespace": "shop"}},
                    {"kind": "ConfigMap", "metadata": {"name": "ignored"}},
                ],
            }
        )
    )
    source = OfflineServiceAccounts.from_files([str(yaml_file), str(json_file)])
    assert len(source) == 2
    a = await source.get("default", "a")
    assert a is not None and a.annotations == {"eks.amazonaws.com/role-arn": "r"}
    assert await source.get("shop", "b") is not None


async def test_annotation_prefix_decides_what_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "sa.yaml"
    path.write_text(
        "kind: ServiceAccount\nmetadata:\n  name: a\n  annotations:\n"
        "    irsa.example.com/role-arn: r\n    eks.amazonaws.com/role-arn: other\n"
    )
    source = OfflineServiceAccounts.from_files([str(path)], "irsa.example.com")
    identity = await source.get("default", "a")
    assert identity is not None and identity.annotations == {"irsa.example.com/role-arn": "r"}


def test_it_is_a_service_account_source() -> None:
    source: ServiceAccountSource = OfflineServiceAccounts()
    assert len(source) == 0 and source.is_ready()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: ServiceAccount\nmetadata: {}\n", "{path}: ServiceAccount has no metadata.name"),
        (
            "kind: ServiceAccount\nmetadata: {name: a}\n---\nkind: [unclosed\n",
            "{path} document 2: not valid YAML or JSON",
        ),
    ],
)
def test_bad_files_name_the_file_and_document(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        OfflineServiceAccounts.from_files([str(path)])
    assert str(caught.value).startswith(message.format(path=path))
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"missing\.yaml: cannot read: No such file"):
        OfflineServiceAccounts.from_files([str(tmp_path / "missing.yaml")])
