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
    plan = _Plan(ArgsFile(old_text, source or "the arguments file"), request, key_id_at)
    issuer_group, issuer_anchor = plan.issuer()
    plan.audiences(issuer_group, issuer_anchor)
    replaced_signers = plan.signing_key()
    plan.key_files(replaced_signers)
    return plan.edits.render()


class _Plan:
    """The four flags, each planned from what the file has active now."""

    def __init__(
        self,
        args: ArgsFile,
        request: ConfigureRequest,
        key_id_at: Callable[[str], str | None],
    ) -> None:
        self.request = request
        self.edits = _Edits(args)
        self.key_id_at = key_id_at
        self.issuers = args.flag_lines(ISSUER)
        self.keys = args.flag_lines(KEY_FILE)
        self.signers = args.flag_lines(SIGNING_KEY)
        self.audience_lines = args.flag_lines(AUDIENCES)

    def same(self, a: str, b: str) -> bool:
        return expand(a, self.request.env) == expand(b, self.request.env)

    def same_key(self, a: str, b: str) -> bool:
        if self.same(a, b):
            return True
        env = self.request.env
        kid_a, kid_b = self.key_id_at(expand(a, env)), self.key_id_at(expand(b, env))
        return kid_a is not None and kid_a == kid_b

    @staticmethod
    def line(name: str, value: str, style: FlagLine | None) -> str:
        quote = style.quote if style else ""
        return f"--{name}={quote}{value}{quote}"

    def issuer(self) -> tuple[list[str] | None, tuple[str, int | None]]:
        """The new issuer goes first (it signs); previous ones stay accepted unless dropped.

        Returns the group the new issuer line joined (if added) and where it sits.
        """
        new, issuers, drop = self.request.issuer, self.issuers, self.request.drop_previous
        first_is_new = bool(issuers) and issuers[0].value == new
        for fl in issuers[1:] if first_is_new else issuers:
            if drop or fl.value == new:
                self.edits.disabled.add(fl.index)
        if first_is_new:
            return None, ("after", issuers[0].index)
        if not issuers:
            return self.edits.add("end", None, self.line(ISSUER, new, None)), ("end", None)
        where = "before" if not drop else "after"
        group = self.edits.add(where, issuers[0].index, self.line(ISSUER, new, issuers[0]))
        return group, (where, issuers[0].index)

    def audiences(
        self, issuer_group: list[str] | None, issuer_anchor: tuple[str, int | None]
    ) -> None:
        """Keep what is in force and add what was asked, written out whenever kube-apiserver's
        default (the first issuer) would no longer give exactly that."""
        lines, issuers, new = self.audience_lines, self.issuers, self.request.issuer
        if lines:
            before = _dedup([a for fl in lines for a in fl.value.split(",")])
        else:
            before = [issuers[0].value] if issuers else []
        wanted = _dedup((before or [new]) + list(self.request.extra_audiences))
        if lines:
            if wanted != before:
                self.edits.disabled.update(fl.index for fl in lines)
                self.edits.add(
                    "after", lines[0].index, self.line(AUDIENCES, ",".join(wanted), lines[0])
                )
            return
        if wanted and wanted != [new]:
            text = self.line(AUDIENCES, ",".join(wanted), issuers[0] if issuers else None)
            if issuer_group is not None:
                issuer_group.append(text)
            else:
                self.edits.add(*issuer_anchor, text)

    def signing_key(self) -> list[FlagLine]:
        """Exactly one signing key, the new one. Returns the lines it replaced."""
        ref, signers = self.request.signing_key_ref, self.signers
        keep = next((fl for fl in signers if self.same(fl.value, ref)), None)
        replaced = [fl for fl in signers if fl is not keep]
        self.edits.disabled.update(fl.index for fl in replaced)
        if keep is None:
            anchor = signers[0] if signers else None
            self.edits.add(
                "after" if anchor else "end",
                anchor.index if anchor else None,
                self.line(SIGNING_KEY, ref, anchor),
            )
        return replaced

    def key_files(self, replaced_signers: list[FlagLine]) -> None:
        """The new public key joins the previous keys, and a replaced signing key keeps
        verifying the tokens it signed; with drop_previous, only the new key stays."""
        ref, keys = self.request.public_key_ref, self.keys
        added: list[str] = []
        if self.request.drop_previous:
            self.edits.disabled.update(fl.index for fl in keys if not self.same(fl.value, ref))
        else:
            for fl in replaced_signers:
                listed = any(self.same_key(k.value, fl.value) for k in keys)
                if not listed and fl.value not in added:
                    added.append(fl.value)
        if not any(self.same(fl.value, ref) for fl in keys):
            added.append(ref)
        style = keys[-1] if keys else (self.signers[0] if self.signers else None)
        for value in added:
            if keys:
                self.edits.add("after", keys[-1].index, self.line(KEY_FILE, value, style))
            elif self.signers:
                self.edits.add("before", self.signers[0].index, self.line(KEY_FILE, value, style))
            else:
                self.edits.add("end", None, self.line(KEY_FILE, value, style))


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
