"""Mutated data sets sent over the network to our Storage SCP: every C-STORE answered, the store stays sound."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE

from tests.reliability.corpus import mutated, seeds
from tests.support.net import free_port, wait_for_port
from viewer.core.settings import LocalNode
from viewer.core.store import StudyStore

pytestmark = pytest.mark.network

SUCCESS_OR_WARNING = {0x0000, 0xB000, 0xB006, 0xB007}
OUTCOMES: dict[str, int] = {"stored": 0, "refused": 0}


@pytest.fixture(scope="module")
def scp(tmp_path_factory: pytest.TempPathFactory):
    scp_module = pytest.importorskip("viewer.net.scp")
    from pynetdicom import _config

    # Send each file's data set bytes as they are (chunked from the file), never decoded and re-encoded here.
    chunked, _config.STORE_SEND_CHUNKED_DATASET = _config.STORE_SEND_CHUNKED_DATASET, True
    store = StudyStore(tmp_path_factory.mktemp("fuzz-scp-store"), durable=False)
    port = free_port()
    local = LocalNode(ae_title="LIGHTBOX", port=port, bind_address="127.0.0.1", dimse_timeout_s=10, acse_timeout_s=10)
    server = scp_module.StorageServer(store, local)
    server.start()
    wait_for_port(port)
    contexts = set()
    for data in seeds():
        with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
            fh.write(data)
            fh.flush()
            meta = pydicom.dcmread(fh.name, stop_before_pixels=True).file_meta
        contexts.add((str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)))
    yield server, store, port, sorted(contexts)
    # The mutations must reach both answers, or the fuzzing proves little.
    assert OUTCOMES["stored"] and OUTCOMES["refused"], OUTCOMES
    _config.STORE_SEND_CHUNKED_DATASET = chunked
    server.stop()
    assert store.integrity_problems() == []
    assert list(store.tmp_dir.iterdir()) == []
    store.close()


@pytest.mark.timeout(150)
@settings(
    max_examples=60,
    deadline=15000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=mutated(spare_meta=True))
def test_scp_answers_every_mutated_data_set(scp, data: bytes) -> None:
    _server, store, port, contexts = scp
    ae = AE("FUZZER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for abstract, syntax in contexts:
        ae.add_requested_context(abstract, syntax)
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(data)
        fh.flush()
        meta = read_file_meta_info(fh.name)
        assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX")
        assert assoc.is_established
        try:
            response = assoc.send_c_store(fh.name)
        finally:
            if assoc.is_established:
                assoc.release()
    # Every data set is accounted for: a status came back (no abort, no silence) ...
    assert response is not None and "Status" in response, "the SCP did not answer the C-STORE"
    status = int(response.Status)
    sop_uid = str(meta.MediaStorageSOPInstanceUID)
    if status in SUCCESS_OR_WARNING:
        # ... and a success means the instance is in the store with its file.
        stored = store.instance(sop_uid)
        assert stored is not None and Path(stored.path).is_file()
        OUTCOMES["stored"] += 1
    else:
        OUTCOMES["refused"] += 1
        assert status & 0xF000 in (0xA000, 0xC000) or status == 0x0110, hex(status)
        assert response.get("ErrorComment", "") or status == 0xA700
    assert store.integrity_problems() == []
