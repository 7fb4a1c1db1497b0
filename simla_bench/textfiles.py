"""Reading text files (configs, annotations, predictions) as UTF-8, with one
line for a file that is not.

``read_text_file(path, what)`` and ``read_json_file(path, what)`` raise the
given :class:`~simla_bench.errors.UserError` subclass (``DataError`` unless
told otherwise) naming the file, the byte offset and the byte of a decode
error, or the line and column of a JSON error, instead of Python's
``UnicodeDecodeError`` traceback.  Core code and plugins (dataset readers)
share them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simla_bench.errors import DataError, UserError

#: the fix for a file in another encoding
UTF8_HINT = "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 IN > OUT)"


def decode_error(path: str | Path, what: str, exc: UnicodeDecodeError,
                 error: type[UserError] = DataError) -> UserError:
    """The one-line error for ``exc`` raised while decoding ``path``."""
    bad = exc.object[exc.start:exc.start + 1] if isinstance(exc.object, (bytes, bytearray)) else b""
    byte = f"byte 0x{bad[0]:02x} " if bad else ""
    return error(f"{what} {path} is not UTF-8 text: {byte}at byte offset {exc.start} ({exc.reason})",
                 hint=UTF8_HINT)


def read_text_file(path: str | Path, what: str = "file", error: type[UserError] = DataError) -> str:
    """The text of ``path`` decoded as UTF-8 (a leading BOM is dropped).

    A missing file, a folder, an unreadable file or bytes that are not UTF-8
    raise ``error`` in one line naming ``what`` and the path."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder, not a file", hint="give the file itself") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}", hint="check the path and its permissions") \
            from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise decode_error(path, what, exc, error) from None


def read_json_file(path: str | Path, what: str = "file", error: type[UserError] = DataError) -> Any:
    """The JSON value of ``path`` (UTF-8); a decode or syntax error is one line naming the place."""
    text = read_text_file(path, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    hint="fix or regenerate the file") from None
