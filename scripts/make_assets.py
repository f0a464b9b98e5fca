"""(Re)create the example inputs in assets/examples and their origins in assets/LICENSES.md.

Run from anywhere: ``python scripts/make_assets.py``. Needs scikit-image (its bundled sample
photos, nothing downloaded), soundfile, soxr and the Debian ``espeak-ng`` program. The output is
deterministic: running it twice gives the same bytes.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage
import skimage.data
import soundfile as sf
import soxr
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import toyworld  # noqa: E402  (needs ROOT on the path when run as a script)

ASSETS = ROOT / "assets"
EXAMPLES = ASSETS / "examples"
PHOTO_SIZE = 512  # pixels; the longest side of an example photo
JPEG_QUALITY = 85  # PIL JPEG quality, 1-95
SAMPLE_RATE = 16_000  # Hz; example speech is written at the rate the speech pipeline uses
SILENCE_SECONDS = 1.0  # seconds
TOY_SCENES = 12  # single-shape scenes, plus TWO_SHAPE_SCENES
TWO_SHAPE_SCENES = 2
# British English (received pronunciation) at 140 words a minute, 60 ms between words: the voice and pace at which
# Whisper tiny.en (the shipped fallback) wrote each sentence word for word, with beam 5 or 1, with or without VAD (at
# en-us 150 it heard "That's what your country can do for you" and "show me a photo in the cat")
ESPEAK = ["espeak-ng", "-v", "en-gb-x-rp", "-s", "140", "-g", "6", "--stdout"]  # the text is appended
SENTENCES = (
    "ask not what your country can do for you",
    "what color is the shape",
    "a red circle on a white background",
    "show me a photo of a cat",
)
SKIMAGE_LICENCE = (
    "scikit-image {version} sample data, loaded with `skimage.data.{function}()` from the installed "
    "package (file `skimage/data/{file}`); resized to at most 512 px and re-encoded as JPEG quality 85."
)


@dataclass(frozen=True)
class Photo:
    name: str  # file name in assets/examples/photos
    function: str  # skimage.data function
    file: str  # file in skimage/data that the function reads
    what: str
    licence: str  # as stated in the function's docstring in the installed scikit-image


PHOTOS = (
    Photo(
        "astronaut.jpg",
        "astronaut",
        "astronaut.png",
        "Eileen Collins, NASA astronaut",
        "No known copyright restrictions, released into the public domain (NASA Great Images database).",
    ),
    Photo(
        "cat.jpg",
        "chelsea",
        "chelsea.png",
        "Chelsea the cat",
        "No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
    ),
    Photo(
        "coffee.jpg",
        "coffee",
        "coffee.png",
        "a cup of coffee (courtesy of Pikolo Espresso Bar)",
        "No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
    ),
    Photo(
        "rocket.jpg",
        "rocket",
        "rocket.jpg",
        "launch of DSCOVR on a SpaceX Falcon 9",
        "Captured by SpaceX and released into the public domain.",
    ),
    Photo(
        "motorcycle.jpg",
        "stereo_motorcycle",
        "motorcycle_left.png",
        "a motorcycle, left image of the Middlebury 2014 stereo pair (Scharstein et al., GCPR 2014)",
        "The docstring states no licence for this image. It is redistributed inside the scikit-image "
        "package (BSD-3-Clause); the Middlebury stereo datasets ask users to cite D. Scharstein et al., "
        "'High-resolution stereo datasets with subpixel-accurate ground truth', GCPR 2014.",
    ),
    Photo(
        "hubble.jpg",
        "hubble_deep_field",
        "hubble_deep_field.jpg",
        "the Hubble eXtreme Deep Field",
        "Captured by NASA and may be freely used in the public domain.",
    ),
    Photo(
        "coins.jpg",
        "coins",
        "coins.png",
        "Greek coins from Pompeii (Brooklyn Museum collection)",
        "No known copyright restrictions.",
    ),
    Photo(
        "horse.jpg",
        "horse",
        "horse.png",
        "a black and white silhouette of a horse (openclipart)",
        "No copyright restrictions. CC0 given by owner (Andreas Preuss (marauder)).",
    ),
)


def main() -> None:
    for folder in ("photos", "toy", "speech"):
        shutil.rmtree(EXAMPLES / folder, ignore_errors=True)
        (EXAMPLES / folder).mkdir(parents=True)
    rows = make_photos() + make_toy_scenes() + make_speech()
    write_licences(rows)
    total = sum(path.stat().st_size for path in EXAMPLES.rglob("*") if path.is_file())
    print(f"wrote {len(rows)} files, {total / 1e6:.2f} MB, in {EXAMPLES.relative_to(ROOT)}")


def make_photos() -> list[tuple[Path, str, str]]:
    rows = []
    for photo in PHOTOS:
        pixels = getattr(skimage.data, photo.function)()
        if photo.function == "stereo_motorcycle":
            pixels = pixels[0]  # (left, right, disparity): the left image
        if pixels.dtype == bool:
            pixels = pixels.astype(np.uint8) * 255
        image = Image.fromarray(pixels)
        image.thumbnail((PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.LANCZOS)
        path = EXAMPLES / "photos" / photo.name
        image.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)
        origin = f"{photo.what}. " + SKIMAGE_LICENCE.format(
            version=skimage.__version__, function=photo.function, file=photo.file
        )
        rows.append((path, origin, photo.licence))
    return rows


def toy_combinations() -> list[tuple[str, str]]:
    """TOY_SCENES distinct (colour, shape) pairs that use every colour and every shape."""
    colors = list(toyworld.COLORS)
    shapes = toyworld.SHAPES
    return [(colors[i % len(colors)], shapes[(i + i // len(colors)) % len(shapes)]) for i in range(TOY_SCENES)]


def make_toy_scenes() -> list[tuple[Path, str, str]]:
    wanted = toy_combinations()
    assert {c for c, _ in wanted} == set(toyworld.COLORS) and {s for _, s in wanted} == set(toyworld.SHAPES)
    chosen: dict[str, tuple[int, toyworld.Scene]] = {}
    seed = toyworld.HELD_OUT_SEED
    while len(chosen) < len(wanted):  # the first held-out seed that draws each wanted pair
        scene = toyworld.scene(seed)
        if (scene.color, scene.shape) in wanted and scene.caption not in chosen:
            chosen[scene.caption] = (seed, scene)
        seed += 1
    seed = toyworld.HELD_OUT_SEED
    two_shapes: dict[str, tuple[int, toyworld.Scene]] = {}
    while len(two_shapes) < TWO_SHAPE_SCENES:
        scene = toyworld.two_shape_scene(seed)
        two_shapes.setdefault(scene.caption, (seed, scene))
        seed += 1
    rows = []
    for function, scenes in (("scene", chosen), ("two_shape_scene", two_shapes)):
        for caption, (seed, scene) in sorted(scenes.items()):
            name = "_".join(word for word in caption.split() if word not in ("a", "an"))  # red_circle
            path = EXAMPLES / "toy" / f"{name}.png"
            scene.image.save(path, "PNG", optimize=True)
            size = f"{toyworld.IMAGE_SIZE}x{toyworld.IMAGE_SIZE} px"
            origin = f'"{caption}": generated by `toyworld.{function}({seed})` ({size}).'
            rows.append((path, origin, "Generated by this project's code; same licence as the project."))
    return rows


def make_speech() -> list[tuple[Path, str, str]]:
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    version = version.split(" Data")[0].strip()  # "eSpeak NG text-to-speech: 1.51"
    rows = []
    for sentence in SENTENCES:
        wav = subprocess.run([*ESPEAK, sentence], capture_output=True, check=True).stdout
        samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
        path = EXAMPLES / "speech" / (sentence.replace(" ", "_") + ".wav")
        sf.write(path, soxr.resample(samples, rate, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        command = " ".join(ESPEAK) + f' "{sentence}"'
        origin = (
            f'Speech "{sentence}", synthesised with `{command}` ({version}), resampled from {rate} Hz '
            f"to {SAMPLE_RATE} Hz with soxr and written as 16-bit mono WAV by scripts/make_assets.py."
        )
        licence = (
            "Our own output, made with espeak-ng (a GPL-3.0-or-later program, not distributed here); "
            "same licence as the project."
        )
        rows.append((path, origin, licence))
    path = EXAMPLES / "speech" / "silence.wav"
    sf.write(path, np.zeros(int(SILENCE_SECONDS * SAMPLE_RATE), np.float32), SAMPLE_RATE, subtype="PCM_16")
    origin = f"{SILENCE_SECONDS:g} s of digital silence, 16 kHz 16-bit mono, written by scripts/make_assets.py."
    rows.append((path, origin, "Generated by this project's code; same licence as the project."))
    return rows


def write_licences(rows: list[tuple[Path, str, str]]) -> None:
    lines = [
        "# Origins and licences of the files in assets/examples",
        "",
        "Generated by `scripts/make_assets.py`; run it again to recreate every file listed here.",
        "",
        "The scikit-image sample photos are read from the installed `scikit-image` package, whose",
        "`LICENSE.txt` puts the package under BSD-3-Clause; the licence of each photo below is quoted",
        "from the docstring of its `skimage.data` function.",
        "",
        "| file | origin | licence |",
        "| --- | --- | --- |",
    ]
    for path, origin, licence in rows:
        lines.append(f"| `{path.relative_to(ASSETS).as_posix()}` | {origin} | {licence} |")
    (ASSETS / "LICENSES.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
