"""``multipart/form-data`` bodies (RFC 7578) read into named fields.

The Bot API takes its parameters four ways: the query string,
``application/x-www-form-urlencoded``, ``application/json`` and ``multipart/form-data``
(core.telegram.org/bots/api, "Making requests"); clients send files, and some send every call,
as multipart. The stand-in and its contract check read them through this one parser.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

MULTIPART = "multipart/form-data"


class UnreadablePart(ValueError):
    """A text part that cannot be decoded as its charset (RFC 7578 §4.4) says, or as UTF-8."""


def multipart_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """Each part's ``name`` → its text (a file part, one with a ``filename``, stays bytes).

    ``content_type`` is the whole header, boundary included; the email package parses MIME
    multipart, which RFC 7578 builds on, so the boundary rules are the standard library's.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            fields[name] = data
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            fields[name] = data.decode(charset)
        except LookupError:  # a charset Python does not know: the part cannot be read as text
            raise UnreadablePart(f"part {name!r} declares the unknown charset {charset!r}") from None
        except UnicodeDecodeError as exc:
            raise UnreadablePart(f"part {name!r} is not valid {charset} (byte {exc.start})") from None
    return fields


ATTACH = "attach://"


def attached(fields: dict[str, Any], name: str) -> bytes | None:
    """The file a parameter names: its own file part, or the part ``attach://<part>`` points at
    (tdlib/telegram-bot-api, Client::get_webhook_certificate and get_input_file: clients such as
    aiogram upload every file under a random part name and pass ``attach://`` that name)."""
    value = fields.get(name)
    if isinstance(value, str) and value.startswith(ATTACH):
        value = fields.get(value[len(ATTACH) :])
    return value if isinstance(value, bytes) else None


def attachment_names(fields: dict[str, Any]) -> set[str]:
    """The parts that some ``attach://`` value points at: files, not parameters of their own."""
    return {v[len(ATTACH) :] for v in fields.values() if isinstance(v, str) and v.startswith(ATTACH)}
