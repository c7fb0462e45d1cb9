"""DICOMweb client (PS3.18): QIDO-RS search, WADO-RS retrieve into the store, STOW-RS send, connection test.

Built on `dicomweb-client` (over `requests`): its session, retries, query encoding and multipart codec.
Retrieve takes the library's streaming multipart decoder at the level of raw parts rather than its
`iter_*` methods, which parse every part into a pydicom Dataset: the store wants the bytes as the archive
holds them (checked by `viewer.core.ingest`, hashed as they are), and parsing then re-encoding each
instance would cost more than the transfer and would not keep the file byte for byte. Memory stays at
one instance plus one chunk whatever the size of the study.

API
- `DicomWebError(message, kind)`: every failure, its message written for the user.
- `test_connection(node) -> str`: one small QIDO search; raises `DicomWebError` that says what is wrong.
- `search(node, level, keys, *, limit, offset, fuzzy) -> list[QueryMatch]`: the C-FIND query model of
  `viewer.net.scu` (levels STUDY / SERIES / IMAGE, keys by keyword, `*`/`?` wildcards, date ranges).
- `retrieve(node, level, keys, store, *, progress, cancel) -> WebRetrieveResult`: WADO-RS study, series or
  instance into the store; `cancel` (threading.Event or CancelToken) stops between instances.
- `send(node, instances, *, progress, cancel) -> SendResult`: STOW-RS of stored instances, in bounded batches.
- `OrderedFetcher`: view without importing (instances of one series fetched displayed frame first, then
  outwards, into a temporary store that can be kept or discarded).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import requests
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.uri import build_query_string
from pydicom.datadict import keyword_for_tag

from viewer.core import ingest
from viewer.core.settings import DicomWebNode
from viewer.core.store import AddStatus, StudyStore
from viewer.core.tasks import Progress, ProgressCallback
from viewer.core.uids import uid_problem
from viewer.net.scu import RETURN_KEYS, KeyValue, QueryMatch, is_cancelled

log = logging.getLogger(__name__)

LEVELS = ("STUDY", "SERIES", "IMAGE")
# Multipart chunks read from the socket: large enough to keep the parser's overhead low, small enough to
# keep memory flat and a cancel prompt.
CHUNK_BYTES = 1 << 20
# STOW-RS requests are built in memory by the library; these bound one request.
STOW_BATCH_INSTANCES = 50
STOW_BATCH_BYTES = 64 << 20
PROGRESS_INTERVAL_S = 0.1


# ---------------------------------------------------------------------------- errors
class DicomWebError(Exception):
    """A DICOMweb failure; str() is the plain-language message, `kind` a stable name for tests and the UI."""

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and exceptions carried in args (urllib3 wraps them so)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        for nxt in (item.__cause__, item.__context__, getattr(item, "reason", None), *item.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def explain(exc: BaseException, node: DicomWebNode, what: str = "the archive") -> DicomWebError:
    """Map a requests / HTTP failure to what the user can check or fix."""
    if isinstance(exc, DicomWebError):
        return exc
    parsed = urlparse(node.base_url)
    host = parsed.hostname or node.base_url
    where = f"{host}:{parsed.port}" if parsed.port else host
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return DicomWebError(
                f"{node.name or host} refused the {'token' if node.auth == 'bearer' else 'user name or password'}"
                " (HTTP 401): check the credentials in Settings.",
                "unauthorized",
                status,
            )
        if status == 403:
            return DicomWebError(
                f"{node.name or host} accepted the login but does not allow this account to use {what} (HTTP 403).",
                "forbidden",
                status,
            )
        if status == 404:
            return DicomWebError(
                f"No DICOMweb service answers at {node.base_url} (HTTP 404): check the base URL. It is the service"
                " root, e.g. http://host:8042/dicom-web for Orthanc or …/aets/AETITLE/rs for dcm4chee.",
                "not_found",
                status,
            )
        if status in (400, 406, 415):
            return DicomWebError(
                f"{node.name or host} did not accept the request (HTTP {status}); the server may not support this"
                " search key, media type or transfer syntax.",
                "bad_request",
                status,
            )
        return DicomWebError(f"{node.name or host} answered with an error (HTTP {status}).", "http_error", status)
    chain = list(_chain(exc))
    if any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError" for e in chain):
        return DicomWebError(
            f"The server name {host} could not be found (DNS): check the spelling of the address and the network.",
            "dns",
        )
    if isinstance(exc, requests.exceptions.SSLError) or any(isinstance(e, ssl.SSLError) for e in chain):
        detail = " ".join(str(e) for e in chain if isinstance(e, ssl.SSLError))
        if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate" in detail.lower():
            return DicomWebError(
                f"The certificate of {where} is not trusted (TLS): set the CA bundle that signed it in Settings,"
                " or check that the address names the server the certificate was issued for.",
                "tls",
            )
        return DicomWebError(
            f"A secure (TLS) connection to {where} failed: the server may not speak HTTPS on that port"
            " (try http://), or the two sides share no protocol version.",
            "tls",
        )
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return DicomWebError(
            f"Nothing accepts connections at {where}: check the port in the base URL and that the server is running.",
            "refused",
        )
    if isinstance(exc, requests.Timeout):
        return DicomWebError(
            f"{where} did not answer in time: the server may be overloaded, or a firewall drops the connection.",
            "timeout",
        )
    if isinstance(exc, requests.ConnectionError):
        return DicomWebError(f"The connection to {where} failed or was cut off: check the network.", "connection")
    if isinstance(exc, ValueError):
        return DicomWebError(f"{node.base_url!r} is not a valid DICOMweb address ({exc}).", "bad_url")
    return DicomWebError(f"The DICOMweb request to {where} failed: {exc}", "other")


# ---------------------------------------------------------------------------- client
class _Client(DICOMwebClient):
    """The library's client with two raw-bytes entry points (see the module docstring for why)."""

    def _http_get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        # QIDO wildcards go out as the literal "*" and "?" (both legal in a query, RFC 3986 3.4): Orthanc 1.10
        # takes a percent-encoded "%2A" for a literal character and then matches nothing.
        query = build_query_string(params).replace("%2A", "*").replace("%3F", "?")
        return super()._http_get(url + query, params=None, headers=headers, stream=stream)

    def iter_parts(self, path: str, accept: str) -> Iterator[bytearray]:
        """Stream a multipart/related WADO-RS answer part by part (each part: one Part 10 file)."""
        response = self._http_get(self.base_url + path, headers={"Accept": accept}, stream=True)
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("application/dicom"):  # a single part sent bare (seen in the wild)
            with response:
                yield bytearray(response.content)
            return
        yield from self._decode_multipart_message(response, stream=True)  # type: ignore[misc]

    def post_parts(self, path: str, parts: Sequence[bytes]) -> Any:
        """One STOW-RS request of encoded Part 10 files; the server's answer as a Dataset."""
        return self._http_post_multipart_application_dicom(self.base_url + path, parts)


def open_client(node: DicomWebNode) -> _Client:
    session = requests.Session()
    if node.auth == "basic":
        # RFC 7617: user and password as UTF-8 (requests would use Latin-1 for str).
        session.auth = (node.username.encode("utf-8"), node.password.encode("utf-8"))
    elif node.auth == "bearer":
        session.headers["Authorization"] = f"Bearer {node.token.strip()}"
    session.verify = node.ca_bundle or True
    try:
        client = _Client(
            node.base_url.rstrip("/"),
            session=session,
            chunk_size=CHUNK_BYTES,
            timeout=(node.connect_timeout_s, node.read_timeout_s),
        )
    except ValueError as exc:
        raise explain(exc, node) from None
    # Retry what a busy server says to retry (429/503/504), but not for minutes.
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=250)
    return client


def test_connection(node: DicomWebNode) -> str:
    """One QIDO-RS study search with limit=1; a short success note, or `DicomWebError` that explains."""
    if not node.base_url.strip():
        raise DicomWebError("No base URL is set for this node.", "bad_url")
    scheme = urlparse(node.base_url).scheme
    if scheme not in ("http", "https"):
        raise DicomWebError(f"The base URL must start with http:// or https:// (not {scheme or 'nothing'}).", "bad_url")
    client = open_client(node)
    started = time.monotonic()
    try:
        response = client._session.get(
            client.base_url + "/studies",
            params={"limit": "1"},
            headers={"Accept": "application/dicom+json, application/json"},
            timeout=(node.connect_timeout_s, node.read_timeout_s),
        )
        response.raise_for_status()
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
            # DICOM JSON is an array of objects keyed by tag (PS3.18 F.2). Orthanc's own REST API at the server
            # root answers /studies too, with a list of its IDs: the usual "forgot /dicom-web" mistake.
            is_dicom_json = isinstance(body, dict) or (
                isinstance(body, list) and all(isinstance(item, dict) for item in body)
            )
            if not is_dicom_json:
                raise DicomWebError(
                    f"{node.base_url} answers, but not as a DICOMweb service (no DICOM JSON): check the base URL"
                    " (for Orthanc it ends in /dicom-web).",
                    "not_dicomweb",
                )
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (400, 405, 406):
            # Every QIDO-RS service takes a bare study search with a limit; a refusal means something else
            # answers at this address (Orthanc's REST API at its root says 400 to it).
            raise DicomWebError(
                f"{node.base_url} answers, but not as a DICOMweb service (HTTP {status}): check the base URL"
                " (for Orthanc it ends in /dicom-web).",
                "not_dicomweb",
                status,
            ) from None
        raise explain(exc, node, "search") from None
    except requests.RequestException as exc:
        raise explain(exc, node, "search") from None
    finally:
        client._session.close()
    return f"Connected: QIDO-RS search answered in {1000 * (time.monotonic() - started):.0f} ms."


# ---------------------------------------------------------------------------- QIDO-RS
def _json_value(element: Mapping[str, Any]) -> str:
    values = element.get("Value") or []
    texts: list[str] = []
    for value in values:
        if isinstance(value, dict):
            texts.append(str(value.get("Alphabetic", "")))  # PN (PS3.18 F.2.2)
        elif isinstance(value, float) and value.is_integer():
            texts.append(str(int(value)))
        else:
            texts.append(str(value))
    return "\\".join(texts)


def match_from_json(level: str, item: Mapping[str, Any]) -> QueryMatch:
    values: dict[str, str] = {}
    for tag, element in item.items():
        try:
            keyword = keyword_for_tag(int(tag, 16))
        except ValueError:
            continue
        if keyword and isinstance(element, Mapping) and element.get("vr") != "SQ":
            values[keyword] = _json_value(element)
    return QueryMatch(level, values)


def _filters(keys: Mapping[str, KeyValue]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for keyword, value in keys.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else "\\".join(value)  # a list of UIDs (PS3.18 8.3.4.1)
        if text:
            filters[keyword] = text.replace("\\", ",") if keyword.endswith("UID") else text
    return filters


def search(
    node: DicomWebNode,
    level: str,
    keys: Mapping[str, KeyValue],
    *,
    limit: int | None = None,
    offset: int | None = None,
    fuzzy: bool | None = None,
    return_keys: Sequence[str] | None = None,
) -> list[QueryMatch]:
    """QIDO-RS at STUDY, SERIES or IMAGE level with the keys of a C-FIND (see `viewer.net.scu.find`).

    `limit`/`offset` page through large answers (PS3.18 8.3.4.4); `fuzzy` asks for fuzzy matching of
    person names where the server offers it (None: the node's setting). `return_keys` (default: those of
    our C-FIND) are asked for with `includefield`; fewer is faster where the server must open files for them.
    """
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"DICOMweb searches studies, series and instances, not {level.lower()}s")
    filters = _filters(keys)
    fields = [k for k in (RETURN_KEYS[level] if return_keys is None else return_keys) if k not in filters]
    client = open_client(node)
    fuzzymatching = node.fuzzy_matching if fuzzy is None else fuzzy
    common = {"fuzzymatching": fuzzymatching or None, "limit": limit, "offset": offset, "fields": fields}
    try:
        if level == "STUDY":
            results = client.search_for_studies(search_filters=filters, **common)
        elif level == "SERIES":
            study = filters.pop("StudyInstanceUID", None)
            results = client.search_for_series(study_instance_uid=study, search_filters=filters, **common)
        else:
            study = filters.pop("StudyInstanceUID", None)
            series = filters.pop("SeriesInstanceUID", None) if study else None
            results = client.search_for_instances(
                study_instance_uid=study, series_instance_uid=series, search_filters=filters, **common
            )
    except requests.RequestException as exc:
        raise explain(exc, node, "search") from None
    finally:
        client._session.close()
    return [match_from_json(level, item) for item in results]


# ---------------------------------------------------------------------------- WADO-RS
@dataclass
class WebRetrieveResult:
    total: int = 0
    received: int = 0  # new in the store
    duplicates: int = 0  # already there with the same bytes (or kept copy)
    failed: int = 0  # refused by ingest (not DICOM, bad UIDs, patient conflict…)
    cancelled: bool = False
    bytes_received: int = 0
    sop_instance_uids: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.received + self.duplicates + self.failed

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.failed == 0


def _retrieve_path(level: str, keys: Mapping[str, KeyValue]) -> str:
    names = {"STUDY": ("StudyInstanceUID",), "SERIES": ("StudyInstanceUID", "SeriesInstanceUID")}
    names["IMAGE"] = (*names["SERIES"], "SOPInstanceUID")
    parts = {"StudyInstanceUID": "studies", "SeriesInstanceUID": "series", "SOPInstanceUID": "instances"}
    path = ""
    for name in names[level]:
        uid = keys.get(name)
        if not isinstance(uid, str) or uid_problem(uid):
            raise ValueError(f"a {level.lower()} retrieve needs a valid {name}")
        path += f"/{parts[name]}/{quote(uid, safe='')}"
    return path


def accept_header(node: DicomWebNode) -> str:
    # PS3.18 8.7.3.5.2: "*" asks for the transfer syntax the archive holds, so nothing is transcoded and the
    # pixel data arrive as stored. Without it the server must send Explicit VR Little Endian.
    syntax = "*" if node.any_transfer_syntax else "1.2.840.10008.1.2.1"
    return f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'


def expected_count(node: DicomWebNode, level: str, keys: Mapping[str, KeyValue]) -> int:
    """How many instances a retrieve will bring (0 when the archive does not say)."""
    if level == "IMAGE":
        return 1
    keyword = "NumberOfStudyRelatedInstances" if level == "STUDY" else "NumberOfSeriesRelatedInstances"
    unique = {k: keys[k] for k in ("StudyInstanceUID", "SeriesInstanceUID") if keys.get(k)}
    try:
        matches = search(node, level, unique)
    except (DicomWebError, ValueError) as exc:
        log.info("no instance count for the retrieve: %s", exc)
        return 0
    return sum(m.count(keyword) or 0 for m in matches)


def retrieve(
    node: DicomWebNode,
    level: str,
    keys: Mapping[str, KeyValue],
    store: StudyStore,
    *,
    progress: ProgressCallback | None = None,
    cancel: object | None = None,
    total: int | None = None,
) -> WebRetrieveResult:
    """WADO-RS retrieve of a study, series or instance into `store`, streamed one instance at a time.

    Each instance goes through `viewer.core.ingest` and the store's own add (written whole or not at all),
    as instances a Storage SCP receives do; a cancel stops before the next one and leaves every stored
    instance complete. `total` (e.g. from the search row) saves the counting request.
    """
    level = level.upper()
    path = _retrieve_path(level, keys)
    result = WebRetrieveResult(total=expected_count(node, level, keys) if total is None else total)
    started = last = time.monotonic()
    client = open_client(node)
    source = f"dicomweb:{node.name or urlparse(node.base_url).hostname}"[:200]
    parts = client.iter_parts(path, accept_header(node))
    try:
        for part in parts:
            if is_cancelled(cancel):
                result.cancelled = True
                break
            result.bytes_received += len(part)
            _store_part(store, part, source, result)
            now = time.monotonic()
            if progress is not None and now - last >= PROGRESS_INTERVAL_S:
                last = now
                progress(Progress(result.done, max(result.total, result.done), started, "retrieving"))
        else:
            result.cancelled = is_cancelled(cancel)
    except requests.RequestException as exc:
        raise explain(exc, node, "retrieve") from None
    finally:
        with contextlib.suppress(Exception):
            parts.close()  # closes the response: a cancel does not read the rest of the study
        client._session.close()
        # The same group sync the Storage SCP relies on: one filesystem sync for the whole retrieve.
        store.sync_pending()
        store.release_spare_files()  # a finished retrieve leaves no temp files behind, as a stopped SCP
    if progress is not None:
        progress(Progress(result.done, max(result.total, result.done), started, "done"))
    return result


def _store_part(store: StudyStore, part: bytearray, source: str, result: WebRetrieveResult) -> None:
    try:
        checked = ingest.check_part10(part, max_bytes=store.max_object_bytes)
        added = store.add_checked(checked, part, source=source, sync=False)
    except ingest.Refused as exc:
        result.failed += 1
        log.warning("a retrieved instance was refused: %s", type(exc).__name__)
        return
    if added.status in (AddStatus.ADDED, AddStatus.REPLACED):
        result.received += 1
    else:
        result.duplicates += 1
    result.sop_instance_uids.append(checked.entry.instance.sop_instance_uid)


# ---------------------------------------------------------------------------- STOW-RS
@dataclass
class SendResult:
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # SOP Instance UIDs the server refused
    cancelled: bool = False


def send(
    node: DicomWebNode,
    instances: Iterable[Any],
    *,
    progress: ProgressCallback | None = None,
    cancel: object | None = None,
) -> SendResult:
    """STOW-RS of stored instances (`viewer.core.model.Instance`, read from their stored files as they are).

    Requests are cut at `STOW_BATCH_INSTANCES` instances or `STOW_BATCH_BYTES`, as the library builds each
    in memory. Per-instance refusals come back in the answer's Failed SOP Sequence (PS3.18 10.5.3).
    """
    todo = list(instances)
    result = SendResult()
    started = time.monotonic()
    client = open_client(node)
    try:
        batch: list[bytes] = []
        batch_uids: list[str] = []
        size = 0
        for index, instance in enumerate(todo):
            if is_cancelled(cancel):
                result.cancelled = True
                break
            data = Path(instance.path).read_bytes()
            batch.append(data)
            batch_uids.append(instance.sop_instance_uid)
            size += len(data)
            if len(batch) >= STOW_BATCH_INSTANCES or size >= STOW_BATCH_BYTES or index == len(todo) - 1:
                _post(client, node, batch, batch_uids, result)
                batch, batch_uids, size = [], [], 0
                if progress is not None:
                    progress(Progress(result.sent + len(result.failed), len(todo), started, "sending"))
    finally:
        client._session.close()
    return result


def _post(client: _Client, node: DicomWebNode, parts: list[bytes], uids: list[str], result: SendResult) -> None:
    try:
        answer = client.post_parts("/studies", parts)
    except requests.RequestException as exc:
        if isinstance(exc, requests.HTTPError) and exc.response is not None and exc.response.status_code == 409:
            result.failed.extend(uids)  # 409: none of the batch was stored
            return
        raise explain(exc, node, "sending") from None
    refused = {str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("FailedSOPSequence", [])}
    result.failed.extend(u for u in uids if u in refused)
    result.sent += sum(1 for u in uids if u not in refused)


# ---------------------------------------------------------------------------- view without importing
def _sort_key(match: QueryMatch) -> tuple[int, str]:
    number = match.count("InstanceNumber")
    return (number if number is not None else 1 << 30, match.get("SOPInstanceUID"))


def neighbour_order(count: int, first: int) -> list[int]:
    """Indices from `first` outwards (first, first+1, first-1, first+2, …): what the user scrolls to next."""
    order = [first]
    for step in range(1, count):
        for index in (first + step, first - step):
            if 0 <= index < count:
                order.append(index)
    return order


class OrderedFetcher:
    """Fetch one series for viewing before (or without) importing it.

    The image on screen comes first: with `first_number` (the Instance Number the viewer opens on, known
    from the series row) a one-match QIDO-RS search finds it and it is fetched at once, while the instance
    metadata of the whole series (UIDs and numbers, sorted) loads beside it; then its neighbours outwards,
    a few at once, each into a temporary store under `scratch`. `focus(index)` re-orders what is still to
    fetch when the user scrolls. `keep(store)` copies what was fetched into the real store through its
    ordinary add; `discard()` deletes the temporary area. Listeners get `(index, sop_instance_uid)` from a
    worker thread as each instance lands (index -1 for the early first image, before the order is known).
    """

    def __init__(
        self,
        node: DicomWebNode,
        study_uid: str,
        series_uid: str,
        *,
        scratch: Path | None = None,
        workers: int = 4,
    ) -> None:
        self.node = node
        self.study_uid = study_uid
        self.series_uid = series_uid
        self.folder = Path(tempfile.mkdtemp(prefix="lightbox-view-", dir=scratch))
        self.store = StudyStore(self.folder / "store", durable=False)
        self.instances: list[QueryMatch] = []
        self.first_uid: str | None = None
        # The sorted index of the image the viewer opens on; set once the order is known.
        self._first_index: int | None = None
        self.error: DicomWebError | None = None
        self._workers = max(1, workers)
        self._lock = threading.Condition()
        self._pending: list[int] = []
        self._planned = False
        self._fetched: dict[int, str] = {}
        self._failed: dict[int, str] = {}
        self._fetched_uids: set[str] = set()
        self._cancel = threading.Event()
        self._listeners: list[Callable[[int, str], None]] = []
        self._pool: ThreadPoolExecutor | None = None

    # --- setup
    def load_metadata(self) -> list[QueryMatch]:
        # Only what orders the stack: Rows/Columns would make some archives (Orthanc) open every file first.
        keys = {"StudyInstanceUID": self.study_uid, "SeriesInstanceUID": self.series_uid}
        matches = search(self.node, "IMAGE", keys, return_keys=("SOPInstanceUID", "InstanceNumber"))
        self.instances = sorted(matches, key=_sort_key)
        return self.instances

    def subscribe(self, listener: Callable[[int, str], None]) -> None:
        self._listeners.append(listener)

    def start(self, first: int = 0, *, first_number: int | None = None) -> None:
        """Begin fetching: the instance numbered `first_number` (else sorted index `first`), then outwards."""
        self._pool = ThreadPoolExecutor(self._workers + 1, thread_name_prefix="dicomweb-view")
        if first_number is not None and not self.instances:
            self._pool.submit(self._fetch_by_number, first_number)
        self._pool.submit(self._plan, first, first_number)

    def _plan(self, first: int, first_number: int | None) -> None:
        try:
            if not self.instances:
                self.load_metadata()
        except DicomWebError as exc:
            with self._lock:
                self.error = exc
                self._planned = True
                self._lock.notify_all()
            return
        if first_number is not None:
            numbers = [m.count("InstanceNumber") for m in self.instances]
            first = numbers.index(first_number) if first_number in numbers else len(self.instances) // 2
        first = min(max(first, 0), max(len(self.instances) - 1, 0))
        with self._lock:
            for index, match in enumerate(self.instances):
                if match.get("SOPInstanceUID") in self._fetched_uids:
                    self._fetched[index] = match.get("SOPInstanceUID")
            self._pending = [i for i in neighbour_order(len(self.instances), first) if i not in self._fetched]
            self._first_index = first
            if self.first_uid is None and first in self._fetched:
                self.first_uid = self._fetched[first]
            self._planned = True
            self._lock.notify_all()
        assert self._pool is not None
        for _ in range(self._workers):
            self._pool.submit(self._work)

    def _fetch_by_number(self, number: int) -> None:
        keys = {"StudyInstanceUID": self.study_uid, "SeriesInstanceUID": self.series_uid, "InstanceNumber": str(number)}
        try:
            matches = search(self.node, "IMAGE", keys, return_keys=("SOPInstanceUID", "InstanceNumber"))
        except DicomWebError as exc:
            log.info("first image lookup failed: %s", exc.kind)
            return
        if matches:
            self._fetch_one(-1, matches[0].get("SOPInstanceUID"), open_client(self.node), close=True)

    def focus(self, index: int) -> None:
        """The user now looks at `index`: fetch it (if still missing) next, then its neighbours."""
        with self._lock:
            waiting = set(self._pending)
            self._pending = [i for i in neighbour_order(len(self.instances), index) if i in waiting]

    # --- state
    def path_of(self, index: int) -> str | None:
        uid = self._fetched.get(index)
        return self.path_of_uid(uid) if uid else None

    def path_of_uid(self, uid: str) -> str | None:
        instance = self.store.instance(uid)
        return instance.path if instance else None

    def _wait(self, done: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not done():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def wait_first(self, timeout: float | None = None) -> str | None:
        """The path of the first image to show, once it is here (None on timeout or failure)."""
        self._wait(lambda: self.first_uid is not None or self.error is not None or self._all_settled(), timeout)
        with self._lock:
            # When the wanted image could not be fetched, show whatever came instead of nothing.
            uid = self.first_uid or next(iter(self._fetched.values()), None)
        return self.path_of_uid(uid) if uid else None

    def wait_for(self, index: int, timeout: float | None = None) -> bool:
        self._wait(lambda: index in self._fetched or index in self._failed or self.error is not None, timeout)
        return index in self._fetched

    def _all_settled(self) -> bool:
        return self._planned and len(self._fetched) + len(self._failed) >= len(self.instances)

    def wait_all(self, timeout: float | None = None) -> bool:
        return self._wait(lambda: self.error is not None or self._all_settled(), timeout) and not self._failed

    @property
    def fetched(self) -> int:
        return len(self._fetched_uids)

    # --- work
    def _work(self) -> None:
        client = open_client(self.node)
        try:
            while not self._cancel.is_set():
                with self._lock:
                    if not self._pending:
                        return
                    index = self._pending.pop(0)
                self._fetch_one(index, self.instances[index].get("SOPInstanceUID"), client)
        finally:
            client._session.close()

    def _fetch_one(self, index: int, sop_uid: str, client: _Client, *, close: bool = False) -> None:
        keys = {"StudyInstanceUID": self.study_uid, "SeriesInstanceUID": self.series_uid, "SOPInstanceUID": sop_uid}
        outcome = WebRetrieveResult()
        try:
            for part in client.iter_parts(_retrieve_path("IMAGE", keys), accept_header(self.node)):
                _store_part(self.store, part, "dicomweb-view", outcome)
        except (requests.RequestException, ValueError) as exc:
            log.warning("viewing fetch failed: %s", explain(exc, self.node, "retrieve").kind)
        finally:
            if close:
                client._session.close()
        with self._lock:
            if outcome.sop_instance_uids:
                self._fetched_uids.add(sop_uid)
                if index >= 0:
                    self._fetched[index] = sop_uid
                # Only the image the viewer opens on counts as first: with several workers a neighbour
                # can land before it.
                if self.first_uid is None and (index == -1 or index == self._first_index):
                    self.first_uid = sop_uid
            elif index >= 0:
                self._failed[index] = sop_uid
            self._lock.notify_all()
        if outcome.sop_instance_uids:
            for listener in list(self._listeners):
                try:
                    listener(index, sop_uid)
                except Exception:
                    log.exception("fetch listener failed")

    def stop(self) -> None:
        self._cancel.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # --- outcome
    def keep(self, store: StudyStore, *, source: str = "dicomweb:viewed") -> int:
        """Import what was fetched into `store` (its ordinary add, so every check applies); returns how many."""
        self.stop()
        kept = 0
        with store.batch():
            for instance in self.store.instances_for_series(self.series_uid):
                store.add_file(instance.path, source=source)
                kept += 1
        self.discard()
        return kept

    def discard(self) -> None:
        self.stop()
        with contextlib.suppress(Exception):
            self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)
