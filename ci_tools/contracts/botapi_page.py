"""Telegram's Bot API page read into the shape of the vendored ``api.json``.

Telegram publishes no machine-readable description of the Bot API: its reference is the
HTML page https://core.telegram.org/bots/api. The first vendored copy came from a generator
(``PaulSonOfLars/telegram-bot-api-spec``) that scrapes that page, but its repository stopped
following the page at Bot API 10.1 (a person must merge each regeneration). Reading the page
here means the drift watch sees what Telegram publishes on the day it is published.

The reference part of the page is a flat run of elements inside ``div#dev_page_content``: an
``h4`` names a method (lowerCamelCase) or a type (UpperCamelCase), the ``p``s after it
describe it, a ``table`` lists its fields and a ``ul`` the types it may be; ``h3`` and ``hr``
end a section, and ``h4``s whose anchor holds a ``-`` are changelog dates, not entries. The
result keeps the generator's conventions (its spelling of ``types``, ``required`` read from
"Optional." in a type's field, ``returns`` read from the method's prose, ``subtypes`` and
``subtype_of``) so that a copy the generator made and one read here compare field by field:
``tests/contracts/test_botapi_page.py`` holds the two to that on the same 10.1 page.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from ci_tools.errors import RemoteError

PAGE_URL = "https://core.telegram.org/bots/api"
SITE = "https://core.telegram.org"
CORE_TYPES = frozenset({"String", "Boolean", "Integer", "Float"})
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})
# The page's own spellings of a type, as the generator normalises them.
SPELLINGS = {"Messages": "Message", "Float number": "Float", "Int": "Integer", "True": "Boolean", "Bool": "Boolean"}
TYPOGRAPHY = str.maketrans({"”": '"', "“": '"', "…": "...", "–": "-", "—": "-", "’": "'"})
NO_PUNCTUATION = str.maketrans("", "", string.punctuation)
NO_SUBTYPES = frozenset({"InputFile"})  # its list is about uploading, not about kinds of InputFile
# The header row each kind of field table has on the page: any other header means the layout
# changed, and reading the rows anyway would report every field removed (or none at all).
HEADERS = {
    "methods": ("Parameter", "Type", "Required", "Description"),
    "types": ("Field", "Type", "Description"),
}
# The paragraph after the newest changelog heading names the version ("Bot API 10.2").
VERSION = re.compile(r"Bot API \d+\.\d+")
CHANGED = "Telegram changed its page: update ci_tools/contracts/botapi_page.py"


@dataclass
class Element:
    """One HTML element: enough of a tree to walk the page's sections."""

    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)
    closed: bool = False  # its own end tag was read (a page cut off mid-transfer leaves it open)

    def elements(self) -> Iterator[Element]:
        return (c for c in self.children if isinstance(c, Element))

    def descendants(self) -> Iterator[Element]:
        for child in self.elements():
            yield child
            yield from child.descendants()

    def find(self, tag: str, **attrs: str) -> Element | None:
        return next(
            (e for e in self.descendants() if e.tag == tag and all(e.attrs.get(k) == v for k, v in attrs.items())),
            None,
        )

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        # An end tag closes the nearest open element of its name (and any left open inside it).
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                self.open[depth].closed = True
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)

    @property
    def whole(self) -> bool:
        """The page's ``</html>`` was read: it was not cut off on the way."""
        return any(e.tag == "html" and e.closed for e in self.root.elements())


def _tree(html: str) -> tuple[Element, bool]:
    """The page's tree, and whether the page is whole (its ``</html>`` was read)."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root, builder.whole


def _absolute(link: str, url: str) -> str:
    if link.startswith("#"):
        return url + link
    if link.startswith("/"):
        return SITE + link
    return link


def _rendered(node: Element | str, url: str) -> str:
    """The text a reader sees: emoji images as their alt text, line breaks kept, "»" links spelled out."""
    if isinstance(node, str):
        return node
    if node.tag == "img":
        return node.attrs.get("alt", "")
    if node.tag == "br":
        return "\n"
    if node.tag == "a" and "»" in (shown := node.text()):
        return shown.replace(" »", ": " + _absolute(node.attrs.get("href", ""), url))
    return "".join(_rendered(c, url) for c in node.children)


def prose(node: Element, url: str) -> list[str]:
    """A description as lines of plain text (what ``description`` holds in ``api.json``)."""
    text = re.sub(r"\s{2,}", lambda run: run.group()[-1], _rendered(node, url)).translate(TYPOGRAPHY)
    return [line.strip() for line in text.split("\n") if line.strip()]


def type_names(cell: str) -> list[str]:
    """``"Array of InputMediaAudio, InputMediaPhoto and InputMediaVideo"`` → one name per alternative."""
    cell = " ".join(cell.split())  # &nbsp; arrives as U+00A0: any run of white space is one space
    prefix = "Array of " if cell.startswith("Array of ") else ""
    names = [cell.removeprefix(prefix)]
    for separator in (" or ", " and ", ", "):
        names = [part.strip() for name in names for part in name.split(separator)]
    return [prefix + SPELLINGS.get(name, name) for name in names]


def returns(description: list[str]) -> list[str] | None:
    """What a method returns, read from its prose ("On success, the sent Message is returned.")."""
    text = "\n".join(description)
    found = (
        re.search(r".*on success,([^.]*)", text, re.IGNORECASE)
        or re.search(r".*returns([^.]*)(?:on success)?", text, re.IGNORECASE)
        or re.search(r".*([^.]*)is returned", text, re.IGNORECASE)
    )
    if found is None:
        return None
    phrase = found.group(1).strip()
    if array := re.search(r"(?:array of )+(\w*)", phrase, re.IGNORECASE):
        return [f"Array of {name}" for name in type_names(array.group(1))]
    return [name for word in phrase.split() if word[0].isupper() for name in type_names(word.translate(NO_PUNCTUATION))]


def _check_header(kind: str, name: str, table: Element, where: str) -> None:
    header = tuple(" ".join(th.text().split()) for th in table.descendants() if th.tag == "th")
    if header != HEADERS[kind]:
        raise RemoteError(
            f"{where}: the table of {name} has the columns {list(header)}, not {list(HEADERS[kind])}",
            hint=CHANGED,
        )


def _fields(kind: str, table: Element, url: str) -> list[dict[str, Any]]:
    body = table.find("tbody") or table
    fields: list[dict[str, Any]] = []
    for row in (r for r in body.descendants() if r.tag == "tr"):
        cells = [c for c in row.elements() if c.tag == "td"]
        if kind == "types" and len(cells) == 3:
            description = " ".join(prose(cells[2], url))
            required = not description.startswith("Optional. ")
        elif kind == "methods" and len(cells) == 4:
            description = " ".join(prose(cells[3], url))
            required = cells[2].text() == "Yes"
        else:
            continue  # a header row (th), or a table that is not a field list
        name, types = cells[0].text(), type_names(cells[1].text())
        fields.append({"name": name, "types": types, "required": required, "description": description})
    return fields


def _content(html: str, where: str) -> Element:
    root, whole = _tree(html)
    content = root.find("div", id="dev_page_content")
    if content is None:
        raise RemoteError(
            f"{where} is not the Bot API reference (no div#dev_page_content)",
            hint="check the address; if Telegram changed its page, update ci_tools/contracts/botapi_page.py",
        )
    if not (whole and content.closed):
        # Read as it is, everything after the cut would be reported as removed.
        raise RemoteError(
            f"{where} is truncated (the page does not end with </html>): it was cut off on the way",
            hint="fetch it again; a proxy or a dropped connection may have cut it",
        )
    return content


def _subtypes_from_prose(name: str, entry: dict[str, Any]) -> list[str]:
    """A field-less type whose prose says "it can be either a String, an Array of RichText, or any of ..."."""
    description = "".join(entry.get("description", []))
    said = re.search(r"it can be either (.*?), or any of the following types:", description, re.IGNORECASE)
    if said is None:
        return []
    named = (re.search(r"(?:a|an)\s+(?:(\w*\s+of\s+\w*)|(\w*))", part.strip()) for part in said.group(1).split(","))
    return [m.group(1) or m.group(2) for m in named if m]


def _link_subtypes(types: dict[str, dict[str, Any]]) -> None:
    """Give each field-less type its ``subtypes`` and each of those a ``subtype_of``."""
    for name, entry in types.items():
        if entry.get("fields") or "href" not in entry:
            continue
        if from_prose := _subtypes_from_prose(name, entry):
            entry["subtypes"] = from_prose + entry.get("subtypes", [])
        for subtype in entry.get("subtypes", []):
            if subtype.removeprefix("Array of ") not in CORE_TYPES | {name} and subtype in types:
                types[subtype].setdefault("subtype_of", []).append(name)


def parse(html: str, url: str = PAGE_URL, *, read_from: str | None = None) -> dict[str, Any]:
    """The page as ``{version, release_date, changelog, methods, types}``, like the generator's ``api.json``.

    ``url`` is the page's own address, which the links in the result are made from;
    ``read_from`` is where this copy was read (a saved copy), for the error messages.
    """
    where = read_from or url
    content = _content(html, where)
    top = list(content.elements())
    release = next((e for e in top if e.tag == "h4"), None)
    anchor = release.find("a") if release else None
    if release is None or anchor is None:
        raise RemoteError(f"{where} names no Bot API version (no release heading before the reference)", hint=CHANGED)
    after = top[top.index(release) + 1 :]
    version = after[0].text().strip() if after and after[0].tag == "p" else ""
    if not VERSION.fullmatch(version):
        # Read anyway, the next paragraph ("Rich Messages") would be named as the version.
        raise RemoteError(
            f"{where} names no Bot API version: the paragraph after {release.text()!r} is not 'Bot API N.N'",
            hint=CHANGED,
        )
    spec: dict[str, Any] = {
        "version": version,
        "release_date": release.text(),
        "changelog": url + anchor.attrs.get("href", ""),
        "methods": {},
        "types": {},
    }
    entry: dict[str, Any] | None = None
    kind = ""
    for element in top:
        if element.tag in ("h3", "hr"):
            entry = None
        elif element.tag == "h4":
            entry = None
            link = element.find("a")
            if link is None or "-" in link.attrs.get("name", "-"):
                continue  # a date in the changelog, or a heading that names no method or type
            name = element.text()
            kind = "types" if name[:1].isupper() else "methods"
            entry = spec[kind][name] = {"name": name}
            if link.attrs.get("href"):
                entry["href"] = url + link.attrs["href"]
        elif entry is None:
            continue
        elif element.tag == "p":
            entry.setdefault("description", []).extend(prose(element, url))
        elif element.tag == "table":
            _check_header(kind, entry["name"], element, where)
            entry["fields"] = _fields(kind, element, url)
        elif element.find("table") is not None:
            # A wrapper (Bootstrap's div.table-responsive, say): skipping it would drop the fields.
            raise RemoteError(
                f"{where}: the table of {entry['name']} is inside a <{element.tag}>, not among the entry's elements",
                hint=CHANGED,
            )
        elif element.tag == "ul" and entry["name"] not in NO_SUBTYPES:
            items = [line for li in element.descendants() if li.tag == "li" for line in prose(li, url)]
            if kind == "types":
                entry["subtypes"] = items
            entry.setdefault("description", []).extend(f"- {item}" for item in items)
    for method in spec["methods"].values():
        if (found := returns(method.get("description", []))) is not None:
            method["returns"] = found
    _link_subtypes(spec["types"])
    if not spec["methods"] or not spec["types"]:
        raise RemoteError(
            f"{where} lists no Bot API methods or types",
            hint=CHANGED,
        )
    return spec


def dumps(spec: dict[str, Any]) -> bytes:
    """The form ``specs/telegram-api.json`` is vendored in: stable, so its sha256 names one page."""
    return (json.dumps(spec, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
