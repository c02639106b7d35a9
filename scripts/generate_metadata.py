"""Write each Windmill script's `<name>.script.yaml` the way `wmill generate-metadata` does.

    npm ci --prefix tests/windmill                # once: Windmill's own Python parser (+ CLI)
    .venv/bin/python scripts/generate_metadata.py          # write or update the files
    .venv/bin/python scripts/generate_metadata.py --check  # CI: exit 1 if a file would change

Every `.py` under `f/` that `wmill.yaml` includes (and does not exclude) gets a metadata file
next to it. The signature is read by `windmill-parser-wasm-py`, the parser windmill-cli 1.819
uses, through `tests/windmill/wm_sig.mjs`; its output is turned into a JSON schema with the same
rules as the CLI (`inferSchema` in cli/src/utils/metadata.ts and `argSigToJsonSchemaType`) and
written with the same YAML layout (the `yaml` package with the CLI's key order, single quotes).

As the CLI does, a regeneration keeps `summary`, `description`, every other top-level key, each
property's description (and title, pattern, ...) and the schema's `order`. Two deliberate
differences: the lock is never resolved here (a new file gets `lock: ''`, an existing `lock`
value is kept as it is), and the schema gets an `order` list in `main()` order so that the
Windmill form shows the fields in signature order (an existing `order` is kept; parameters that
are gone are dropped from it and new ones are appended).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
import subprocess
import sys
import unicodedata
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tests" / "windmill"
WM_SIG = TOOLS / "wm_sig.mjs"
SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


class MetadataError(Exception):
    """Something this tool cannot do faithfully; the message says what to change."""


# --------------------------------------------------------------------------------------------
# Reading YAML (the subset Windmill metadata and wmill.yaml use: block maps and sequences, flow
# collections, plain / quoted / block scalars, comments; no anchors, aliases or tags).
# --------------------------------------------------------------------------------------------

_NULL = re.compile(r"^(?:~|[Nn]ull|NULL)?\Z")
_BOOL = re.compile(r"^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)\Z")
_INT = re.compile(r"^[-+]?[0-9]+\Z")
_OCT = re.compile(r"^0o[0-7]+\Z")
_HEX = re.compile(r"^0x[0-9a-fA-F]+\Z")
_FLOAT_EXP = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+\Z")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)\Z")
_FLOAT_SPECIAL = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)\Z")


def _resolve_plain(text: str) -> Any:
    """The YAML 1.2 core schema, as the `yaml` package resolves an untagged plain scalar."""
    if _NULL.match(text):
        return None
    if _BOOL.match(text):
        return text[0] in "tT"
    if _OCT.match(text):
        return int(text[2:], 8)
    if _INT.match(text):
        return int(text)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT_SPECIAL.match(text):
        return float(text.lower().replace(".", ""))
    if _FLOAT_EXP.match(text) or _FLOAT.match(text):
        return float(text)
    return text


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _strip_comment(text: str) -> str:
    """Drop a trailing ` # comment` from a plain (unquoted) scalar or flow text."""
    match = re.search(r"(^|[ \t])#", text)
    return (text[: match.start()] if match else text).rstrip()


_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip


def _fold_lines(parts: list[str]) -> str:
    """Flow-scalar line folding: one break is a space, n+1 breaks are n newlines."""
    out = parts[0]
    pending_newlines = 0
    for part in parts[1:]:
        if part == "":
            pending_newlines += 1
            continue
        out += "\n" * pending_newlines if pending_newlines else " "
        out += part
        pending_newlines = 0
    return out + "\n" * pending_newlines


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        if text.endswith("\n"):
            text = text[:-1]
        self.lines = [line.rstrip("\r") for line in text.split("\n")]
        self.i = 0
        self.source = source

    def fail(self, message: str) -> MetadataError:
        return MetadataError(f"{self.source}:{self.i + 1}: {message}")

    def skip_blank(self) -> None:
        while self.i < len(self.lines) and _is_blank(self.lines[self.i]):
            self.i += 1

    def document(self) -> Any:
        self.skip_blank()
        if self.i < len(self.lines) and self.lines[self.i].rstrip() == "---":
            self.i += 1
            self.skip_blank()
        if self.i >= len(self.lines):
            return None
        value = self.node(_indent_of(self.lines[self.i]), -1)
        self.skip_blank()
        if self.i < len(self.lines):
            raise self.fail("unexpected content (bad indentation?)")
        return value

    # A node that starts at the current line, at column `indent`, inside a parent at `parent`.
    def node(self, indent: int, parent: int) -> Any:
        content = self.lines[self.i][indent:]
        if content == "-" or content.startswith("- "):
            return self.sequence(indent)
        if self.key_split(content) is not None:
            return self.mapping(indent)
        self.lines[self.i] = self.lines[self.i][indent:]
        return self.value(parent)

    def key_split(self, content: str) -> tuple[str, str] | None:
        """(key, rest) when `content` starts with `key:` (then a space or the line end)."""
        if content[:1] in ("'", '"'):
            end = self.quoted_end(content, 0)
            if end is None:
                return None
            after = content[end:]
            if after == ":" or after.startswith(": ") or after.startswith(":\t"):
                key = self.parse_quoted_text(content[:end])
                return key, after[1:].lstrip()
            return None
        if content[:1] in ("[", "{", "&", "*", "!", "|", ">", "#", "%", "@", "`"):
            return None
        match = re.match(r"^(.*?):(?:[ \t]|$)", content)
        if not match or match.group(1) == "":
            return None
        return match.group(1).rstrip(), content[match.end() :].lstrip()

    @staticmethod
    def quoted_end(text: str, start: int) -> int | None:
        quote = text[start]
        j = start + 1
        while j < len(text):
            ch = text[j]
            if quote == "'" and ch == "'":
                if text[j + 1 : j + 2] == "'":
                    j += 2
                    continue
                return j + 1
            if quote == '"' and ch == "\\":
                j += 2
                continue
            if quote == '"' and ch == '"':
                return j + 1
            j += 1
        return None

    @staticmethod
    def parse_quoted_text(text: str) -> str:
        """A quoted scalar given whole, quotes included (its lines joined with newlines)."""
        quote, body = text[0], text[1:-1]
        out: list[str] = []
        spaces = ""  # white space seen but not yet kept: dropped if a line break follows
        j = 0
        while j < len(body):
            ch = body[j]
            if ch == "\\" and quote == '"' and j + 1 < len(body):
                code = body[j + 1]
                if code == "\n":  # escaped line break: join the lines, no space
                    out.append(spaces)
                    spaces = ""
                    j += 2
                    while j < len(body) and body[j] in " \t":
                        j += 1
                    continue
                sizes = {"x": 2, "u": 4, "U": 8}
                if code in sizes:
                    decoded = chr(int(body[j + 2 : j + 2 + sizes[code]], 16))
                    j += 2 + sizes[code]
                elif code in _ESCAPES:
                    decoded = _ESCAPES[code]
                    j += 2
                else:
                    raise MetadataError(f"unknown escape \\{code} in a double-quoted string")
                out.append(spaces + decoded)
                spaces = ""
                continue
            if ch == "'" and quote == "'":
                out.append(spaces + "'")
                spaces = ""
                j += 2
                continue
            if ch in " \t":
                spaces += ch
                j += 1
                continue
            if ch == "\n":
                spaces = ""
                breaks = 0
                j += 1
                while True:
                    while j < len(body) and body[j] in " \t":
                        j += 1
                    if j < len(body) and body[j] == "\n":
                        breaks += 1
                        j += 1
                        continue
                    break
                out.append("\n" * breaks if breaks else " ")
                continue
            out.append(spaces + ch)
            spaces = ""
            j += 1
        return "".join(out) + spaces

    def mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            self.skip_blank()
            if self.i >= len(self.lines):
                return result
            line = self.lines[self.i]
            if _indent_of(line) != indent:
                if _indent_of(line) > indent:
                    raise self.fail("unexpected indentation")
                return result
            split = self.key_split(line[indent:])
            if split is None:
                if line[indent:].startswith("-"):
                    return result
                raise self.fail("expected `key: value`")
            key, rest = split
            if key in result:
                raise self.fail(f"duplicate key {key!r}")
            self.lines[self.i] = rest
            result[key] = self.value(indent, allow_seq_at_parent=True)

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while True:
            self.skip_blank()
            if self.i >= len(self.lines):
                return result
            line = self.lines[self.i]
            content = line[indent:]
            if _indent_of(line) != indent or not (content == "-" or content.startswith("- ")):
                if _indent_of(line) > indent:
                    raise self.fail("unexpected indentation")
                return result
            rest = content[1:]
            column = indent + 1 + _indent_of(rest)
            if rest.strip() == "" or rest.strip().startswith("#"):
                self.lines[self.i] = ""
                result.append(self.value(indent))
                continue
            self.lines[self.i] = " " * column + rest.lstrip(" ")
            inner = rest.lstrip(" ")
            if inner == "-" or inner.startswith("- ") or self.key_split(inner) is not None:
                result.append(self.node(column, indent))
            else:
                self.lines[self.i] = inner
                result.append(self.value(indent))

    # The value whose text is on the current line (what follows `key:` or `- `).
    def value(self, parent: int, allow_seq_at_parent: bool = False) -> Any:
        text = self.lines[self.i].lstrip(" ")
        if text == "" or text.startswith("#"):
            self.i += 1
            self.skip_blank()
            if self.i >= len(self.lines):
                return None
            line = self.lines[self.i]
            indent = _indent_of(line)
            if indent > parent:
                return self.node(indent, parent)
            if allow_seq_at_parent and indent == parent and line[indent:][:2] in ("- ", "-"):
                return self.sequence(indent)
            return None
        head = text[0]
        if head in "&*!":
            raise self.fail("anchors, aliases and tags are not supported")
        if head in "'\"":
            return self.quoted_value(text, parent)
        if head in "|>":
            return self.block_scalar(text, parent)
        if head in "[{":
            return self.flow_value(text, parent)
        return self.plain_value(text, parent)

    def quoted_value(self, text: str, parent: int) -> str:
        collected = text
        while True:
            end = self.quoted_end(collected, 0)
            if end is not None:
                tail = collected[end:].strip()
                if tail and not tail.startswith("#"):
                    raise self.fail("text after a quoted scalar")
                self.i += 1
                return self.parse_quoted_text(collected[:end])
            self.i += 1
            if self.i >= len(self.lines):
                raise self.fail("unterminated quoted scalar")
            collected += "\n" + self.lines[self.i]

    def plain_value(self, text: str, parent: int) -> Any:
        parts = [_strip_comment(text)]
        self.i += 1
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() == "":
                parts.append("")
                self.i += 1
                continue
            if _indent_of(line) <= parent or line.strip().startswith("#"):
                break
            parts.append(_strip_comment(line.strip()))
            self.i += 1
        while parts and parts[-1] == "":
            parts.pop()
            self.i -= 1
        if len(parts) == 1:
            return _resolve_plain(parts[0])
        return _fold_lines(parts)

    def block_scalar(self, text: str, parent: int) -> str:
        header = _strip_comment(text)
        match = re.fullmatch(r"([|>])([1-9]?)([-+]?)([1-9]?)", header)
        if not match:
            raise self.fail(f"bad block scalar header {header!r}")
        style, digit_a, chomp, digit_b = match.groups()
        explicit = digit_a or digit_b
        self.i += 1
        block: list[str] = []
        content_indent = parent + int(explicit) if explicit else None
        if parent < 0 and explicit:
            content_indent = int(explicit) - 1
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() == "":
                block.append(line)
                self.i += 1
                continue
            if content_indent is None:
                content_indent = _indent_of(line)
                if content_indent <= parent:
                    break
            if _indent_of(line) < content_indent:
                break
            block.append(line)
            self.i += 1
        if content_indent is None:  # only empty lines
            block = [""] * len(block)
            content_indent = 0
        lines = [line[content_indent:] for line in block]
        for n, line in enumerate(lines):  # leading white-space-only lines are empty lines
            if explicit or line.strip(" "):
                break
            lines[n] = ""
        trailing = 0
        while lines and lines[-1] == "":
            lines.pop()
            trailing += 1
        if not lines:
            return "\n" * trailing if chomp == "+" else ""
        if style == "|":
            body = "\n".join(lines)
        else:
            body = ""
            previous: str | None = None
            empty = 0
            for line in lines:
                if line == "":
                    empty += 1
                    continue
                if previous is None:
                    body += "\n" * empty
                elif previous[0] not in " \t" and line[0] not in " \t":
                    body += "\n" * empty if empty else " "
                else:
                    body += "\n" * (empty + 1)
                body += line
                previous, empty = line, 0
        if chomp == "-":
            return body
        if chomp == "+":
            return body + "\n" + "\n" * trailing
        return body + "\n"

    def flow_value(self, text: str, parent: int) -> Any:
        collected = text
        while True:
            try:
                value, end = _FlowParser(collected).parse()
            except _Incomplete:
                self.i += 1
                if self.i >= len(self.lines):
                    raise self.fail("unterminated flow collection") from None
                collected += "\n" + self.lines[self.i]
                continue
            tail = collected[end:].strip()
            if tail and not tail.startswith("#"):
                raise self.fail("text after a flow collection")
            self.i += 1
            return value


class _Incomplete(Exception):
    pass


class _FlowParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.j = 0

    def parse(self) -> tuple[Any, int]:
        value = self.item()
        return value, self.j

    def ws(self) -> None:
        while self.j < len(self.text):
            ch = self.text[self.j]
            if ch in " \t\n":
                self.j += 1
            elif ch == "#" and (self.j == 0 or self.text[self.j - 1] in " \t\n"):
                while self.j < len(self.text) and self.text[self.j] != "\n":
                    self.j += 1
            else:
                return

    def item(self) -> Any:
        self.ws()
        if self.j >= len(self.text):
            raise _Incomplete
        ch = self.text[self.j]
        if ch == "[":
            return self.collection("]")
        if ch == "{":
            return self.collection("}")
        if ch in "'\"":
            end = _Reader.quoted_end(self.text, self.j)
            if end is None:
                raise _Incomplete
            raw = self.text[self.j : end]
            self.j = end
            return _Reader.parse_quoted_text(raw)
        start = self.j
        while self.j < len(self.text):
            ch = self.text[self.j]
            if ch in ",[]{}" or (
                ch == ":" and self.text[self.j + 1 : self.j + 2] in (" ", "\n", ",", "]", "}", "")
            ):
                break
            if ch == "#" and self.text[self.j - 1] in " \t\n":
                break
            self.j += 1
        words = [w.strip() for w in self.text[start : self.j].split("\n")]
        return _resolve_plain(" ".join(w for w in words if w))

    def collection(self, close: str) -> Any:
        self.j += 1
        result: Any = [] if close == "]" else {}
        while True:
            self.ws()
            if self.j >= len(self.text):
                raise _Incomplete
            if self.text[self.j] == close:
                self.j += 1
                return result
            key = self.item()
            self.ws()
            if self.j < len(self.text) and self.text[self.j] == ":":
                self.j += 1
                value = self.item()
                if close == "]":
                    result.append({key: value})
                else:
                    result[key] = value
            elif close == "]":
                result.append(key)
            else:
                result[key] = None
            self.ws()
            if self.j >= len(self.text):
                raise _Incomplete
            if self.text[self.j] == ",":
                self.j += 1
            elif self.text[self.j] != close:
                raise MetadataError(f"bad flow collection: {self.text!r}")


def load_yaml(text: str, source: str = "<yaml>") -> Any:
    return _Reader(text, source).document()


# --------------------------------------------------------------------------------------------
# Writing YAML exactly as windmill-cli 1.819 does: the `yaml` npm package (v2) with
# `{sortMapEntries: prioritizeName(a).localeCompare(prioritizeName(b)), singleQuote: true,
# aliasDuplicateObjects: false}` and its defaults (indent 2, lineWidth 80, minContentWidth 20).
# --------------------------------------------------------------------------------------------

LINE_WIDTH = 80
MIN_CONTENT_WIDTH = 20

# The CLI's prioritizeName(): these keys sort as if they were named like the value.
_PRIORITY = {
    "version": "aaa", "id": "aa", "type": "ab", "summary": "ad", "name": "ae",
    "display_name": "af", "description": "ag", "value": "ah", "content": "ai",
    "modules": "aj", "failure_module": "ak", "input_transforms": "al", "lock": "az",
    "locks": "azz",
}  # fmt: skip

# String.prototype.localeCompare (ICU root collation): punctuation, symbols, digits, then letters
# compared without accents and case first; then accents; then case (lower case first). Exact for
# ASCII; other characters are placed by their Unicode category (close to ICU, not exact).
_COLLATION = "\t\n\x0b\x0c\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
_RANK = {ch: float(n) for n, ch in enumerate(_COLLATION)}


# Accents in ICU's secondary order: acute, grave, breve, circumflex, caron, ring, diaeresis, ...
_MARKS = "\u0301\u0300\u0306\u0302\u030c\u030a\u0308\u030b\u0303\u0307\u0327\u0328\u0304"


def _primary(ch: str) -> float:
    if ch in _RANK:
        return _RANK[ch]
    category = unicodedata.category(ch)
    if category == "Pd":
        return _RANK["-"] + 0.5
    if category in ("Pi", "Pf"):
        return _RANK['"'] + 0.5
    if category.startswith("P"):
        return _RANK["%"] + 0.5
    if category == "Sc":
        return _RANK["$"] + 0.5
    if category.startswith("S"):
        return _RANK["~"] + 0.5
    if category == "Nd":
        return _RANK[str(unicodedata.digit(ch))]
    return 1000.0 + ord(ch)


def _collation_key(text: str) -> tuple[tuple[float, ...], tuple[str, ...], tuple[int, ...]]:
    primary, secondary, tertiary = [], [], []
    for ch in text:
        if unicodedata.category(ch) == "Cc" and ch not in _RANK:
            continue  # ignorable
        base, *marks = unicodedata.normalize("NFD", ch)
        primary.append(_primary(base.lower()))
        secondary.append("".join(chr(0xE000 + _MARKS.find(m)) if m in _MARKS else m for m in marks))
        tertiary.append(1 if ch.isupper() else 0)
    return tuple(primary), tuple(secondary), tuple(tertiary)


def _map_key_order(key: str) -> tuple[tuple[float, ...], tuple[str, ...], tuple[int, ...]]:
    return _collation_key(_PRIORITY.get(key, key))


_PLAIN_UNSAFE = re.compile(
    r"^[\n\t ,\[\]{}#&*!|>'\"%@`]|^[?-]\Z|^[?-][ \t]|[\n:][ \t]|[ \t]\n|[\n\t ]#|[\n\t :]\Z"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_DOC_MARKER = re.compile(r"^(%|---|\.\.\.)", re.M)


def _resolves_as_non_string(text: str) -> bool:
    return any(
        rx.match(text)
        for rx in (_NULL, _BOOL, _OCT, _INT, _HEX, _FLOAT_SPECIAL, _FLOAT_EXP, _FLOAT)
    )


def _fold(text: str, indent: str, mode: str, indent_at_start: int | None) -> tuple[str, bool]:
    """Fold a long scalar onto several lines; returns (text, overflowed). Modes: flow, quoted,
    block, as the yaml package's line folding (a fold replaces one space by a line break)."""
    end_step = max(1 + MIN_CONTENT_WIDTH, 1 + LINE_WIDTH - len(indent))
    if len(text) <= end_step:
        return text, False
    folds: list[int] = []
    escaped: set[int] = set()
    end = LINE_WIDTH - len(indent)
    if indent_at_start is not None:
        if indent_at_start > LINE_WIDTH - max(2, MIN_CONTENT_WIDTH):
            folds.append(0)
        else:
            end = LINE_WIDTH - indent_at_start
    split: int | None = None
    prev: str | None = None
    overflow = False
    i = -1
    esc_start = esc_end = -1

    def more_indented(i: int) -> int:
        # In block mode, lines indented deeper than `indent` are kept as they are.
        last, begin = i, i + 1
        ch = text[begin] if begin < len(text) else ""
        while ch in (" ", "\t"):
            if i < begin + len(indent):
                i += 1
                ch = text[i] if i < len(text) else ""
            else:
                while True:
                    i += 1
                    ch = text[i] if i < len(text) else ""
                    if not ch or ch == "\n":
                        break
                last, begin = i, i + 1
                ch = text[begin] if begin < len(text) else ""
        return last

    if mode == "block":
        i = more_indented(i)
        if i != -1:
            end = i + end_step
    while True:
        i += 1
        if i >= len(text):
            break
        ch = text[i]
        if mode == "quoted" and ch == "\\":
            esc_start = i
            i += {"x": 3, "u": 5, "U": 9}.get(text[i + 1 : i + 2], 1)
            esc_end = i
        if ch == "\n":
            if mode == "block":
                i = more_indented(i)
            end = i + len(indent) + end_step
            split = None
        else:
            if ch == " " and prev and prev not in (" ", "\n", "\t"):
                nxt = text[i + 1 : i + 2]
                if nxt and nxt not in (" ", "\n", "\t"):
                    split = i
            if i >= end:
                if split:
                    folds.append(split)
                    end = split + end_step
                    split = None
                elif mode == "quoted":
                    while prev in (" ", "\t"):
                        prev = ch
                        i += 1
                        ch = text[i] if i < len(text) else ""
                        overflow = True
                    j = i - 2 if i > esc_end + 1 else esc_start - 1
                    if j in escaped:
                        return text, overflow
                    folds.append(j)
                    escaped.add(j)
                    end = j + end_step
                    split = None
                else:
                    overflow = True
        prev = ch
    if not folds:
        return text, overflow
    out = text[: folds[0]]
    for n, fold in enumerate(folds):
        stop = folds[n + 1] if n + 1 < len(folds) else len(text)
        if fold == 0:
            out = f"\n{indent}{text[0:stop]}"
        else:
            if mode == "quoted" and fold in escaped:
                out += f"{text[fold]}\\"
            out += f"\n{indent}{text[fold + 1 : stop]}"
    return out, overflow


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _double_quoted(value: str, indent: str, implicit_key: bool, at_start: int | None) -> str:
    raw = _json_string(value)
    out = ""
    start = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == " " and raw[i + 1 : i + 3] == "\\n":
            out += raw[start:i] + "\\ "
            i += 1
            start = i
            ch = "\\"
        if ch == "\\":
            code = raw[i + 1 : i + 2]
            if code == "u":
                out += raw[start:i]
                hexcode = raw[i + 2 : i + 6]
                named = {"0000": "\\0", "0007": "\\a", "000b": "\\v", "001b": "\\e",
                         "0085": "\\N", "00a0": "\\_", "2028": "\\L", "2029": "\\P"}  # fmt: skip
                if hexcode in named:
                    out += named[hexcode]
                elif hexcode.startswith("00"):
                    out += "\\x" + hexcode[2:]
                else:
                    out += raw[i : i + 6]
                i += 5
                start = i + 1
            elif code == "n":
                if implicit_key or raw[i + 2 : i + 3] == '"' or len(raw) < 40:
                    i += 1
                else:
                    out += raw[start:i] + "\n\n"
                    while raw[i + 2 : i + 4] == "\\n" and raw[i + 4 : i + 5] != '"':
                        out += "\n"
                        i += 2
                    out += indent
                    if raw[i + 2 : i + 3] == " ":
                        out += "\\"
                    i += 1
                    start = i + 1
            else:
                i += 1
        i += 1
    out = out + raw[start:] if start else raw
    if implicit_key:
        return out
    return _fold(out, indent, "quoted", at_start)[0]


def _single_quoted(value: str, indent: str, implicit_key: bool, at_start: int | None) -> str:
    if (implicit_key and "\n" in value) or re.search(r"[ \t]\n|\n[ \t]", value):
        return _double_quoted(value, indent, implicit_key, at_start)
    text = "'" + re.sub(r"\n+", lambda m: m.group(0) + "\n" + indent, value.replace("'", "''"))
    text += "'"
    if implicit_key:
        return text
    return _fold(text, indent, "flow", at_start)[0]


def _quoted(value: str, indent: str, implicit_key: bool, at_start: int | None) -> str:
    if "'" in value and '"' not in value:
        return _double_quoted(value, indent, implicit_key, at_start)
    return _single_quoted(value, indent, implicit_key, at_start)


def _line_too_long(text: str, indent_length: int) -> bool:
    limit = LINE_WIDTH - indent_length
    if len(text) <= limit:
        return False
    start = 0
    for i, ch in enumerate(text):
        if ch == "\n":
            if i - start > limit:
                return True
            start = i + 1
            if len(text) - start <= limit:
                return False
    return True


def _block_scalar(value: str, indent: str, at_start: int | None) -> str:
    if re.search(r"\n[\t ]+\Z", value):
        return _quoted(value, indent, False, at_start)
    literal = not _line_too_long(value, len(indent))
    end_start = len(value)
    while end_start > 0 and value[end_start - 1] in "\n\t ":
        end_start -= 1
    end = value[end_start:]
    newline_at = end.find("\n")
    if newline_at == -1:
        chomp = "-"
    elif value == end or newline_at != len(end) - 1:
        chomp = "+"
    else:
        chomp = ""
    if end:
        value = value[: -len(end)]
        if end.endswith("\n"):
            end = end[:-1]
        end = re.sub(r"(?:^|(?<!\n))\n+(?!\n|\Z)", lambda m: m.group(0) + indent, end)
    starts_with_space = False
    start_end = 0
    start_newline = -1
    while start_end < len(value):
        ch = value[start_end]
        if ch == " ":
            starts_with_space = True
        elif ch == "\n":
            start_newline = start_end
        else:
            break
        start_end += 1
    start = value[: start_newline + 1 if start_newline < start_end else start_end]
    if start:
        value = value[len(start) :]
        start = re.sub(r"\n+", lambda m: m.group(0) + indent, start)
    header = ("2" if indent else "1") if starts_with_space else ""
    header += chomp
    if not literal:
        folded = re.sub(r"\n+", lambda m: "\n" + m.group(0), value)
        folded = re.sub(
            r"(?:^|\n)([\t ].*)(?:([\n\t ]*)\n(?![\n\t ]))?",
            lambda m: m.group(1) + (m.group(2) or ""),
            folded,
        )
        folded = re.sub(r"\n+", lambda m: m.group(0) + indent, folded)
        body, overflow = _fold(f"{start}{folded}{end}", indent, "block", len(indent))
        if not overflow:
            return f">{header}\n{indent}{body}"
    value = re.sub(r"\n+", lambda m: m.group(0) + indent, value)
    return f"|{header}\n{indent}{start}{value}{end}"


def _string(value: str, indent: str, implicit_key: bool, at_start: int | None) -> str:
    if _CONTROL.search(value):
        return _double_quoted(value, indent, implicit_key, at_start)
    if implicit_key and "\n" in value:
        return _quoted(value, indent, implicit_key, at_start)
    if _PLAIN_UNSAFE.search(value):
        if implicit_key or "\n" not in value:
            return _quoted(value, indent, implicit_key, at_start)
        return _block_scalar(value, indent, at_start)
    if not implicit_key and "\n" in value:
        return _block_scalar(value, indent, at_start)
    if _DOC_MARKER.search(value) and implicit_key and len(indent) == 2:
        return _quoted(value, indent, implicit_key, at_start)
    if _DOC_MARKER.search(value) and indent == "":
        raise MetadataError(f"cannot write {value!r} at the top level")
    if _resolves_as_non_string(value):
        return _quoted(value, indent, implicit_key, at_start)
    if implicit_key:
        return value
    return _fold(value, indent, "flow", at_start)[0]


def _js_number(value: float | int) -> str:
    """Number#toString, as JSON.stringify writes a JS number."""
    if isinstance(value, int) and abs(value) < 2**53:
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    _, digits_t, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    k = len(digits)
    n = int(exponent) + k
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text


def _scalar(
    value: Any, indent: str, implicit_key: bool = False, at_start: int | None = None
) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return _js_number(value)
    if isinstance(value, str):
        return _string(value, indent, implicit_key, at_start)
    raise MetadataError(f"cannot write a {type(value).__name__} value")


def _key(key: Any, indent: str) -> str:
    text = _scalar(str(key), indent, implicit_key=True)
    if len(text) > 1024:
        raise MetadataError("map keys longer than 1024 characters are not supported")
    return text


def _block(value: Any, indent: str) -> str:
    """A map or sequence whose lines start at `indent` (the first line without it)."""
    lines: list[str] = []
    if isinstance(value, dict):
        if not value:
            return "{}"
        for key in sorted(value, key=lambda k: _map_key_order(str(k))):
            child = value[key]
            key_text = _key(key, indent + "  ")
            lines.append(_pair(key_text, child, indent))
    else:
        if not value:
            return "[]"
        for item in value:
            lines.append("- " + _item(item, indent + "  "))
    return f"\n{indent}".join(lines)


def _pair(key_text: str, value: Any, indent: str) -> str:
    child_indent = indent + "  "
    if isinstance(value, dict | list):
        if not value:
            return f"{key_text}: {'{}' if isinstance(value, dict) else '[]'}"
        # Sequences are indented under their key (indentSeq), maps likewise.
        return f"{key_text}:\n{child_indent}{_block(value, child_indent)}"
    text = _scalar(value, child_indent, at_start=len(key_text) + 2)
    if text.startswith("\n"):
        return f"{key_text}:{text}"
    return f"{key_text}: {text}"


def _item(value: Any, item_indent: str) -> str:
    if isinstance(value, dict | list):
        if not value:
            return "{}" if isinstance(value, dict) else "[]"
        return _block(value, item_indent)
    return _scalar(value, item_indent)


def dump_yaml(value: Any) -> str:
    """The document `yaml.stringify(value, cliOptions)` returns (with its final newline)."""
    value = _without_undefined(value)
    if isinstance(value, dict | list):
        return _block(value, "") + "\n"
    return _scalar(value, "") + "\n"


# --------------------------------------------------------------------------------------------
# Schema inference: the rules of the CLI's inferSchema / argSigToJsonSchemaType.
# --------------------------------------------------------------------------------------------


class _Undefined:
    """A JS `undefined` property value: present while computing, absent once written."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

PRESERVED_FIELDS = (
    "description", "pattern", "min", "max", "currency", "currencyLocale", "multiselect",
    "customErrorMessage", "required", "showExpr", "password", "order", "dateFormat", "title",
    "placeholder",
)  # fmt: skip
ITEMS_PRESERVED_FIELDS = (
    "properties", "required", "additionalProperties", "enum", "resourceType", "contentEncoding",
    "description",
)  # fmt: skip


def _without_undefined(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_undefined(v) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, list):
        return [None if v is UNDEFINED else _without_undefined(v) for v in value]
    return value


def _get(obj: Any, key: str) -> Any:
    return obj.get(key, UNDEFINED) if isinstance(obj, dict) else UNDEFINED


def _nullish(value: Any) -> bool:
    return value is UNDEFINED or value is None


def _loose_ne(a: Any, b: Any) -> bool:
    return not (_nullish(a) and _nullish(b)) and a != b


def _kept_items(old: dict[str, Any]) -> dict[str, Any]:
    old_items = _get(old, "items")
    item_type = _get(old_items, "type")
    truthy = item_type is not UNDEFINED and bool(item_type)
    items: dict[str, Any] = {"type": item_type if truthy else "object"}
    if isinstance(old_items, dict):
        for field in ITEMS_PRESERVED_FIELDS:
            if _get(old_items, field) is not UNDEFINED:
                items[field] = old_items[field]
    return items


def _object_properties(props: list[dict[str, Any]], old_props: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for prop in props:
        key = prop["key"]
        if isinstance(old_props, dict) and key in old_props:
            properties[key] = old_props[key]
        else:
            properties[key] = {"description": "", "type": ""}
        arg_to_schema(prop["typ"], properties[key])
    return properties


def arg_to_schema(typ: Any, old: dict[str, Any]) -> None:
    """Update the property schema `old` in place for the parser type `typ`."""
    new: dict[str, Any] = {"type": ""}
    simple = {
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "email": {"type": "string", "format": "email"},
        "sql": {"type": "string", "format": "sql"},
        "yaml": {"type": "string", "format": "yaml"},
        "bytes": {"type": "string", "contentEncoding": "base64", "originalType": "bytes"},
        "datetime": {"type": "string", "format": "date-time"},
        "date": {"type": "string", "format": "date"},
    }
    if isinstance(typ, str) and typ in simple:
        new.update(simple[typ])
    elif isinstance(typ, dict) and "oneof" in typ:
        new["type"] = "object"
        if typ["oneof"]:
            variants = []
            for variant in typ["oneof"]:
                old_variant = next(
                    (o for o in _get(old, "oneOf") or [] if _get(o, "title") == variant["label"]),
                    UNDEFINED,
                )
                variants.append({
                    "type": "object",
                    "title": variant["label"],
                    "properties": _object_properties(
                        variant["properties"], _get(old_variant, "properties")
                    ),
                    "order": _get(old_variant, "order")
                    if not _nullish(_get(old_variant, "order")) else UNDEFINED,
                })  # fmt: skip
            new["oneOf"] = variants
    elif isinstance(typ, dict) and "object" in typ:
        new["type"] = "object"
        spec = typ["object"] or {}
        if spec.get("name"):
            new["format"] = f"resource-{spec['name']}"
        if spec.get("props") is not None:
            new["properties"] = _object_properties(spec["props"], _get(old, "properties"))
    elif isinstance(typ, dict) and "str" in typ:
        new["type"] = "string"
        if typ["str"] is not None:
            new["originalType"] = "enum"
            new["enum"] = typ["str"]
        elif _get(old, "originalType") == "string" and not _nullish(_get(old, "enum")):
            new["originalType"] = "string"
            new["enum"] = old["enum"]
        else:
            new["originalType"] = "string"
            new["enum"] = UNDEFINED
    elif isinstance(typ, dict) and "resource" in typ:
        new["type"] = "object"
        new["format"] = f"resource-{typ['resource']}"
    elif isinstance(typ, dict) and ("dynselect" in typ or "dynmultiselect" in typ):
        kind = "dynselect" if "dynselect" in typ else "dynmultiselect"
        new["type"] = "object"
        new["format"] = f"{kind}-{typ[kind]}"
    elif isinstance(typ, dict) and "list" in typ:
        new["type"] = "array"
        inner = typ["list"]
        if inner in ("int", "float"):
            new["items"] = {"type": "number"}
            new["originalType"] = "number[]"
        elif inner == "bytes":
            new["items"] = {"type": "string", "contentEncoding": "base64"}
            new["originalType"] = "bytes[]"
        elif isinstance(inner, dict) and "str" in inner and inner["str"] is not None:
            new["items"] = {"type": "string", "enum": inner["str"]}
            new["originalType"] = "enum[]"
        elif inner == "string" or (isinstance(inner, dict) and "str" in inner):
            new["items"] = {"type": "string", "enum": _get(_get(old, "items"), "enum")}
            new["originalType"] = "string[]"
        elif isinstance(inner, dict) and inner.get("resource"):
            new["items"] = {"type": "resource", "resourceType": inner["resource"]}
            new["originalType"] = "resource[]"
        elif isinstance(inner, dict) and inner.get("object"):
            spec = inner["object"]
            if spec.get("name"):
                new["format"] = f"resource-{spec['name']}"
            if spec.get("props"):
                new["items"] = {
                    "type": "object",
                    "properties": _object_properties(spec["props"], {}),
                }
            else:
                new["items"] = _kept_items(old)
            new["originalType"] = "record[]"
        else:
            new["items"] = _kept_items(old)
            new["originalType"] = "object[]"
    else:
        old_type = _get(old, "type")
        new["type"] = "object" if _nullish(old_type) else old_type

    for field in PRESERVED_FIELDS:
        if _get(old, field) is not UNDEFINED:
            new[field] = old[field]

    # Reconcile with what the property had (JS loose `!=`: null and undefined are equal).
    old_type, new_type = _get(old, "type"), new["type"]
    old_format, new_format = _get(old, "format"), _get(new, "format")
    if _loose_ne(old_type, new_type):
        pass  # keys of `old` that `new` lacks are kept; the others are overwritten below
    elif old_format in ("date", "date-time") and new_format == "string":
        new["format"] = old_format
    elif new_format == "date-time" and old_format == "date":
        new["format"] = "date"
    elif new_format in ("date", "date-time"):
        new["format"] = old_format
    elif _loose_ne(_get(_get(old, "items"), "type"), _get(_get(new, "items"), "type")):
        old.pop("items", None)
    elif old_type == "string" and not _nullish(old_format):
        new["format"] = old_format
    if (_loose_ne(old_type, new_type) or new_type != "string") and _nullish(_get(new, "format")):
        old["format"] = UNDEFINED
    old.update(new)


def _sorted_keys(obj: dict[str, Any]) -> dict[str, Any]:
    # The CLI re-creates each property with its keys in JS default sort order (code units).
    return {k: obj[k] for k in sorted(obj, key=lambda k: k.encode("utf-16-be"))}


def infer_schema(parsed: dict[str, Any], current: Any) -> dict[str, Any]:
    schema: dict[str, Any] = current if isinstance(current, dict) else {}
    schema["required"] = []
    old_properties = copy.deepcopy(schema.get("properties") or {})
    schema["properties"] = {}
    for arg in parsed["args"]:
        name = arg["name"]
        prop = old_properties.get(name)
        prop = _sorted_keys(prop) if isinstance(prop, dict) else {"description": "", "type": ""}
        arg_to_schema(arg["typ"], prop)
        otyp = arg.get("otyp")
        if isinstance(otyp, str) and "[" in otyp and "|" in otyp:
            prop["originalType"] = otyp
        prop["default"] = arg.get("default", UNDEFINED)
        schema["properties"][name] = prop
        if not arg.get("has_default") and name not in schema["required"]:
            schema["required"].append(name)
    return schema


def signature_order(schema: dict[str, Any], names: list[str]) -> list[str]:
    """Keep a hand-made order; drop parameters that are gone; append new ones in main() order."""
    existing = schema.get("order")
    kept = [n for n in existing if n in names] if isinstance(existing, list) else []
    return kept + [n for n in names if n not in kept]


def default_metadata() -> dict[str, Any]:
    return {
        "summary": "",
        "description": "",
        "lock": "",
        "kind": "script",
        "schema": {"$schema": SCHEMA_URL, "type": "object", "properties": {}, "required": []},
    }


def build_metadata(parsed: dict[str, Any], existing: dict[str, Any] | None, path: str) -> str:
    """The text of `<name>.script.yaml` for a script whose parser output is `parsed`."""
    if parsed.get("type") == "Invalid":
        raise MetadataError(f"{path}: Windmill's parser cannot read this file (syntax error?)")
    metadata = copy.deepcopy(existing) if isinstance(existing, dict) else default_metadata()
    schema = infer_schema(parsed, metadata.get("schema"))
    names = [arg["name"] for arg in parsed["args"]]
    if names:
        schema["order"] = signature_order(schema, names)
    elif isinstance(schema.get("order"), list):
        schema["order"] = []
    metadata["schema"] = schema
    if parsed.get("has_preprocessor"):
        metadata["has_preprocessor"] = True
    else:
        metadata.pop("has_preprocessor", None)
    metadata.pop("auto_kind", None)
    metadata.pop("no_main_func", None)
    if "lock" not in metadata:
        metadata["lock"] = ""
    return dump_yaml(metadata)


# --------------------------------------------------------------------------------------------
# Which files: every .py under f/ that wmill.yaml's includes take and its excludes leave.
# --------------------------------------------------------------------------------------------


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A minimatch-style glob: `**` spans folders, `*` and `?` stay within one."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:[^/]*/)*" if i == 0 or pattern[i - 1] == "/" else "[^/]*/"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}\\Z")


def sync_config(root: Path = ROOT) -> dict[str, Any]:
    path = root / "wmill.yaml"
    config = load_yaml(path.read_text(encoding="utf-8"), "wmill.yaml") if path.exists() else {}
    return config if isinstance(config, dict) else {}


def is_synced(rel_path: str, config: dict[str, Any]) -> bool:
    includes = config.get("includes") or ["f/**"]
    excludes = config.get("excludes") or []
    return any(glob_to_regex(p).match(rel_path) for p in includes) and not any(
        glob_to_regex(p).match(rel_path) for p in excludes
    )


def script_files(root: Path = ROOT) -> list[Path]:
    config = sync_config(root)
    found = []
    for path in sorted((root / "f").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel.split("/") or not is_synced(rel, config):
            continue
        if "." in path.stem:
            raise MetadataError(
                f"{rel}: Windmill cuts a script path at the first dot; rename the file"
            )
        found.append(path)
    return found


def metadata_path(script: Path) -> Path:
    return script.with_name(script.stem + ".script.yaml")


# --------------------------------------------------------------------------------------------
# Running the parser and writing the files.
# --------------------------------------------------------------------------------------------


def parse_scripts(paths: list[Path], root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """{relative path: windmill-parser-wasm-py output} for each script."""
    if not paths:
        return {}
    node = shutil.which("node")
    if node is None:
        raise MetadataError("node is not installed: Windmill's parser runs on Node.js (>= 18)")
    if not (TOOLS / "node_modules" / "windmill-parser-wasm-py").is_dir():
        raise MetadataError(
            "Windmill's parser is not installed: run `npm ci --prefix tests/windmill`"
        )
    rel = [p.relative_to(root).as_posix() for p in paths]
    done = subprocess.run(
        [node, str(WM_SIG), *rel], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise MetadataError(f"wm_sig.mjs failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def planned_files(root: Path = ROOT) -> dict[Path, str]:
    """{metadata file: the text it should have}."""
    scripts = script_files(root)
    parsed = parse_scripts(scripts, root)
    plan = {}
    for script in scripts:
        rel = script.relative_to(root).as_posix()
        target = metadata_path(script)
        existing = None
        if target.exists():
            existing = load_yaml(target.read_text(encoding="utf-8"), str(target.relative_to(root)))
        plan[target] = build_metadata(parsed[rel], existing, rel)
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file would change"
    )
    args = parser.parse_args(argv)
    try:
        plan = planned_files()
    except MetadataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for target, text in plan.items():
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        rel = target.relative_to(ROOT).as_posix()
        stale.append(rel)
        if not args.check:
            target.write_text(text, encoding="utf-8")
            print(f"{'updated' if current is not None else 'created'} {rel}")
    if args.check and stale:
        print("stale Windmill metadata (run .venv/bin/python scripts/generate_metadata.py):")
        for rel in stale:
            print(f"  {rel}")
        return 1
    if not stale:
        print(f"{len(plan)} metadata file(s) up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
