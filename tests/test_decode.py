"""Reading and decoding hostile and unusual files: the source file itself, the memory budget, pixel modes,
orientation and formats. Everything about what the models find uses the real models on the test photos."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image

from appliance.config import Settings
from appliance.decode import DecodeBudget, DecodeError, decode
from appliance.paths import LibraryRoots, is_image_name
from appliance.pipeline import PipelineFactory
from appliance.source import SourceError, open_source

from .conftest import MODELS, PHOTOS

ZIDANE = PHOTOS / "zidane.jpg"


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (all threads)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def refusal(path, roots: LibraryRoots, max_bytes: int = 1 << 20) -> str:
    """open_source's reason for refusing `path`; it must come at once and read less than max_bytes."""
    outcome: dict = {}

    def attempt():
        try:
            with open_source(str(path), roots, max_bytes):
                outcome["opened"] = True
        except SourceError as error:
            outcome["reason"] = str(error)

    before, started = bytes_read(), time.monotonic()
    thread = threading.Thread(target=attempt, daemon=True)  # a blocked open must fail the test, not hang it
    thread.start()
    thread.join(5)
    assert "reason" in outcome, outcome
    assert time.monotonic() - started < 2
    assert bytes_read() - before < max_bytes
    return outcome["reason"]


@pytest.fixture
def roots(library) -> LibraryRoots:
    return LibraryRoots([library])


def test_a_regular_file_is_opened_at_its_start_with_its_digest(library, roots):
    data = ZIDANE.read_bytes()
    (library / "z.jpg").write_bytes(data)
    with open_source(str(library / "z.jpg"), roots, len(data)) as source:
        assert source.digest == hashlib.sha256(data).hexdigest()
        assert source.stat.st_size == len(data)
        assert source.file.tell() == 0 and source.file.read() == data
    assert source.file.closed


def test_a_fifo_is_refused_without_blocking(library, roots):
    os.mkfifo(library / "pipe.jpg")
    assert (
        refusal(library / "pipe.jpg", roots)
        == "This is a FIFO (named pipe), not a regular file; only photo files are read."
    )


def test_a_link_to_a_device_is_refused(library, roots):
    os.symlink("/dev/zero", library / "zero.jpg")
    assert "symbolic link" in refusal(library / "zero.jpg", roots)


def test_a_file_swapped_for_a_link_after_queueing_is_refused(tmp_path, library, roots):
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.jpg"
    secret.write_bytes(ZIDANE.read_bytes())
    queued = library / "photo.jpg"
    queued.write_bytes(b"queued as a plain file")
    queued.unlink()
    os.symlink(secret, queued)
    assert "symbolic link" in refusal(queued, roots)


def test_a_link_made_between_the_check_and_the_open_is_not_followed(tmp_path, library, roots, monkeypatch):
    os.symlink(ZIDANE, library / "late.jpg")
    monkeypatch.setattr(os.path, "realpath", lambda path: path)  # as if the swap came after the check
    assert "symbolic link" in refusal(library / "late.jpg", roots)


def test_a_path_outside_the_roots_is_refused(tmp_path, roots):
    (tmp_path / "elsewhere.jpg").write_bytes(ZIDANE.read_bytes())
    assert "outside the library folders" in refusal(tmp_path / "elsewhere.jpg", roots)


def test_an_oversized_file_is_refused_before_it_is_read(library, roots):
    with open(library / "huge.jpg", "wb") as f:
        f.truncate(64 << 20)  # sparse: reading it all would show in the bytes read
    reason = refusal(library / "huge.jpg", roots, max_bytes=1 << 20)
    assert reason == f"The file is {64 << 20} bytes; files over {1 << 20} bytes are skipped."


def test_missing_and_other_kinds_are_refused_with_their_reason(library, roots):
    assert refusal(library / "gone.jpg", roots) == "The file no longer exists."
    (library / "folder.jpg").mkdir()
    assert refusal(library / "folder.jpg", roots).startswith("This is a folder, not a regular file")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(library / "socket.jpg"))
        assert refusal(library / "socket.jpg", roots).startswith("This is a socket, not a regular file")


def test_an_unreadable_file_is_refused(library, roots):
    (library / "locked.jpg").write_bytes(b"x")
    (library / "locked.jpg").chmod(0)
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(65534)  # root reads anything: be `nobody` for the open
    try:
        with pytest.raises(SourceError) as refused, open_source(str(library / "locked.jpg"), roots, 10):
            pass
    finally:
        if as_root:
            os.seteuid(0)
    assert str(refused.value) == "The appliance may not read this file (permission denied)."


def test_a_file_that_grows_past_the_limit_while_hashed_is_refused(library, roots):
    (library / "growing.jpg").write_bytes(b"x" * 100)
    with pytest.raises(SourceError, match="grew past 100 bytes"):
        with open_source(str(library / "growing.jpg"), roots, 100) as source:
            with open(library / "growing.jpg", "ab") as f:
                f.write(b"more")
            source.digest  # noqa: B018 (hashed on first use)


# --- decoding: modes, orientation, formats ---

T = Image.Transpose
SMALL = Image.open(ZIDANE).convert("RGB").resize((320, 180))


BUDGET = DecodeBudget(256 << 20)


def decode_file(path, analysis_size: int = 1280, budget: DecodeBudget = BUDGET):
    with open(path, "rb") as f:
        return decode(f, 120_000_000, analysis_size, budget)


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel value, 0-255."""
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


def png16(path, pixels: np.ndarray) -> None:
    """A 16-bit RGB or RGBA PNG, written by hand: Pillow cannot write one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, bands = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 16, {3: 2, 4: 6}[bands], 0, 0, 0)
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def mode_cases() -> dict:
    """name: (image to save, format, what it must decode to)."""
    gray = SMALL.convert("L")
    gray16 = np.asarray(gray, np.uint16) * 257
    opaque_la = gray.convert("LA")
    return {
        "1": (SMALL.convert("1"), "PNG", SMALL.convert("1")),
        "L": (gray, "PNG", gray),
        "LA": (opaque_la, "PNG", gray),
        "P": (SMALL.quantize(256), "PNG", SMALL.quantize(256)),
        "RGBA": (SMALL.convert("RGBA"), "PNG", SMALL),
        "CMYK": (SMALL.convert("CMYK"), "TIFF", SMALL),
        "YCbCr": (SMALL.convert("YCbCr"), "TIFF", SMALL),
        "LAB": (SMALL.convert("LAB"), "TIFF", SMALL),
        "I;16": (Image.fromarray(gray16), "PNG", gray),
        "I;16B": (Image.fromarray(gray16.astype(">u2")), "TIFF", gray),
        "I": (Image.fromarray(gray16.astype(np.int32)), "TIFF", gray),
        "F": (Image.fromarray(gray16.astype(np.float32) / 65535), "TIFF", gray),
    }


@pytest.mark.parametrize("mode", list(mode_cases()))
def test_every_mode_decodes_to_its_colours(tmp_path, mode):
    image, format, expected = mode_cases()[mode]
    image.save(tmp_path / "image", format)
    with Image.open(tmp_path / "image") as stored:
        assert stored.mode == mode  # the file really is in that mode
    decoded = decode_file(tmp_path / "image")
    assert decoded.pixels.mode == "RGB" and decoded.pixels.size == (320, 180)
    assert difference(decoded.pixels, expected.convert("RGB")) < 1.5, mode


@pytest.mark.parametrize("bands", [3, 4])
def test_sixteen_bit_colour_pngs_decode_to_their_colours(tmp_path, bands):
    pixels = np.asarray(SMALL.convert("RGBA" if bands == 4 else "RGB"), np.uint16) * 257
    png16(tmp_path / "deep.png", pixels)
    assert difference(decode_file(tmp_path / "deep.png").pixels, SMALL) < 1


def test_transparent_pixels_become_white(tmp_path):
    """Left half opaque, right half transparent (and black underneath), in every way a PNG can say so."""
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([0, 0, 0, 200, 30, 30])
    palette.paste(1, (0, 0, 32, 64))
    palette.save(tmp_path / "p.png", transparency=0)
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((200, 30, 30, 255), (0, 0, 32, 64))
    rgba.save(tmp_path / "rgba.png")
    rgba.convert("LA").save(tmp_path / "la.png")
    rgb = Image.new("RGB", (64, 64))
    rgb.paste((200, 30, 30), (0, 0, 32, 64))
    rgb.save(tmp_path / "rgb.png", transparency=(0, 0, 0))
    rgb.convert("L").save(tmp_path / "l.png", transparency=0)
    gray = rgb.convert("L").getpixel((0, 0))
    for name, left in [("p", (200, 30, 30)), ("rgba", (200, 30, 30)), ("rgb", (200, 30, 30))] + [
        ("la", (gray,) * 3),
        ("l", (gray,) * 3),
    ]:
        pixels = decode_file(tmp_path / f"{name}.png").pixels
        assert (pixels.getpixel((10, 10)), pixels.getpixel((50, 10))) == (left, (255, 255, 255)), name


def test_sixteen_bit_grayscale_matches_eight_bit_and_the_models_agree(tmp_path, pipeline):
    gray = Image.open(ZIDANE).convert("L")
    gray.save(tmp_path / "gray8.png")
    Image.fromarray(np.asarray(gray, np.uint16) * 257).save(tmp_path / "gray16.png")
    deep, flat = decode_file(tmp_path / "gray16.png"), decode_file(tmp_path / "gray8.png")
    assert (deep.width, deep.height) == (1280, 720)
    assert difference(deep.pixels, flat.pixels) < 0.5
    assert labels(pipeline, tmp_path / "gray16.png") == labels(pipeline, ZIDANE) == {"person", "tie"}


@pytest.mark.parametrize(
    "orientation,stored", [(3, T.ROTATE_180), (5, T.TRANSPOSE), (6, T.ROTATE_90), (7, T.TRANSVERSE), (8, T.ROTATE_270)]
)
def test_exif_rotated_photos_decode_upright_with_their_upright_size(tmp_path, orientation, stored):
    upright = Image.open(ZIDANE)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    upright.transpose(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    decoded = decode_file(tmp_path / "rotated.jpg")
    assert (decoded.width, decoded.height) == (1280, 720)
    assert decoded.pixels.size == (1280, 720)
    assert difference(decoded.pixels, upright) < 4


@pytest.mark.parametrize("format", ["HEIF", "AVIF"])
def test_heic_and_avif_decode_upright_with_their_date_and_objects(tmp_path, pipeline, format):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2021:03:04 05:06:07"
    path = tmp_path / f"zidane.{format.lower()}"
    Image.open(ZIDANE).transpose(T.ROTATE_90).save(path, format, exif=exif.tobytes(), quality=90)
    assert is_image_name(path) and is_image_name(tmp_path / "x.HEIC")
    decoded = decode_file(path)
    assert (decoded.width, decoded.height, decoded.taken_at) == (1280, 720, "2021-03-04T05:06:07")
    assert difference(decoded.pixels, Image.open(ZIDANE)) < 6
    assert labels(pipeline, path) == labels(pipeline, ZIDANE)


def test_files_that_are_no_image_fail_with_a_plain_reason(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image at all")
    SMALL.save(tmp_path / "icon.png", "ICO")  # an image, but not a photo format this appliance reads
    for name in ("notes.jpg", "icon.png"):
        with pytest.raises(DecodeError) as failed:
            decode_file(tmp_path / name)
        reason = str(failed.value)
        assert "not an image this appliance can read" in reason and "<" not in reason and "0x" not in reason


# --- the memory budget ---

# Peak RSS from VmHWM: ru_maxrss would start at the parent's peak (Linux carries it across exec).
PEAK_MIB = """
import sys, time
from appliance.decode import DecodeBudget, DecodeError, decode
def peak_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) >> 10
before = peak_mib()
"""
DECODE_PEAK = (
    PEAK_MIB
    + """
started = time.monotonic()
with open(sys.argv[1], "rb") as f:
    decoded = decode(f, 120_000_000, 1280, DecodeBudget(256 << 20))
seconds = time.monotonic() - started
corner, centre = decoded.pixels.getpixel((0, 0)), decoded.pixels.getpixel((640, 640))
print(peak_mib() - before, round(seconds, 2), decoded.width, decoded.height, *corner, *centre)
"""
)
# One decode per budget given, in turn: what it held, and the peak RSS grown since the start.
BUDGET_PEAK = (
    PEAK_MIB
    + """
for limit_mib in sys.argv[2:]:
    budget, held = DecodeBudget(int(limit_mib) << 20), []
    hold = budget.hold
    budget.hold = lambda size: (held.append(size), hold(size))[1]
    try:
        with open(sys.argv[1], "rb") as f:
            decode(f, 120_000_000, 1280, budget)
        outcome = "decoded"
    except DecodeError as error:
        outcome = "refused" if "decode_budget_mib" in str(error) else repr(error)
    print(outcome, held[0] >> 20, peak_mib() - before)
"""
)


def test_a_palette_bomb_decodes_in_little_more_than_its_native_size(tmp_path):
    """116 kB on disk, 120 MB of palette indices; converting it whole to RGBA and RGB took 2 GB."""
    bomb = Image.new("P", (10950, 10950))
    bomb.putpalette([0, 0, 0, 255, 0, 0])
    bomb.paste(1, (2000, 2000, 9000, 9000))
    bomb.save(tmp_path / "bomb.png", optimize=True, transparency=0)
    del bomb
    run = subprocess.run(
        [sys.executable, "-c", DECODE_PEAK, str(tmp_path / "bomb.png")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    grown_mib, seconds, *facts = run.stdout.split()
    print(f"palette bomb: peak RSS grew {grown_mib} MiB, decode took {seconds} s")
    assert int(grown_mib) < 400
    assert [int(n) for n in facts] == [10950, 10950, 255, 255, 255, 255, 0, 0]  # transparent is white, red is red


def progressive_jpeg(path) -> None:
    """4:4:4, so libjpeg buffers 6 bytes of coefficients per pixel at full size, whatever the draft scale."""
    Image.new("RGB", (3000, 3000), (100, 150, 200)).save(path, "JPEG", progressive=True, quality=5, subsampling=0)


def multi_scan_jpeg(path) -> None:
    """3.6 kB, baseline, declaring 3000x3000 with a first scan of the luma alone: libjpeg then buffers every
    coefficient as for a progressive file, although Pillow does not call it progressive."""
    small = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(small, "JPEG", subsampling=0)
    data = small.getvalue()
    sof, sos = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    header = data[: sof + 5] + struct.pack(">HH", 3000, 3000) + data[sof + 9 : sos]
    luma_scan = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x28\xa2\x8a" * 1000  # each block: DC 0, EOB
    path.write_bytes(header + luma_scan + b"\xff\xd9")


def webp(path) -> None:
    """15 MiB of pixels; libwebp and Pillow hold four RGBA copies of them."""
    Image.new("RGB", (2000, 2000), (100, 150, 200)).save(path, "WEBP", quality=10)


def rgba_png(path) -> None:
    """34 MiB of pixels and no eXIf chunk before them: getexif() would decode them all to look for one."""
    Image.new("RGBA", (3000, 3000), (100, 150, 200, 128)).save(path, "PNG")


def heic(path) -> None:
    """22 MiB of pixels; libheif decodes YCbCr planes and an RGB copy before Pillow's."""
    Image.new("RGB", (2400, 2400), (100, 150, 200)).save(path, "HEIF", quality=10)


@pytest.mark.parametrize(
    "make,refused_under", [(progressive_jpeg, 48), (multi_scan_jpeg, 48), (webp, 48), (rgba_png, 16), (heic, 32)]
)
def test_a_decode_holds_what_it_allocates_or_is_refused_before_decoding(tmp_path, make, refused_under):
    """Each image really takes more than `refused_under` MiB to decode: under that budget it fails with its reason
    before a pixel is decoded; under 96 MiB it decodes, never growing past what it held."""
    make(tmp_path / "image")
    run = subprocess.run(
        [sys.executable, "-c", BUDGET_PEAK, str(tmp_path / "image"), str(refused_under), "96"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    (refusal, _, grown_refused), (outcome, held, grown) = [line.split() for line in run.stdout.splitlines()]
    print(f"{make.__name__}: {refusal} under {refused_under} MiB (+{grown_refused}); held {held}, grew {grown} MiB")
    assert refusal == "refused" and int(grown_refused) < 8
    assert outcome == "decoded" and int(grown) <= int(held) + 4  # 2 to 4 MiB are the libraries' own, fixed


def test_decodes_wait_for_their_share_of_the_budget(tmp_path):
    SMALL.save(tmp_path / "small.png")  # 320x180 RGB: 230,400 bytes decoded
    budget = DecodeBudget(300_000)
    decoded = []
    with budget.hold(200_000):  # another worker's decode in progress
        worker = threading.Thread(target=lambda: decoded.append(decode_file(tmp_path / "small.png", budget=budget)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and not decoded  # the two together would pass the budget: it waits
    worker.join(5)
    assert len(decoded) == 1 and budget.in_use == 0


def test_the_budget_is_counted_after_jpeg_draft_scaling_and_given_back_after_failures(tmp_path):
    Image.open(ZIDANE).resize((4000, 3000)).save(tmp_path / "big.jpg")  # 48 MB whole, 3 MB at 1/4 scale
    budget = DecodeBudget(8 << 20)
    assert decode_file(tmp_path / "big.jpg", budget=budget).width == 4000
    data = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(DecodeError, match="truncated"):
        decode_file(tmp_path / "truncated.jpg", budget=budget)
    assert budget.in_use == 0


def test_an_image_needing_more_than_the_whole_budget_fails_naming_the_setting(tmp_path):
    Image.new("RGB", (1000, 1000)).save(tmp_path / "large.png")  # 4 MB decoded
    with pytest.raises(DecodeError) as failed:
        decode_file(tmp_path / "large.png", budget=DecodeBudget(1 << 20))
    assert "1 MiB" in str(failed.value) and "decode_budget_mib" in str(failed.value)


def test_a_missing_thumbnail_is_made_again_from_the_analysed_file_only(client, library):
    photo = library / "zidane.jpg"
    shutil.copy(ZIDANE, photo)
    client.ingest(library)

    def remade():
        for thumbnail in (client.data_dir / "thumbnails").rglob("*.jpg"):
            thumbnail.unlink()
        return client.get("/images/thumbnail", params={"path": str(photo)})

    response = remade()
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (320, 180)
    Image.open(ZIDANE).save(photo, quality=40)  # changed since it was analysed: its thumbnail would lie
    response = remade()
    assert response.status_code == 404 and "changed since it was analysed" in response.json()["detail"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    return PipelineFactory(Settings(models_dir=MODELS, data_dir=data, library_roots=[data]))()


def labels(pipeline, path) -> set[str]:
    with open(path, "rb") as f:
        return {o.label for o in pipeline.analyse(f, hashlib.sha256(str(path).encode()).hexdigest()).objects}
