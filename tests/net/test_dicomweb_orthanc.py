"""DICOMweb against real Orthanc with its DICOMweb plugin, behind HTTP basic auth, on loopback.

Search at all levels, retrieve a multi-series study (CT, JPEG 2000 and JPEG-LS MR, SR, PDF, GSPS) byte for
byte in its pixel data, send it back with STOW-RS, cancel mid-retrieve, and the plain-language failures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.support.net import free_port
from tests.support.orthanc_dicomweb import DicomWebPeer, orthanc_dicomweb
from tests.support.peers import make_study, storescu_exact
from viewer.core.store import StudyStore
from viewer.net import dicomweb
from viewer.net.dicomweb import DicomWebError

pytestmark = pytest.mark.network


@dataclass
class WebStudy:
    study_uid: str
    files: list[Path]  # every object of the multi-series study
    by_uid: dict[str, Path]
    series: dict[str, str]  # series UID -> modality


def _restamp(src: Path | str, dst: Path, study_uid: str, series_uid: str, number: int) -> Path:
    ds = pydicom.dcmread(src)
    ds.PatientName, ds.PatientID = "DOE^JANE", "PID001"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDate, ds.AccessionNumber, ds.StudyDescription = "20240115", "ACC001", "CT CHEST"
    ds.SeriesNumber, ds.InstanceNumber = number, 1
    ds.save_as(dst, enforce_file_format=True)
    return dst


def make_web_study(folder: Path) -> WebStudy:
    from tests.documents.conftest import make_pdf, wrap_pdf
    from tests.documents.sr_samples import basic_text
    from viewer.render.gsps_writer import GspsContent, build_gsps

    ct = make_study(folder / "ct", series_counts=(3,))
    files = list(ct.files)
    series = dict.fromkeys(ct.series, "CT")
    for number, name in enumerate(("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"), start=2):
        uid = generate_uid()
        files.append(_restamp(get_testdata_file(name), folder / f"mr{number}.dcm", ct.study_uid, uid, number))
        series[uid] = "MR"
    sr = basic_text()
    sr_path = folder / "sr.dcm"
    sr.save_as(sr_path, enforce_file_format=True)
    uid = generate_uid()
    files.append(_restamp(sr_path, folder / "sr-restamped.dcm", ct.study_uid, uid, 5))
    series[uid] = "SR"
    pdf = wrap_pdf(make_pdf(folder / "report.pdf", ["Lightbox report"]), folder / "pdf.dcm", "Report")
    uid = generate_uid()
    files.append(_restamp(pdf, folder / "pdf-restamped.dcm", ct.study_uid, uid, 6))
    series[uid] = "DOC"
    header = pydicom.dcmread(ct.files[0], stop_before_pixels=True)
    gsps = build_gsps([header], GspsContent(items=[], window_center=40, window_width=400, label="WEB"))
    gsps_path = folder / "gsps.dcm"
    gsps.save_as(gsps_path, enforce_file_format=True)
    files.append(gsps_path)
    series[str(gsps.SeriesInstanceUID)] = "PR"
    by_uid = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    return WebStudy(ct.study_uid, files, by_uid, series)


@dataclass
class WebArchive:
    peer: DicomWebPeer
    study: WebStudy
    utf8_study_uid: str
    old_study_uid: str


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebArchive]:
    root = tmp_path_factory.mktemp("dicomweb")
    study = make_web_study(root / "study")
    utf8 = make_study(
        root / "utf8",
        patient_name="Müller^Jürgen",
        patient_id="PID003",
        study_date="20220505",
        description="Schädel",
        series_counts=(2,),
        charset="ISO_IR 192",
    )
    old = make_study(
        root / "old",
        patient_name="ROE^RICHARD",
        patient_id="PID002",
        study_date="20190301",
        modality="MR",
        series_counts=(1,),
        description="MR HEAD",
        accession="ACC002",
    )
    with orthanc_dicomweb(root / "orthanc") as peer:
        storescu_exact(peer.ae_title, peer.port, study.files + utf8.files + old.files, root)
        yield WebArchive(peer, study, utf8.study_uid, old.study_uid)


# ---------------------------------------------------------------------------- search
def test_search_studies_wildcards_dates_modality_and_names(web: WebArchive) -> None:
    node = web.peer.web_node()
    found = dicomweb.search(node, "STUDY", {"PatientName": "DOE*"})
    assert [m.get("StudyInstanceUID") for m in found] == [web.study.study_uid]
    assert found[0].count("NumberOfStudyRelatedInstances") == len(web.study.files)
    assert found[0].get("AccessionNumber") == "ACC001"
    dated = dicomweb.search(node, "STUDY", {"StudyDate": "20220101-20221231"})
    assert [m.get("StudyInstanceUID") for m in dated] == [web.utf8_study_uid]
    assert dated[0].get("PatientName") == "Müller^Jürgen"
    # Orthanc's DICOMweb plugin 1.7 matches no non-ASCII character in a QIDO key (its own /tools/find does),
    # so the name is found by its ASCII part; what comes back is the UTF-8 name, decoded.
    named = dicomweb.search(node, "STUDY", {"PatientName": "*ller*"})
    assert [(m.get("StudyInstanceUID"), m.get("PatientName")) for m in named] == [(web.utf8_study_uid, "Müller^Jürgen")]
    series = dicomweb.search(node, "SERIES", {"StudyInstanceUID": web.utf8_study_uid})
    assert len(series) == 1
    by_modality = dicomweb.search(node, "STUDY", {"ModalitiesInStudy": "MR"})
    assert {m.get("StudyInstanceUID") for m in by_modality} == {web.study.study_uid, web.old_study_uid}
    single_char = dicomweb.search(node, "STUDY", {"PatientID": "PID00?"})
    assert len(single_char) == 3


def test_search_paging(web: WebArchive) -> None:
    node = web.peer.web_node()
    everything = {m.get("StudyInstanceUID") for m in dicomweb.search(node, "STUDY", {})}
    pages = [dicomweb.search(node, "STUDY", {}, limit=2, offset=offset) for offset in (0, 2)]
    assert [len(p) for p in pages] == [2, 1]
    assert {m.get("StudyInstanceUID") for p in pages for m in p} == everything


def test_search_series_and_instances(web: WebArchive) -> None:
    node = web.peer.web_node()
    series = dicomweb.search(node, "SERIES", {"StudyInstanceUID": web.study.study_uid})
    assert {m.get("SeriesInstanceUID"): m.get("Modality") for m in series} == web.study.series
    mr = dicomweb.search(node, "SERIES", {"StudyInstanceUID": web.study.study_uid, "Modality": "MR"})
    assert len(mr) == 2
    ct_series = next(uid for uid, modality in web.study.series.items() if modality == "CT")
    images = dicomweb.search(node, "IMAGE", {"StudyInstanceUID": web.study.study_uid, "SeriesInstanceUID": ct_series})
    assert len(images) == 3
    assert {m.get("SOPInstanceUID") for m in images} <= set(web.study.by_uid)
    anywhere = dicomweb.search(node, "IMAGE", {"SOPInstanceUID": images[0].get("SOPInstanceUID")})
    assert [m.get("SeriesInstanceUID") for m in anywhere] == [ct_series]
    fuzzy = dicomweb.search(node, "STUDY", {"PatientName": "doe*"}, fuzzy=True)
    assert web.study.study_uid in {m.get("StudyInstanceUID") for m in fuzzy}


# ---------------------------------------------------------------------------- retrieve and send
def _pixels(path: Path | str) -> bytes | None:
    ds = pydicom.dcmread(path)
    for keyword in ("PixelData", "EncapsulatedDocument"):
        if keyword in ds:
            return bytes(ds[keyword].value)
    return None


def test_retrieve_study_byte_identical_then_stow_back(web: WebArchive, tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    seen: list[int] = []
    result = dicomweb.retrieve(
        web.peer.web_node(),
        "STUDY",
        {"StudyInstanceUID": web.study.study_uid},
        store,
        progress=lambda p: seen.append(p.done),
    )
    assert (result.received, result.failed, result.total) == (len(web.study.files), 0, len(web.study.files))
    assert seen[-1] == len(web.study.files)
    stored = store.instances_for_study(web.study.study_uid)
    assert {i.sop_instance_uid for i in stored} == set(web.study.by_uid)
    for instance in stored:
        original = web.study.by_uid[instance.sop_instance_uid]
        assert instance.transfer_syntax == str(
            pydicom.dcmread(original, stop_before_pixels=True).file_meta.TransferSyntaxUID
        )
        assert _pixels(instance.path) == _pixels(original)
    syntaxes = {i.transfer_syntax for i in stored}
    assert {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80"} <= syntaxes  # compressed MR stayed compressed

    # Series and instance level into a second store.
    other = StudyStore(tmp_path / "other")
    mr_series = next(uid for uid, modality in web.study.series.items() if modality == "MR")
    series_result = dicomweb.retrieve(
        web.peer.web_node(),
        "SERIES",
        {"StudyInstanceUID": web.study.study_uid, "SeriesInstanceUID": mr_series},
        other,
    )
    assert series_result.received == 1
    one = next(i for i in stored if i.series_uid != mr_series)  # not already in `other`
    image_result = dicomweb.retrieve(
        web.peer.web_node(),
        "IMAGE",
        {
            "StudyInstanceUID": one.study_uid,
            "SeriesInstanceUID": one.series_uid,
            "SOPInstanceUID": one.sop_instance_uid,
        },
        other,
    )
    assert image_result.received == 1 and other.instance(one.sop_instance_uid) is not None

    # STOW-RS into a second Orthanc, then read it back from there.
    with orthanc_dicomweb(tmp_path / "second", ae_title="SECOND") as second:
        sent = dicomweb.send(second.web_node(), stored)
        assert (sent.sent, sent.failed) == (len(stored), [])
        assert second.instance_count() == len(stored)
        back = StudyStore(tmp_path / "back")
        again = dicomweb.retrieve(second.web_node(), "STUDY", {"StudyInstanceUID": web.study.study_uid}, back)
        assert again.received == len(stored)
        for instance in back.instances_for_study(web.study.study_uid):
            assert _pixels(instance.path) == _pixels(web.study.by_uid[instance.sop_instance_uid])


def test_cancel_mid_retrieve_leaves_only_whole_instances(web: WebArchive, tmp_path: Path) -> None:
    store = StudyStore(tmp_path / "store")
    cancel = threading.Event()
    arrived = 0

    def after_each(_event: object) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            cancel.set()

    store.subscribe(after_each)
    result = dicomweb.retrieve(
        web.peer.web_node(), "STUDY", {"StudyInstanceUID": web.study.study_uid}, store, cancel=cancel
    )
    assert result.cancelled
    assert result.received == 2 < len(web.study.files)
    assert len(store.instances_for_study(web.study.study_uid)) == 2
    assert store.integrity_problems() == []
    assert list(store.tmp_dir.iterdir()) == []  # no half-written temp file


# ---------------------------------------------------------------------------- connection test
def test_connection_test_messages(web: WebArchive) -> None:
    peer = web.peer
    assert dicomweb.test_connection(peer.web_node()).startswith("Connected")

    with pytest.raises(DicomWebError) as wrong_password:
        dicomweb.test_connection(peer.web_node(password="not-it"))
    assert wrong_password.value.kind == "unauthorized"
    assert "user name or password" in str(wrong_password.value)

    with pytest.raises(DicomWebError) as wrong_url:
        dicomweb.test_connection(peer.web_node(base_url=f"http://127.0.0.1:{peer.http_port}/dicomweb"))
    assert wrong_url.value.kind == "not_found"
    assert "check the base URL" in str(wrong_url.value)

    with pytest.raises(DicomWebError) as server_root:  # Orthanc's REST API, not its DICOMweb root
        dicomweb.test_connection(peer.web_node(base_url=f"http://127.0.0.1:{peer.http_port}"))
    assert server_root.value.kind == "not_dicomweb"
    assert "check the base URL" in str(server_root.value)

    with pytest.raises(DicomWebError) as refused:
        dicomweb.test_connection(peer.web_node(base_url=f"http://127.0.0.1:{free_port()}/dicom-web"))
    assert refused.value.kind == "refused"
    assert "Nothing accepts connections" in str(refused.value)

    with pytest.raises(DicomWebError) as dns:
        dicomweb.test_connection(peer.web_node(base_url="http://no-such-archive.invalid/dicom-web"))
    assert dns.value.kind == "dns"
    assert "could not be found" in str(dns.value)

    with pytest.raises(DicomWebError) as tls:
        dicomweb.test_connection(peer.web_node(base_url=f"https://127.0.0.1:{peer.http_port}/dicom-web"))
    assert tls.value.kind == "tls"

    with pytest.raises(DicomWebError) as wrong_password_on_search:
        dicomweb.search(peer.web_node(password="nope"), "STUDY", {})
    assert wrong_password_on_search.value.kind == "unauthorized"


# ---------------------------------------------------------------------------- view without importing
def test_view_without_import_fetches_displayed_first_then_keep_or_discard(web: WebArchive, tmp_path: Path) -> None:
    node = web.peer.web_node()
    ct_series = next(uid for uid, modality in web.study.series.items() if modality == "CT")
    fetcher = dicomweb.OrderedFetcher(node, web.study.study_uid, ct_series, scratch=tmp_path, workers=1)
    order: list[int] = []
    fetcher.subscribe(lambda index, _uid: order.append(index))
    assert len(fetcher.load_metadata()) == 3
    fetcher.start(first=2)
    assert fetcher.wait_all(timeout=30)
    assert order == [2, 1, 0]  # the displayed one, then outwards
    assert _pixels(fetcher.path_of(2)) == _pixels(web.study.by_uid[fetcher.instances[2].get("SOPInstanceUID")])
    store = StudyStore(tmp_path / "kept")
    assert fetcher.keep(store) == 3
    assert len(store.instances_for_series(ct_series)) == 3
    assert not fetcher.folder.exists()

    # Cold start on the number the viewer opens on: that image arrives before the order of the rest is known.
    discarded = dicomweb.OrderedFetcher(node, web.study.study_uid, ct_series, scratch=tmp_path)
    discarded.start(first_number=2)
    first = discarded.wait_first(timeout=30)
    assert first is not None
    assert pydicom.dcmread(first, stop_before_pixels=True).InstanceNumber == 2
    assert discarded.wait_all(timeout=30)
    assert discarded.fetched == 3
    discarded.discard()
    assert not discarded.folder.exists()
