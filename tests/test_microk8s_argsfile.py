"""The args-file reader and the configure plan, without the CLI around them."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_microk8s import REAL_ARGS, bash_words

from webhook.apiserver.argsfile import ArgsFile
from webhook.apiserver.microk8s import (
    ConfigureRequest,
    file_reference,
    plan_configure,
)
from webhook.errors import UsageError

NEW = "https://oidc.example.com/c1"
REQUEST = ConfigureRequest(
    NEW, "${SNAP_DATA}/certs/irsa/new.pub", "${SNAP_DATA}/certs/irsa/new.key"
)
ENV = {"SNAP_DATA": "/var/snap/microk8s/current"}


def flag_values(text: str, name: str) -> list[str]:
    return ArgsFile(text).values(name, ENV)


def test_the_real_file_round_trips_byte_for_byte() -> None:
    raw = REAL_ARGS.read_text()
    assert ArgsFile(raw).text == raw


def test_active_arguments_of_the_real_file_match_the_shell(tmp_path: Path) -> None:
    words = ArgsFile(REAL_ARGS.read_text()).active_words({"SNAP_DATA": "/snapdata"})
    assert words == bash_words(REAL_ARGS, Path("/snapdata"))
    assert "--service-account-issuer=https://kubernetes.default.svc" in words  # unquoted
    assert "--etcd-servers=unix:///snapdata/var/kubernetes/backend/kine.sock:12379" in words
    assert not any(word.startswith("#") for word in words)  # `#~` marker and comments skipped


def test_references_stay_literal_without_an_environment() -> None:
    (signing,) = ArgsFile(REAL_ARGS.read_text()).values("service-account-signing-key-file")
    assert signing == "${SNAP_DATA}/certs/serviceaccount.key"


_line = st.one_of(
    st.just(""),
    st.text(alphabet=string.ascii_letters + " #~", max_size=20).map(lambda t: "#" + t),
    st.builds(
        lambda name, value, quote: f"--{name}={quote}{value}{quote}",
        st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=12),
        st.text(alphabet=string.ascii_letters + string.digits + "/.:${}_", max_size=20),
        st.sampled_from(["", "'", '"']),
    ),
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_line, max_size=12), ending=st.sampled_from(["\n", "\r\n", ""]))
def test_any_file_round_trips(lines: list[str], ending: str) -> None:
    text = "\n".join(lines) + ending
    assert ArgsFile(text).text == text


@settings(max_examples=60, deadline=None)
@given(
    drop=st.booleans(),
    extra=st.lists(st.sampled_from(["a", "https://b.example", "vault"]), max_size=3),
    removed=st.sets(st.integers(min_value=0, max_value=40), max_size=40),
)
def test_plan_is_idempotent_and_leaves_other_lines_alone(
    drop: bool, extra: list[str], removed: set[int]
) -> None:
    """On the real file with any subset of its lines removed, a second plan changes nothing."""
    lines = REAL_ARGS.read_text().splitlines(keepends=True)
    text = "".join(line for index, line in enumerate(lines) if index not in removed)
    request = ConfigureRequest(
        REQUEST.issuer,
        REQUEST.public_key_ref,
        REQUEST.signing_key_ref,
        extra_audiences=tuple(extra),
        drop_previous=drop,
    )
    once = plan_configure(text, request)
    assert plan_configure(once, request) == once
    before, after = ArgsFile(text).active_flags(ENV), ArgsFile(once).active_flags(ENV)
    managed = {
        "service-account-issuer",
        "service-account-key-file",
        "service-account-signing-key-file",
        "api-audiences",
    }
    assert [f for f in after if f.name not in managed] == [
        f for f in before if f.name not in managed
    ]
    assert flag_values(once, "service-account-issuer")[0] == NEW
    assert flag_values(once, "service-account-signing-key-file") == [
        "/var/snap/microk8s/current/certs/irsa/new.key"
    ]
    assert "/var/snap/microk8s/current/certs/irsa/new.pub" in flag_values(
        once, "service-account-key-file"
    )
    for audience in extra:
        assert audience in ",".join(flag_values(once, "api-audiences")).split(",")


def test_a_file_without_the_flags_gets_them_at_the_end() -> None:
    text = "--secure-port=16443"  # no trailing newline either
    new = plan_configure(text, REQUEST)
    assert new.startswith("--secure-port=16443\n")
    assert flag_values(new, "service-account-issuer") == [NEW]
    assert flag_values(new, "api-audiences") == []  # the default (the new issuer) is right


def test_crlf_files_get_crlf_lines() -> None:
    text = "--service-account-issuer=https://old.example\r\n--secure-port=1\r\n"
    new = plan_configure(text, REQUEST)
    assert all(line.endswith("\r\n") for line in new.splitlines(keepends=True))
    assert flag_values(new, "service-account-issuer") == [NEW, "https://old.example"]
    assert flag_values(new, "api-audiences") == ["https://old.example"]


def test_a_flag_sharing_its_line_with_others_is_refused() -> None:
    with pytest.raises(UsageError, match="own line"):
        plan_configure("--secure-port=1 --service-account-issuer=https://a.example\n", REQUEST)


def test_paths_under_the_data_folder_are_written_with_snap_data() -> None:
    data = Path("/var/snap/microk8s/current")
    assert file_reference(data / "certs/irsa/k.pub", data) == "${SNAP_DATA}/certs/irsa/k.pub"
    assert file_reference(Path("/etc/irsa/k.pub"), data) == "/etc/irsa/k.pub"
