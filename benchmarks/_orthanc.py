"""A local DICOMweb server for a folder of DICOM files: Orthanc and its DICOMweb plugin (Debian packages
``orthanc`` and ``orthanc-dicomweb``), listening on 127.0.0.1 only.  Used by the DICOMweb tests and the
DICOMweb row of ``bench_slide_io.py``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and PLUGIN.exists()


@contextmanager
def dicomweb_series(dicom_folder: Path, work: Path, users: dict[str, str] | None = None) -> Iterator[str]:
    """Serve the ``*.dcm`` files of ``dicom_folder`` (one series); yields the series' DICOMweb URL.

    ``users`` (name: password) makes the server ask for HTTP basic authentication.
    """
    import pydicom
    import requests

    work.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "Name": "napari-histo-test", "StorageDirectory": str(work), "IndexDirectory": str(work),
        "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users), "RegisteredUsers": users or {}, "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }  # fmt: skip
    (work / "orthanc.json").write_text(json.dumps(config))
    base = f"http://127.0.0.1:{port}"
    auth = next(iter(users.items())) if users else None
    with open(work / "orthanc.log", "wb") as log:
        server = subprocess.Popen(
            [str(shutil.which("Orthanc")), str(work / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            for _ in range(200):
                try:
                    if requests.get(f"{base}/system", timeout=1, auth=auth).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"Orthanc did not start: {(work / 'orthanc.log').read_text()[-2000:]}")
            files = sorted(dicom_folder.glob("*.dcm"))
            for path in files:
                reply = requests.post(f"{base}/instances", data=path.read_bytes(), timeout=60, auth=auth)
                reply.raise_for_status()
            first = pydicom.dcmread(files[0], stop_before_pixels=True)
            yield f"{base}/dicom-web/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
        finally:
            server.terminate()
            server.wait(timeout=30)
