"""Test images for the render tests, made at test time from pydicom's bundled files with pydicom and DCMTK."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.support.net import require_tool


def read_pnm(path: Path) -> np.ndarray:
    """Read a PGM/PPM (ASCII P2/P3 or binary P5/P6, 8 or 16 bit) as written by dcmj2pnm."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        start = pos
        while not data[pos : pos + 1].isspace():
            pos += 1
        tokens.append(data[start:pos])
    magic, width, height, maxval = tokens[0], int(tokens[1]), int(tokens[2]), int(tokens[3])
    channels = 3 if magic in (b"P3", b"P6") else 1
    shape = (height, width, channels) if channels == 3 else (height, width)
    if magic in (b"P2", b"P3"):
        values = np.array(data[pos:].split(), dtype=np.int64)
        return values.reshape(shape)
    pos += 1  # the single whitespace after maxval
    dtype = np.dtype(">u2") if maxval > 255 else np.uint8
    return np.frombuffer(data[pos:], dtype=dtype, count=int(np.prod(shape))).reshape(shape).astype(np.int64)


def dcmtk_render(src: Path, out_dir: Path, *extra: str) -> np.ndarray:
    """DCMTK's rendering of `src` (dcmj2pnm for native/JPEG/RLE, dcml2pnm for JPEG-LS)."""
    ts = str(pydicom.dcmread(src, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    tool = require_tool("dcml2pnm" if ts.startswith("1.2.840.10008.1.2.4.8") else "dcmj2pnm")
    out = out_dir / f"{src.stem}-{abs(hash(extra)) % 10**8}.pnm"
    subprocess.run([tool, "--write-8-bit-pnm", *extra, str(src), str(out)], check=True, capture_output=True)
    return read_pnm(out)


def run_tool(name: str, *args: str | Path) -> None:
    tool = require_tool(name)
    result = subprocess.run([tool, *map(str, args)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed: {result.stderr or result.stdout}")


def _save(ds: Dataset, path: Path) -> Path:
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


class Images:
    """Lazily made test images in one session folder; each name is made once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Path] = {}

    def get(self, name: str) -> Path:
        if name not in self._made:
            self._made[name] = getattr(self, "_make_" + name.replace("-", "_"))(self.root / f"{name}.dcm")
        return self._made[name]

    # -------------------------------------------------------------- base images (explicit VR LE, uncompressed)
    def _make_ct16(self, path: Path) -> Path:
        """Signed 16-bit CT with rescale intercept and two windows (soft tissue, lung)."""
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.WindowCenter = [40, -600]
        ds.WindowWidth = [400, 1500]
        ds.WindowCenterWidthExplanation = ["SOFT", "LUNG"]
        del ds[0x00280120]  # Pixel Padding Value: DCMTK ignores it, compared separately
        return _save(ds, path)

    def _make_ct12(self, path: Path) -> Path:
        """Unsigned 12-bit CT (stored = HU + 1024), as JPEG Extended and JPEG-LS need."""
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        stored = np.clip(hu + 1024, 0, 4095).astype(np.uint16)
        ds.PixelRepresentation = 0
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.RescaleIntercept = -1024
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        del ds[0x00280120]
        for kw in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if kw in ds:
                del ds[kw]
        ds.PixelData = stored.tobytes()
        return _save(ds, path)

    def _make_gray8(self, path: Path) -> Path:
        """8-bit MONOCHROME2 (for JPEG baseline), made by windowing the CT."""
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        hu = ds.pixel_array.astype(np.float64) + float(ds.RescaleIntercept)
        stored = np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = 0
        ds.WindowCenter = 100
        ds.WindowWidth = 120
        del ds[0x00280120]
        for kw in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if kw in ds:
                del ds[kw]
        ds.PixelData = stored.tobytes()
        return _save(ds, path)

    def _make_mr(self, path: Path) -> Path:
        return _save(pydicom.dcmread(get_testdata_file("MR_small.dcm")), path)

    def _make_mono1(self, path: Path) -> Path:
        ds = pydicom.dcmread(self.get("ct12"))
        ds.PhotometricInterpretation = "MONOCHROME1"
        return _save(ds, path)

    def _make_sigmoid(self, path: Path) -> Path:
        ds = pydicom.dcmread(self.get("ct12"))
        ds.VOILUTFunction = "SIGMOID"
        return _save(ds, path)

    def _make_modality_lut(self, path: Path) -> Path:
        """Modality LUT Sequence instead of rescale: a non-linear 12-bit curve."""
        ds = pydicom.dcmread(self.get("ct12"))
        del ds.RescaleIntercept
        del ds.RescaleSlope
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 16]
        item.ModalityLUTType = "HU"
        item.add_new(0x00283006, "OW", (np.sqrt(np.arange(4096) / 4095.0) * 4000).astype("<u2").tobytes())
        ds.ModalityLUTSequence = [item]
        ds.WindowCenter = 2500
        ds.WindowWidth = 1500
        return _save(ds, path)

    def _make_voi_lut(self, path: Path) -> Path:
        """A VOI LUT Sequence (gamma curve over -1024..3071 HU, 12-bit output) next to one window."""
        ds = pydicom.dcmread(self.get("ct12"))
        item = Dataset()
        item.LUTDescriptor = [2048, 0, 12]  # first mapped value is a modality value (HU); 0 → 2047 HU
        x = np.arange(2048) / 2047.0
        item.add_new(0x00283006, "OW", np.rint(x**0.5 * 4095).astype("<u2").tobytes())
        item.LUTExplanation = "GAMMA"
        ds.VOILUTSequence = [item]
        return _save(ds, path)

    def _make_multiframe(self, path: Path) -> Path:
        """A 3-frame 12-bit image (frame k = CT shifted by k*100) with a 2-frame overlay starting at frame 2."""
        ds = pydicom.dcmread(self.get("ct12"))
        base = ds.pixel_array.astype(np.int32)
        frames = np.stack([np.clip(base + k * 100, 0, 4095) for k in range(3)]).astype(np.uint16)
        ds.NumberOfFrames = 3
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = 40.0
        ds.PixelData = frames.tobytes()
        rows, cols = ds.Rows, ds.Columns
        bitmaps = np.zeros((2, rows, cols), dtype=np.uint8)
        bitmaps[0, 10:20, 10:60] = 1
        bitmaps[1, 40:90, 70:80] = 1
        ds.add_new(0x60000010, "US", rows)
        ds.add_new(0x60000011, "US", cols)
        ds.add_new(0x60000015, "IS", 2)
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000051, "US", 2)
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60003000, "OW", np.packbits(bitmaps.ravel(), bitorder="little").tobytes())
        return _save(ds, path)

    def _make_palette(self, path: Path) -> Path:
        return _save(pydicom.dcmread(get_testdata_file("examples_palette.dcm")), path)

    def _make_palette_segmented(self, path: Path) -> Path:
        """The palette image with its LUTs re-encoded as segmented palettes (discrete + linear segments)."""
        ds = pydicom.dcmread(self.get("palette"))
        for color in ("Red", "Green", "Blue"):
            descriptor = ds[f"{color}PaletteColorLookupTableDescriptor"].value
            raw = ds[f"{color}PaletteColorLookupTableData"].value
            data = np.frombuffer(raw, dtype="<u2").astype(np.int64)
            n = len(data)
            # first half as one discrete segment, second half as linear segments of 4 entries each
            half = n // 2
            segments: list[int] = [0, half, *data[:half].tolist()]
            pos = half
            while pos < n:
                step = min(4, n - pos)
                segments += [1, step, int(data[pos + step - 1])]
                pos += step
            ds[f"{color}PaletteColorLookupTableDescriptor"].value = descriptor
            del ds[f"{color}PaletteColorLookupTableData"]
            ds.add_new(
                {"Red": 0x00281221, "Green": 0x00281222, "Blue": 0x00281223}[color],
                "OW",
                np.asarray(segments, dtype="<u2").tobytes(),
            )
        return _save(ds, path)

    def _make_rgb(self, path: Path) -> Path:
        return _save(pydicom.dcmread(get_testdata_file("SC_rgb_small_odd.dcm")), path)

    def _make_rgb_planar(self, path: Path) -> Path:
        ds = pydicom.dcmread(self.get("rgb"))
        arr = ds.pixel_array
        ds.PlanarConfiguration = 1
        ds.PixelData = np.ascontiguousarray(arr.transpose(2, 0, 1)).tobytes() + (b"\0" if arr.size % 2 else b"")
        return _save(ds, path)

    def _make_ybr_full(self, path: Path) -> Path:
        """YBR_FULL native, converted from the RGB image with the PS3.3 C.7.6.3.1.2 equations."""
        ds = pydicom.dcmread(self.get("rgb"))
        rgb = ds.pixel_array.astype(np.float64)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        y = 0.2990 * r + 0.5870 * g + 0.1140 * b
        cb = -0.1687 * r - 0.3313 * g + 0.5000 * b + 128
        cr = 0.5000 * r - 0.4187 * g - 0.0813 * b + 128
        ybr = np.clip(np.rint(np.stack([y, cb, cr], axis=-1)), 0, 255).astype(np.uint8)
        ds.PhotometricInterpretation = "YBR_FULL"
        ds.PixelData = ybr.tobytes() + (b"\0" if ybr.size % 2 else b"")
        return _save(ds, path)

    def _make_ybr_full_422(self, path: Path) -> Path:
        return _save(pydicom.dcmread(get_testdata_file("SC_ybr_full_422_uncompressed.dcm")), path)

    def _make_overlay(self, path: Path) -> Path:
        return _save(pydicom.dcmread(get_testdata_file("examples_overlay.dcm")), path)

    # -------------------------------------------------------------- encodings
    def encoded(self, base: str, transfer_syntax: str) -> Path:
        """`base` re-encoded in `transfer_syntax` with DCMTK, or pydicom/openjpeg/OpenJPH for JPEG 2000."""
        key = f"{base}@{transfer_syntax}"
        if key in self._made:
            return self._made[key]
        src = self.get(base)
        out = self.root / f"{base}-{transfer_syntax}.dcm"
        dcmtk = {
            "1.2.840.10008.1.2": ("dcmconv", "+ti"),
            "1.2.840.10008.1.2.1": ("dcmconv", "+te"),
            "1.2.840.10008.1.2.2": ("dcmconv", "+tb"),
            "1.2.840.10008.1.2.1.99": ("dcmconv", "+td"),
            "1.2.840.10008.1.2.4.50": ("dcmcjpeg", "+eb"),
            "1.2.840.10008.1.2.4.51": ("dcmcjpeg", "+ee"),
            "1.2.840.10008.1.2.4.57": ("dcmcjpeg", "+el"),
            "1.2.840.10008.1.2.4.70": ("dcmcjpeg", "+e1"),
            "1.2.840.10008.1.2.4.80": ("dcmcjpls", "+el"),
            "1.2.840.10008.1.2.4.81": ("dcmcjpls", "+en"),
            "1.2.840.10008.1.2.5": ("dcmcrle", ""),
        }
        if transfer_syntax in dcmtk:
            tool, option = dcmtk[transfer_syntax]
            run_tool(tool, *([option] if option else []), src, out)
        elif transfer_syntax in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"):
            ds = pydicom.dcmread(src)
            kwargs = {} if transfer_syntax.endswith(".90") else {"j2k_cr": [20]}
            ds.compress(transfer_syntax, **kwargs)
            ds.save_as(out, enforce_file_format=True)
        elif transfer_syntax == "1.2.840.10008.1.2.4.201":
            out = self._htj2k(src, out)
        else:
            raise ValueError(transfer_syntax)
        self._made[key] = out
        return out

    def _htj2k(self, src: Path, out: Path) -> Path:
        """HTJ2K lossless via OpenJPH's ojph_compress (Debian openjph-tools), wrapped by pydicom.

        Skipped (also in CI) where openjph-tools is not installed: it is optional, not one of the dev tools."""
        import shutil

        tool = shutil.which("ojph_compress")
        if tool is None:
            pytest.skip("ojph_compress (openjph-tools) is not installed; cannot make an HTJ2K file")
        from pydicom.encaps import encapsulate

        ds = pydicom.dcmread(src)
        arr = ds.pixel_array
        pgm = out.with_suffix(".pgm")
        maxval = (1 << int(ds.BitsStored)) - 1
        depth_bytes = 2 if ds.BitsAllocated > 8 else 1
        body = arr.astype(">u2").tobytes() if depth_bytes == 2 else arr.astype(np.uint8).tobytes()
        pgm.write_bytes(f"P5\n{ds.Columns} {ds.Rows}\n{maxval}\n".encode() + body)
        j2c = out.with_suffix(".j2c")
        subprocess.run([tool, "-i", str(pgm), "-o", str(j2c), "-reversible", "true"], check=True, capture_output=True)
        ds.PixelData = encapsulate([j2c.read_bytes()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"
        ds.save_as(out, enforce_file_format=True)
        return out


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    return Images(tmp_path_factory.mktemp("render-images"))


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path


def copy_dataset(ds: Dataset) -> Dataset:
    return copy.deepcopy(ds)


__all__ = ["ExplicitVRLittleEndian", "Images", "dcmtk_render", "read_pnm", "run_tool"]
