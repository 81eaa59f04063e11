"""A lossless reader and editor for MicroK8s's kube-apiserver arguments file.

MicroK8s's kubelite reads `$SNAP_DATA/args/kube-apiserver` line by line: surrounding whitespace is
trimmed, blank lines and lines starting with `#` are skipped, every `'` and `"` is removed, the
rest is split on single spaces and each part goes through Go's os.ExpandEnv. We keep the file as
text (every byte of every line we do not touch stays as it was) and compute what kube-apiserver
will actually see with that same rule, so edits can be judged by their effect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from webhook.errors import UsageError

_ENV_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(value: str, env: Mapping[str, str] | None) -> str:
    """Go's os.ExpandEnv for `$NAME` and `${NAME}`; with env None, references stay literal."""
    if env is None:
        return value
    return _ENV_REFERENCE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def kubelite_words(content: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The arguments one line of the file becomes (none for a blank or comment line)."""
    line = content.strip()
    if not line or line.startswith("#"):
        return []
    line = line.replace('"', "").replace("'", "")
    return [expand(part, env) for part in line.split(" ")]


@dataclass(frozen=True)
class Flag:
    name: str
    value: str


def flags_from_words(words: list[str]) -> list[Flag]:
    """Group arguments the way pflag does: `--name=value`, or `--name value`, or a bare `--name`."""
    flags: list[Flag] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("--"):
            flags.append(Flag("", word))  # a positional argument: kube-apiserver refuses those
            continue
        name, sep, value = word[2:].partition("=")
        if not sep and index < len(words) and not words[index].startswith("-"):
            value = words[index]
            index += 1
        flags.append(Flag(name, value))
    return flags


@dataclass(frozen=True)
class Line:
    """One line exactly as stored, line ending included."""

    raw: str

    @property
    def content(self) -> str:
        return self.raw.rstrip("\r\n")

    @property
    def ending(self) -> str:
        return self.raw[len(self.content) :]

    def flags(self, env: Mapping[str, str] | None = None) -> list[Flag]:
        return flags_from_words(kubelite_words(self.content, env))


@dataclass(frozen=True)
class FlagLine:
    """A line that holds exactly one flag: where it is, its value as written and as read."""

    index: int
    written: str  # the value as it appears in the file, quotes included
    value: str  # the value kube-apiserver receives before environment expansion

    @property
    def quote(self) -> str:
        """The quote character this line wraps its value in, or ''."""
        text = self.written
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[0]
        return ""


class ArgsFile:
    """The file as a list of lines; `text` gives back exactly what was parsed."""

    def __init__(self, text: str, source: str = "the arguments file") -> None:
        self.source = source
        self.lines = [Line(raw) for raw in text.splitlines(keepends=True)]

    @property
    def text(self) -> str:
        return "".join(line.raw for line in self.lines)

    @property
    def newline(self) -> str:
        """The line ending the file already uses, for lines we add."""
        for line in self.lines:
            if line.ending:
                return line.ending
        return "\n"

    def active_words(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Every argument kube-apiserver gets from this file, in order."""
        return [word for line in self.lines for word in kubelite_words(line.content, env)]

    def active_flags(self, env: Mapping[str, str] | None = None) -> list[Flag]:
        return flags_from_words(self.active_words(env))

    def values(self, name: str, env: Mapping[str, str] | None = None) -> list[str]:
        return [flag.value for flag in self.active_flags(env) if flag.name == name]

    def flag_lines(self, name: str) -> list[FlagLine]:
        """The active lines setting `name`, each checked to hold that one flag alone."""
        found: list[FlagLine] = []
        for index, line in enumerate(self.lines):
            flags = line.flags()
            if not any(flag.name == name for flag in flags):
                continue
            if len(flags) != 1:
                raise UsageError(
                    f"{self.source} line {index + 1} sets --{name} together with other "
                    "arguments: put each flag on its own line first"
                )
            written = line.content.strip()
            separator = "=" if written.startswith(f"--{name}=") else " "
            written_value = written.partition(separator)[2].strip()
            found.append(FlagLine(index, written_value, flags[0].value))
        return found
