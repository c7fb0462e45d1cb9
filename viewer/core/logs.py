"""Logging hygiene: no patient data in ordinary logs (no Qt).

pydicom explains a bad element by quoting its value (``Invalid value for VR UI: '2.25.1\\x00...Smith^John'``);
with a corrupted length that value runs on over the following elements, so a warning about a UID quotes
the patient's name, ID and birth date. Any sender can cause that on purpose, and the text goes to stderr
and to whatever log file the process writes. The audit trail is the place for patient identity; ordinary
logs get the warning's kind and wording without the quoted values.

API:
    install()              idempotent; every record of the ``pydicom`` loggers and every Python warning
                           (routed to the ``py.warnings`` logger) has its quoted values replaced by <…>
    configure(verbose)     start-up logging for a process entry (CLI, GUI): basicConfig plus install()
    redact(text)           the text with quoted literals ('…', "…", b'…') replaced
    safe_name(name)        a file name (str or bytes) as one printable line, for reports
    one_line(text)         any text (a reason, a note) with control characters escaped
"""

from __future__ import annotations

import logging
import os
import re
import threading

REDACTED = "<…>"
# Loggers whose messages may quote element values (pydicom's own and its pixel decoders').
_REDACTED_LOGGERS = ("pydicom", "py.warnings")
# A Python repr of a str or bytes value: what pydicom's messages quote. Escapes inside are skipped so an
# escaped quote does not end the literal early.
_QUOTED = re.compile(r"""[bB]?'(?:[^'\\]|\\.)*'|[bB]?"(?:[^"\\]|\\.)*\"""", re.DOTALL)
_lock = threading.Lock()
_installed = False


def redact(text: str) -> str:
    """Replace every quoted literal; an unbalanced quote hides everything after it (it may open a value)."""
    out = _QUOTED.sub(REDACTED, text)
    cut = min((i for i in (out.find("'"), out.find('"')) if i >= 0), default=-1)
    # A lone apostrophe in prose ("can't") costs the rest of one message line; a leak would cost more.
    return out if cut < 0 else out[:cut] + REDACTED


def _redacts(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in _REDACTED_LOGGERS)


def install() -> None:
    """Route Python warnings through logging and redact pydicom's records, for the whole process."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        # A record factory, not a handler filter: it runs once per record before any handler sees it,
        # so handlers added later (a log file, pytest's capture, a GUI log view) all get the redacted text.
        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)  # type: ignore[arg-type]
            if _redacts(record.name):
                try:
                    message = record.getMessage()
                except Exception:  # a malformed format: say so rather than guess at the arguments
                    message = str(record.msg)
                record.msg = redact(message)
                record.args = None
            return record

        logging.setLogRecordFactory(factory)
        # pydicom's warn_and_log() also raises a UserWarning with the same text, which Python prints to
        # stderr itself; captured, it becomes a `py.warnings` record and is redacted like the rest.
        logging.captureWarnings(True)
        _installed = True


def configure(verbose: bool = False) -> None:
    """Logging for a process entry: level and format on stderr, with patient values kept out."""
    install()
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pydicom's debug output dumps element values byte by byte; it stays at WARNING even with -v.
    logging.getLogger("pydicom").setLevel(logging.WARNING)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")


def safe_name(name: str | bytes | os.PathLike[str]) -> str:
    """A name that prints on one line and says what it is: control characters and backslashes escaped
    (a newline shows as \\n), bytes that are not UTF-8 (kept by Python as surrogates) as \\xNN."""
    text = os.fsdecode(name) if isinstance(name, bytes) else os.fspath(name)
    if _CONTROL.search(text) is None and not _has_surrogates(text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        elif _CONTROL.match(ch):
            out.append(ch.encode("unicode_escape").decode("ascii") if ch != "\\" else "\\\\")
        else:
            out.append(ch)
    return "".join(out)


_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Text for one line of a report: control characters escaped (already escaped names are left as they are)."""
    if _LINE_BREAKING.search(text) is None and not _has_surrogates(text):
        return text
    return "".join(
        f"\\x{ord(ch) - 0xDC00:02x}"
        if 0xDC80 <= ord(ch) <= 0xDCFF
        else ch.encode("unicode_escape").decode("ascii")
        if _LINE_BREAKING.match(ch) or 0xD800 <= ord(ch) <= 0xDFFF
        else ch
        for ch in text
    )


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
