"""DICOM associations captured on loopback between real implementations (pynetdicom): the
association requests' AE titles and abstract syntaxes, accepted or rejected, and none of the
invented patient's attributes that the C-STORE carried."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from collector.netmeta import DicomRecord, extract
from tests.collector.sniffing import sniffing

PATIENT = ("DUPONTEL", "JEANNETTE", "8801017512345", "19800101")


@pytest.mark.skipif(os.geteuid() != 0, reason="capturing on loopback needs root (raw sockets)")
def test_associations_give_ae_titles_and_syntaxes_and_no_patient_data(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage, Verification
    from scapy.all import wrpcap

    stored: list[str] = []

    def on_store(event: evt.Event) -> int:
        stored.append(str(event.dataset.PatientName))
        return 0x0000

    scp = AE(ae_title="PACS-DEMO")
    scp.require_called_aet = True
    scp.add_supported_context(Verification)
    scp.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
    server = scp.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    port = server.server_address[1]
    with sniffing(port) as packets:
        try:
            scu = AE(ae_title="MODALITE-CT1")
            scu.add_requested_context(Verification)
            scu.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
            association = scu.associate("127.0.0.1", port, ae_title="PACS-DEMO")
            assert association.is_established
            assert association.send_c_echo().Status == 0
            image = Dataset()
            image.PatientName = "DUPONTEL^JEANNETTE"
            image.PatientID = "8801017512345"
            image.PatientBirthDate = "19800101"
            image.SOPClassUID = CTImageStorage
            image.SOPInstanceUID = generate_uid()
            image.StudyInstanceUID = generate_uid()
            image.SeriesInstanceUID = generate_uid()
            image.Modality = "CT"
            image.file_meta = FileMetaDataset()
            image.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            assert association.send_c_store(image).Status == 0
            association.release()
            refused = AE(ae_title="INCONNU")
            refused.add_requested_context(Verification)
            rejected = refused.associate("127.0.0.1", port, ae_title="MAUVAIS-AE")
            assert rejected.is_rejected
        finally:
            server.shutdown()  # its side closed within the capture too
    assert stored == ["DUPONTEL^JEANNETTE"]  # the patient really crossed the wire
    capture = tmp_path / "dicom.pcap"
    wrpcap(str(capture), packets)

    records = list(extract([capture]))
    associations = [r for r in records if isinstance(r, DicomRecord)]
    assert [(r.calling_ae, r.called_ae, r.result) for r in associations] == [
        ("MODALITE-CT1", "PACS-DEMO", "accepted"),
        ("INCONNU", "MAUVAIS-AE", "rejected"),
    ]
    assert associations[0].abstract_syntaxes == ("Verification", "CT Image Storage")
    assert not any(r.tls for r in associations)
    assert [c.service for c in records if c.path == "conn"] == ["dicom", "dicom"]
    text = json.dumps([r.zeek() for r in records] + [r.ecs() for r in records])
    assert not [p for p in PATIENT if p in text]
