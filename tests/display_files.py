"""Small generated files for the display tests: a 4-band GeoTIFF and a CT DICOM image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PATIENT = "Doe^Jane"


def write_four_band_tiff(path: Path, width: int = 96, height: int = 80) -> Path:
    """A uint16 4-band GeoTIFF in EPSG:32616 (0.5 m): bands 1-3 a flat background with a bright square
    (columns 30..60, rows 20..50), band 4 (near infrared) the square dark on a bright ground."""
    import rasterio
    from rasterio.transform import from_origin

    data = np.empty((4, height, width), np.uint16)
    rng = np.random.default_rng(4)
    for band, (ground, square) in enumerate([(800, 3000), (900, 3200), (700, 2800), (4000, 600)]):
        data[band] = ground + rng.integers(0, 60, (height, width))
        data[band, 20:50, 30:60] = square + rng.integers(0, 60, (30, 30))
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=4, dtype="uint16",
                       crs="EPSG:32616", transform=from_origin(733600.0, 3725100.0, 0.5, 0.5)) as dst:
        dst.write(data)
    return path


def write_dicom(path: Path, pixels: np.ndarray | None, photometric: str = "MONOCHROME2", **attributes) -> Path:
    """A CT image storage file: the patient :data:`PATIENT`, 16-bit unsigned ``pixels`` (None: no pixel
    data) and any further DICOM ``attributes`` (keyword=value)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT
    ds.PatientID = "P-0042"
    ds.StudyDate = "20260101"
    ds.Modality = "CT"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.astype("<u2").tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def write_ct_dicom(path: Path, pixels: np.ndarray | None = None, with_pixels: bool = True) -> Path:
    """A CT slice (slope 1, intercept -1024): by default air around a soft-tissue disc (40 HU) holding a
    bone square (700 HU); the patient's name is :data:`PATIENT`."""
    if pixels is None:
        yy, xx = np.mgrid[0:64, 0:72]
        hu = np.full((64, 72), -1000.0)
        hu[(yy - 32) ** 2 + (xx - 36) ** 2 < 24 ** 2] = 40.0
        hu[26:38, 30:42] = 700.0
        pixels = (hu + 1024).astype(np.uint16)
    return write_dicom(path, pixels if with_pixels else None, StudyInstanceUID="1.2.3.4",
                       StudyDescription="CT abdomen", SeriesInstanceUID="1.2.3.4.5",
                       RescaleSlope=1, RescaleIntercept=-1024)
