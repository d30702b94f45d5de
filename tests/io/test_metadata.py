"""Vendor metadata parsers (pure functions)."""

from __future__ import annotations

import pytest

from napari_histo.io._metadata import (
    aperio_calibration,
    mpp_from_resolution,
    parse_aperio_description,
    parse_ome_calibration,
)


def test_aperio_description():
    text = "Aperio Image Library v11.2.1 \r\n46000x32914 (256x256) JPEG/RGB Q=30|AppMag = 20|MPP = 0.4990"
    props = parse_aperio_description(text)
    assert props["AppMag"] == "20" and props["MPP"] == "0.4990"
    assert props["header"].startswith("Aperio Image Library")
    calibration = aperio_calibration(props)
    assert calibration.mpp == pytest.approx(0.499) and calibration.magnification == 20
    assert parse_aperio_description("ImageJ=1.52") == {}
    assert aperio_calibration(parse_aperio_description("Aperio Image Library v11 |AppMag = 20")).mpp is None


@pytest.mark.parametrize(
    ("resolution", "unit", "expected"),
    [
        ((43826, 1), 3, 0.22817),  # NDPI: pixels per centimetre
        ((101600, 1), 2, 0.25),  # pixels per inch
        (20000.0, 3, 0.5),
        ((72, 1), 2, None),  # the 72 dpi placeholder is not a microscope
        ((1, 1), 1, None),  # unit "none"
        ((0, 0), 3, None),
    ],
)
def test_mpp_from_resolution(resolution, unit, expected):
    got = mpp_from_resolution(resolution, unit)
    assert got == (pytest.approx(expected, abs=1e-5) if expected else None)


def test_ome_physical_size_units_and_objective():
    xml = """<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
      <Instrument><Objective ID="O:0" NominalMagnification="40"/></Instrument>
      <Image ID="Image:0"><Pixels PhysicalSizeX="250" PhysicalSizeXUnit="nm" SizeX="10" SizeY="10"/></Image>
    </OME>"""
    calibration = parse_ome_calibration(xml)
    assert calibration.mpp == pytest.approx(0.25) and calibration.magnification == 40
    no_unit = parse_ome_calibration('<OME><Image><Pixels PhysicalSizeX="0.5"/></Image></OME>')
    assert no_unit.mpp == 0.5  # OME's default unit is µm
    assert parse_ome_calibration("<not xml").mpp is None
