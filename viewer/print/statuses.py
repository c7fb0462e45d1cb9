"""Print Management DIMSE statuses and printer status information, in words a technologist understands."""

from __future__ import annotations

import re

SUCCESS, WARNING, FAILURE = "success", "warning", "failure"

# PS3.4 Annex H and PS3.7 C statuses an imager returns, with what they mean for the film.
PRINT_STATUSES: dict[int, tuple[str, str]] = {
    0x0000: (SUCCESS, "Done."),
    0x0001: (WARNING, "The printer ignored some optional attributes it does not support."),
    0x0107: (WARNING, "The printer ignored some attributes it did not recognise (attribute list error)."),
    0x0116: (WARNING, "A value was out of the printer's range; the printer used the nearest value it supports."),
    0xB600: (WARNING, "The printer does not support memory allocation for the film session; it went on without it."),
    0xB601: (WARNING, "The printer cannot print a whole film session at once (collation); films print one by one."),
    0xB602: (WARNING, "The film session contains no images, so an empty page was printed."),
    0xB603: (WARNING, "The film contains no images, so an empty film was printed."),
    0xB604: (WARNING, "An image was larger than its image box; the printer shrank (demagnified) it to fit."),
    0xB605: (
        WARNING,
        "The requested minimum or maximum density is outside the printer's range; the printer used its own "
        "limit instead, so contrast may differ from what was asked for.",
    ),
    0xB609: (WARNING, "An image was larger than its image box; the printer cropped it, so its edges are missing."),
    0xB60A: (
        WARNING,
        "An image (or the composed page) was larger than its image box; the printer decimated it to fit, "
        "which loses fine detail.",
    ),
    0x0105: (FAILURE, "The printer does not support an attribute we sent (no such attribute)."),
    0x0106: (
        FAILURE,
        "The printer refused a value we sent (invalid attribute value), e.g. a film size, layout, medium or "
        "density it does not offer. Check the printer's settings against what it supports.",
    ),
    0x0110: (FAILURE, "The printer failed while processing the request."),
    0x0111: (FAILURE, "The printer already has an object with this identifier (duplicate SOP instance)."),
    0x0112: (FAILURE, "The printer no longer knows the film session, film or image box we referred to."),
    0x0114: (FAILURE, "The printer does not accept the print request's argument (no such argument)."),
    0x0115: (FAILURE, "The printer refused the print request's argument value."),
    0x0117: (FAILURE, "The printer says the object we referred to is invalid."),
    0x0118: (FAILURE, "The printer does not support this kind of print object (no such SOP class)."),
    0x0119: (FAILURE, "The object we referred to is of a different kind than the printer expected."),
    0x0120: (FAILURE, "A required attribute was missing from our request."),
    0x0121: (FAILURE, "A required attribute had no value in our request."),
    0x0122: (FAILURE, "The printer does not support this SOP class."),
    0x0123: (FAILURE, "The printer does not support this print action."),
    0x0124: (FAILURE, "The printer refused: we are not authorised to print there."),
    0x0210: (FAILURE, "The printer saw the same request twice (duplicate invocation)."),
    0x0211: (FAILURE, "The printer did not recognise the operation."),
    0x0212: (FAILURE, "The printer received a malformed request (mistyped argument)."),
    0x0213: (FAILURE, "The printer ran out of resources (resource limitation); try again later or with fewer films."),
    0xC600: (FAILURE, "The film session contains no films, so there was nothing to print."),
    0xC601: (FAILURE, "The printer's queue is full; it could not accept the film session. Try again later."),
    0xC602: (FAILURE, "The printer's queue is full; it could not accept the film. Try again later."),
    0xC603: (FAILURE, "An image is larger than its image box and the printer will not shrink or crop it."),
    0xC604: (FAILURE, "Two images were assigned to the same image box position."),
    0xC605: (FAILURE, "The printer does not have enough memory to store the image. Use fewer or smaller images."),
    0xC613: (FAILURE, "The composed print image is larger than the image box and the printer will not shrink it."),
    0xC616: (
        FAILURE,
        "A previous film has not been printed yet and the printer cannot print a whole session, so it refused "
        "to create another film.",
    ),
}


def status_category(code: int) -> str:
    if code in PRINT_STATUSES:
        return PRINT_STATUSES[code][0]
    if code == 0x0000:
        return SUCCESS
    if code in (0x0001, 0x0107, 0x0116) or 0xB000 <= code <= 0xBFFF:
        return WARNING
    return FAILURE


def explain_status(code: int) -> str:
    """Plain-language meaning of a DIMSE status code from a printer, always naming the code."""
    if code in PRINT_STATUSES:
        return f"{PRINT_STATUSES[code][1]} (status 0x{code:04X})"
    if 0xB000 <= code <= 0xBFFF:
        return f"The printer reported a warning it does not explain (status 0x{code:04X})."
    if 0xA700 <= code <= 0xA7FF:
        return f"The printer is out of resources (status 0x{code:04X}); try again later."
    return f"The printer reported a failure it does not explain (status 0x{code:04X})."


# Printer Status Info (2110,0020) defined terms, PS3.3 C.13.9.1.
PRINTER_STATUS_INFO: dict[str, str] = {
    "NORMAL": "The printer is working normally.",
    "BAD RECEIVE MGZ": "The receive magazine is not working.",
    "BAD SUPPLY MGZ": "The supply magazine is not working.",
    "CALIBRATING": "The printer is calibrating; films will print when it is done.",
    "CALIBRATION ERR": "The printer's calibration failed; ask service to recalibrate it.",
    "CHECK CHEMISTRY": "The processor's chemistry needs checking.",
    "CHECK SORTER": "The film sorter needs checking.",
    "CHEMICALS EMPTY": "The processor is out of chemicals.",
    "CHEMICALS LOW": "The processor's chemicals are running low.",
    "COVER OPEN": "A cover of the printer is open.",
    "ELEC CONFIG ERR": "The printer's electronics are misconfigured.",
    "ELEC DOWN": "The printer's electronics are down.",
    "ELEC SW ERROR": "The printer's software failed.",
    "EMPTY": "The printer is out of film.",
    "EXPOSURE FAILURE": "The printer could not expose the film.",
    "FILM JAM": "Film is jammed in the printer.",
    "FILM TRANSP ERR": "The printer's film transport failed.",
    "FINISHER EMPTY": "The finisher is empty.",
    "FINISHER ERROR": "The finisher is not working.",
    "FINISHER LOW": "The finisher is running low.",
    "LOW": "The printer is running low on film.",
    "NO RECEIVE MGZ": "There is no receive magazine in the printer.",
    "NO RIBBON": "There is no ribbon in the printer.",
    "NO SUPPLY MGZ": "There is no supply magazine in the printer.",
    "PRINTER BUSY": "The printer is busy; films will wait in its queue.",
    "PRINTER DOWN": "The printer is down.",
    "PRINTER INIT": "The printer is starting up.",
    "PRINTER OFFLINE": "The printer is off-line.",
    "PROC DOWN": "The film processor is down.",
    "PROC INIT": "The film processor is starting up.",
    "PROC OVERFLOW FL": "The processor's chemicals need filling (overflow).",
    "PROC OVERFLOW HI": "The processor's chemical level is too high (overflow).",
    "QUEUE FULL": "The printer's queue is full.",
    "RECEIVER FULL": "The output tray (receive magazine) is full; empty it.",
    "REQ MED NOT INST": "The requested film or paper is not installed.",
    "REQ MED NOT AVAI": "The requested film or paper is not available.",
    "RIBBON ERROR": "The printer's ribbon has a problem.",
    "SUPPLY EMPTY": "The printer's supply is empty.",
    "SUPPLY LOW": "The printer's supply is running low.",
    "TONER EMPTY": "The printer is out of toner.",
    "TONER LOW": "The printer's toner is running low.",
    "WARMING UP": "The printer is warming up; films will print shortly.",
    "UNKNOWN": "The printer's state is unknown.",
}


def explain_printer_status(status: str, info: str = "") -> str:
    """E.g. ('WARNING', 'LOW 14X17 BLUE') → 'Printer warning: running low on 14x17 in blue film (LOW 14X17 BLUE).'"""
    state = (status or "UNKNOWN").strip().upper()
    code = (info or "").strip().upper()
    prefix = {"NORMAL": "Printer ready", "WARNING": "Printer warning", "FAILURE": "Printer failure"}.get(
        state, f"Printer status {state}"
    )
    if not code or code == state:
        return prefix + "."
    match = re.fullmatch(r"(EMPTY|LOW)\s+(\d+X\d+)(?:\s+(BLUE|CLR|PAPR|CLEAR|PAPER))?", code)
    if match:
        media = {"BLUE": "blue film", "CLR": "clear film", "CLEAR": "clear film", "PAPR": "paper", "PAPER": "paper"}
        what = media.get(match.group(3) or "", "film")
        size = match.group(2).lower() + " in"
        verb = "out of" if match.group(1) == "EMPTY" else "running low on"
        return f"{prefix}: {verb} {size} {what} ({code})."
    meaning = PRINTER_STATUS_INFO.get(code)
    if meaning:
        return f"{prefix}: {meaning} ({code})"
    return f"{prefix}: {code}."


# Event Type IDs of N-EVENT-REPORTs from the printer (Printer SOP class and Print Job SOP class).
PRINTER_EVENTS = {1: "NORMAL", 2: "WARNING", 3: "FAILURE"}
PRINT_JOB_EVENTS = {1: "PENDING", 2: "PRINTING", 3: "DONE", 4: "FAILURE"}
