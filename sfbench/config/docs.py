"""One line of meaning per config key, read from the config dataclasses' own Google-style docstrings.

The ``Args:`` / ``Attributes:`` section of a schema class is the one source of what its keys mean:
``--help`` shows the first sentence of each entry, so a key documented once is explained everywhere.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

_SECTION = re.compile(r"^(Args|Attributes):\s*$")
_ENTRY = re.compile(r"^([A-Za-z_][\w, ]*?):\s+(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the first sentence of its entry in the docstring of ``cls`` or a base class defining it.

    ``a, b: ...`` documents both; a subclass documents only the fields it adds or redefines.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is not object and "__doc__" in vars(klass):
            docs |= _own_docs(klass)
    return docs


def _own_docs(cls: type) -> dict[str, str]:
    lines = inspect.cleandoc(vars(cls)["__doc__"] or "").splitlines()
    docs: dict[str, list[str]] = {}
    names: list[str] = []
    indent: int | None = None
    inside = False
    for line in lines:
        if _SECTION.match(line.strip()) and not line.startswith(" "):
            inside, indent, names = True, None, []
            continue
        if not inside:
            continue
        if line.strip() and not line.startswith(" "):
            inside = False  # the next section
            continue
        depth = len(line) - len(line.lstrip())
        entry = _ENTRY.match(line.strip())
        if entry and (indent is None or depth == indent):
            indent = depth
            names = [n.strip() for n in entry.group(1).split(",")]
            for n in names:
                docs[n] = [entry.group(2)]
        elif line.strip() and names:
            for n in names:
                docs[n].append(line.strip())
    return {name: _first_sentence(" ".join(text)) for name, text in docs.items()}


def _first_sentence(text: str) -> str:
    text = re.sub(r":\w+:`", "`", text).replace("``", "")
    text = re.sub(r"`~?([\w.]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    for match in re.finditer(r"(?<=[a-z0-9)\]])\.(\s|$)", text):
        if not text[: match.start()].endswith(("e.g", "i.e")):
            return text[: match.start() + 1]
    return text


def section_docs(sections: dict[str, Any]) -> dict[str, str]:
    """Dotted key -> meaning, for ``{section: schema class}`` (a class of None documents nothing)."""
    return {f"{section}.{name}": doc for section, cls in sections.items() if cls is not None
            for name, doc in field_docs(cls).items()}


_YAML_KEY = re.compile(r"^(\s*)([\w.-]+):(.*?)(?:\s+#\s*(.*))?$")


def yaml_comments(text: str, prefix: str = "") -> dict[str, str]:
    """Dotted key -> its trailing ``# comment`` in a config file: the meaning of keys no schema documents."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = _YAML_KEY.match(line)
        if not match or line.lstrip().startswith(("#", "-")):
            continue
        depth, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, key))
        if match.group(4):
            found[prefix + ".".join(k for _, k in stack)] = match.group(4).strip()
    return found
