"""`microk8s configure`: the plan (old args text + request -> new text) and the edges around it.

The plan never deletes or rewrites a line: a flag we replace is commented out with a marker and
its successor added next to it, so every other line stays byte for byte and the change can be
read (and undone by hand) in the file itself. The plan is computed from the flags that are active,
so running it again with the same request finds nothing to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from webhook.apiserver.argsfile import ArgsFile, FlagLine, expand
from webhook.apiserver.files import (
    backup,
    check_creatable_dir,
    check_writable,
    read_text,
    write_atomically,
)
from webhook.apiserver.keyfiles import (
    SigningKeyPair,
    check_path_for_args,
    install_copies,
    pending_copies,
)
from webhook.apiserver.restart import RestartTools, restart_or_hint
from webhook.errors import UsageError
from webhook.issuer import validate_issuer
from webhook.oidc.keys import key_id, load_public_key

DEFAULT_SNAP_DATA = Path("/var/snap/microk8s/current")
ADDED_MARKER = "# irsa-webhook added"
DISABLED_MARKER = "# irsa-webhook disabled: "

ISSUER = "service-account-issuer"
KEY_FILE = "service-account-key-file"
SIGNING_KEY = "service-account-signing-key-file"
AUDIENCES = "api-audiences"


@dataclass(frozen=True)
class ConfigureRequest:
    """What the API server should end up with; key paths as they will be written in the file."""

    issuer: str
    public_key_ref: str
    signing_key_ref: str
    extra_audiences: tuple[str, ...] = ()
    drop_previous: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: {"SNAP_DATA": str(DEFAULT_SNAP_DATA)})


def file_reference(path: Path, snap_data: Path) -> str:
    """`${SNAP_DATA}/...` for paths under the MicroK8s data dir, as the file's own lines do."""
    try:
        relative = path.relative_to(snap_data)
    except ValueError:
        return str(path)
    return f"${{SNAP_DATA}}/{relative.as_posix()}"


def _dedup(values: list[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


class _Edits:
    """Lines to comment out and lines to add before/after existing ones, rendered in one pass."""

    def __init__(self, args: ArgsFile) -> None:
        self.args = args
        self.disabled: set[int] = set()
        self.before: dict[int, list[str]] = {}
        self.after: dict[int, list[str]] = {}
        self.at_end: list[str] = []

    def add(self, where: str, index: int | None, text: str) -> list[str]:
        """Queue `text` as a new line; returns its group so related lines can stay together."""
        if index is None:
            group = self.at_end
        else:
            group = (self.before if where == "before" else self.after).setdefault(index, [])
        group.append(text)
        return group

    def render(self) -> str:
        newline = self.args.newline
        out: list[str] = []

        def emit_group(group: list[str]) -> None:
            if not group:
                return
            if out and not out[-1].endswith(("\n", "\r")):
                out[-1] += newline
            out.append(ADDED_MARKER + newline)
            out.extend(text + newline for text in group)

        for index, line in enumerate(self.args.lines):
            emit_group(self.before.get(index, []))
            out.append(DISABLED_MARKER + line.raw if index in self.disabled else line.raw)
            emit_group(self.after.get(index, []))
        emit_group(self.at_end)
        return "".join(out)


def plan_configure(
    old_text: str,
    request: ConfigureRequest,
    *,
    source: str = "",
    key_id_at: Callable[[str], str | None] = lambda path: None,
) -> str:
    """The new file text; equal to `old_text` when the file already says what was asked.

    `key_id_at(expanded_path)` may name the key a file holds, so a replaced signing key whose
    public half is already listed (under another file name) is not listed twice.
    """
    args = ArgsFile(old_text, source or "the arguments file")
    edits = _Edits(args)
    env = request.env

    def same(a: str, b: str) -> bool:
        return expand(a, env) == expand(b, env)

    def same_key(a: str, b: str) -> bool:
        if same(a, b):
            return True
        kid_a, kid_b = key_id_at(expand(a, env)), key_id_at(expand(b, env))
        return kid_a is not None and kid_a == kid_b

    def line(name: str, value: str, style: FlagLine | None) -> str:
        quote = style.quote if style else ""
        return f"--{name}={quote}{value}{quote}"

    issuers = args.flag_lines(ISSUER)
    keys = args.flag_lines(KEY_FILE)
    signers = args.flag_lines(SIGNING_KEY)
    audience_lines = args.flag_lines(AUDIENCES)

    # Audiences in force now: the flag, or else kube-apiserver's default, the first issuer.
    if audience_lines:
        audiences_before = _dedup([a for fl in audience_lines for a in fl.value.split(",")])
    else:
        audiences_before = [issuers[0].value] if issuers else []
    # With nothing in force yet, the default after the change (the new issuer) is the base.
    base = audiences_before or [request.issuer]
    audiences_wanted = _dedup(base + list(request.extra_audiences))

    # The new issuer goes first (it signs); previous ones stay as accepted issuers unless dropped.
    issuer_group: list[str] | None = None
    issuer_anchor: tuple[str, int | None]
    first_is_new = bool(issuers) and issuers[0].value == request.issuer
    for fl in issuers[1:] if first_is_new else issuers:
        if request.drop_previous or fl.value == request.issuer:
            edits.disabled.add(fl.index)
    if first_is_new:
        issuer_anchor = ("after", issuers[0].index)
    elif not issuers:
        issuer_anchor = ("end", None)
        issuer_group = edits.add("end", None, line(ISSUER, request.issuer, None))
    else:
        where = "after" if request.drop_previous else "before"
        issuer_anchor = (where, issuers[0].index)
        issuer_group = edits.add(where, issuers[0].index, line(ISSUER, request.issuer, issuers[0]))

    # Audiences: written out whenever kube-apiserver's default would no longer give them.
    if audience_lines:
        if audiences_wanted != audiences_before:
            for fl in audience_lines:
                edits.disabled.add(fl.index)
            edits.add(
                "after",
                audience_lines[0].index,
                line(AUDIENCES, ",".join(audiences_wanted), audience_lines[0]),
            )
    elif audiences_wanted and audiences_wanted != [request.issuer]:
        text = line(AUDIENCES, ",".join(audiences_wanted), issuers[0] if issuers else None)
        if issuer_group is not None:
            issuer_group.append(text)
        else:
            edits.add(*issuer_anchor, text)

    # Exactly one signing key, the new one; the key it replaces keeps verifying old tokens.
    keep_signer = next((fl for fl in signers if same(fl.value, request.signing_key_ref)), None)
    replaced_signers = [fl for fl in signers if fl is not keep_signer]
    for fl in replaced_signers:
        edits.disabled.add(fl.index)
    if keep_signer is None:
        if signers:
            edits.add(
                "after", signers[0].index, line(SIGNING_KEY, request.signing_key_ref, signers[0])
            )
        else:
            edits.add("end", None, line(SIGNING_KEY, request.signing_key_ref, None))

    # Verification keys: the new public key joins the previous ones (or replaces them).
    new_keys: list[str] = []
    if request.drop_previous:
        for fl in keys:
            if not same(fl.value, request.public_key_ref):
                edits.disabled.add(fl.index)
    else:
        for fl in replaced_signers:
            if not any(same_key(k.value, fl.value) for k in keys) and fl.value not in new_keys:
                new_keys.append(fl.value)
    if not any(same(fl.value, request.public_key_ref) for fl in keys):
        new_keys.append(request.public_key_ref)
    style = keys[-1] if keys else (signers[0] if signers else None)
    for value in new_keys:
        if keys:
            edits.add("after", keys[-1].index, line(KEY_FILE, value, style))
        elif signers:
            edits.add("before", signers[0].index, line(KEY_FILE, value, style))
        else:
            edits.add("end", None, line(KEY_FILE, value, style))

    return edits.render()


def unified_diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} (configured)",
        )
    )


@dataclass(frozen=True)
class ConfigureSettings:
    """Everything `microk8s configure` was asked to do."""

    issuer: str
    public_key: Path
    signing_key: Path
    args_file: Path
    key_dir: Path
    snap_data: Path = DEFAULT_SNAP_DATA
    extra_audiences: tuple[str, ...] = ()
    drop_previous: bool = False
    dry_run: bool = False
    restart: bool = False
    wait_timeout: float = 300.0


def check_audiences(audiences: tuple[str, ...]) -> tuple[str, ...]:
    for audience in audiences:
        if not audience or any(char in audience for char in " \t,'\"$"):
            raise UsageError(
                f"audience {audience!r} is empty or holds a space, comma, quote or '$'"
            )
    return audiences


def _key_id_reader() -> Callable[[str], str | None]:
    cache: dict[str, str | None] = {}

    def key_id_at(path: str) -> str | None:
        if path not in cache:
            try:
                cache[path] = key_id(load_public_key(path))
            except UsageError:
                cache[path] = None
        return cache[path]

    return key_id_at


def configure(settings: ConfigureSettings, say: Callable[[str], None]) -> int:
    """Check everything, show the change, then (unless a dry run) install keys, back up, write."""
    validate_issuer(settings.issuer)
    check_audiences(settings.extra_audiences)
    pair = SigningKeyPair.load(settings.public_key, settings.signing_key)
    key_dir = settings.key_dir.absolute()
    check_path_for_args(str(key_dir), "--key-dir")
    old = read_text(settings.args_file)
    tools: RestartTools | None = None
    if not settings.dry_run:
        check_writable(settings.args_file)
        check_creatable_dir(key_dir)
        if settings.restart:
            tools = RestartTools.find()

    request = ConfigureRequest(
        issuer=settings.issuer,
        public_key_ref=file_reference(key_dir / pair.public_name, settings.snap_data),
        signing_key_ref=file_reference(key_dir / pair.private_name, settings.snap_data),
        extra_audiences=settings.extra_audiences,
        drop_previous=settings.drop_previous,
        env={"SNAP_DATA": str(settings.snap_data)},
    )
    new = plan_configure(old, request, source=str(settings.args_file), key_id_at=_key_id_reader())
    copies = pending_copies(pair, key_dir)
    if new != old:
        say(unified_diff(old, new, settings.args_file).rstrip("\n"))
    for path in copies:
        say(f"key copy: {path}" + (" (mode 0600)" if path.name == pair.private_name else ""))
    if new == old and not copies:
        say(f"{settings.args_file} already configures issuer {settings.issuer}: nothing to do")
        return 0
    if settings.dry_run:
        say("dry run: nothing was changed")
        return 0

    install_copies(pair, key_dir)
    if new != old:
        saved = backup(settings.args_file)
        write_atomically(settings.args_file, new)
        say(f"backup: {saved}   (undo with: irsa-webhook microk8s restore)")
    say(f"configured {settings.args_file}")
    restart_or_hint(tools, settings.wait_timeout, say)
    return 0
