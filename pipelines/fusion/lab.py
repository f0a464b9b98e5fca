"""The Fusion lab: train the fusion heads (``heads.py``) on a handful of labelled (image, text) examples, over the
frozen encoders of the shared CLIP space, and measure each head on held-out examples.

    from pipelines.fusion import lab
    examples = [lab.Example("cat.jpg", "a cat", "match"), ...]
    result = lab.train(examples, lab.LabOptions(), shared_space())     # or iterate lab.training(...) for its steps
    result.scores["sum"].accuracy                                            # held-out, grouped 4-fold
    result.heads.save("my-heads/")                  # later: pipelines.load("fusion-head", "my-heads/")

Held-out accuracy is grouped k-fold (FOLDS): every example is predicted once by heads trained without its fold, and
examples that share an image or a text are held out together, so a head cannot pass by remembering one; when that
leaves fewer groups than folds (a few texts used by every image), only examples sharing an image stay together.
Embeddings are computed once per image or text and model, and cached in memory. torch is imported when training.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import numpy as np

from ..core.errors import InputError, ModelLoadError
from ..core.limits import FUSION_EXAMPLES_ENV, check_count, check_text, limits
from ..core.options import option, verify
from .cache import digest, embed_pairs

HEADS = ("image", "text", "sum", "concat", "late")  # as heads.HEADS (that module imports torch)
HEAD_TITLES = {
    "image": "image only",
    "text": "text only",
    "sum": "sum fusion",
    "concat": "concat fusion",
    "late": "late fusion",
}
FOLDS = 4  # held-out folds: each example is predicted by heads trained on the other three quarters
MIN_PER_LABEL = FOLDS  # examples each label needs: one per held-out fold
COLUMNS = ("image", "text", "label")  # of the examples table and of a CSV
CSV_BYTES = 2**20  # bytes of one examples CSV
CSV_FILES = 8  # examples CSVs in one training request (each uploaded or inside a zip)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Example:
    """One labelled example: an image (path, bytes or PIL image), a short text, and its label."""

    image: object
    text: str
    label: str
    name: str = ""  # how the visitor named the image (messages quote it); default: the path's file name

    @property
    def shown(self) -> str:
        if self.name:
            return self.name
        return Path(self.image).name if isinstance(self.image, (str, Path)) else "the image"


@dataclass(frozen=True)
class LabOptions:
    heads: tuple[str, ...] = HEADS  # which heads to train
    seed: int = option(
        0, low=0, high=2**31 - 1, whole=True, help="one seed, one outcome: it fixes the heads' start and the folds"
    )
    steps: int = option(300, low=20, high=2000, whole=True, help="full-batch training steps per head")

    def verify(self) -> None:
        verify(self)
        heads = tuple(self.heads or ())
        unknown = [head for head in heads if head not in HEADS]
        if unknown or not heads:
            got = ", ".join(map(str, heads)) or "none"
            raise InputError(f"Choose at least one head to train from: {', '.join(HEADS)}; got {got}")


# --- checking and reading examples ------------------------------------------------------------------------------


def check_examples(examples: Sequence[Example]) -> list[str]:
    """Refuse what cannot be trained on, before any model loads; returns the labels, sorted."""
    if not examples:
        raise InputError(
            "No examples were given. Fill in the table (image, text, label), upload a CSV or zip of them, "
            "or pick a bundled task"
        )
    check_count("examples", len(examples), limits().fusion_examples, FUSION_EXAMPLES_ENV)
    for row, example in enumerate(examples, start=1):
        if example.image is None or (isinstance(example.image, str) and not example.image.strip()):
            raise InputError(f"Row {row} has no image. Give every row an image (or remove the row)")
        if not isinstance(example.text, str) or not example.text.strip():
            raise InputError(f"Row {row} ({example.shown}) has no text. Give every row a short text")
        check_text(f"The text of row {row}", example.text)
        if not isinstance(example.label, str) or not example.label.strip():
            raise InputError(f"Row {row} ({example.shown}) has no label. Give every row a label")
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.label.strip()] = counts.get(example.label.strip(), 0) + 1
    if len(counts) < 2:
        raise InputError(
            f"Every example has the label {next(iter(counts))!r}: a head needs at least two labels to tell apart. "
            "Add examples of another label"
        )
    short = {label: count for label, count in sorted(counts.items()) if count < MIN_PER_LABEL}
    if short:
        listed = ", ".join(f"{label!r} has {count}" for label, count in short.items())
        raise InputError(
            f"Too few examples per label: {listed}. Each label needs at least {MIN_PER_LABEL} examples (one per "
            f"held-out fold of the {FOLDS}-fold check). Add more, or merge rare labels"
        )
    return sorted(counts)


def read_examples(rows: Sequence[Sequence] | None, files: Sequence | None = (), resolve=None) -> list[Example]:
    """Examples from table rows [image, text, label] plus uploaded files: images (named by file name in the rows),
    CSVs of image,text,label rows, and zips of both. ``resolve(name)`` finds an image the uploads lack (a bundled
    task's); a row naming an image found nowhere is refused. Blank rows are skipped."""
    from ..search.archives import check_not_a_bomb, open_zip, zip_entries  # the uploads' own safe zip reading

    images: dict[str, object] = {}  # file name (and name inside its zip) -> path or bytes
    table = [list(row) for row in rows or []]
    problems: list[str] = []
    unpacked = csvs = 0  # files taken out of zips; CSVs read

    def add_csv(data: bytes, name: str) -> None:
        """The CSV's rows into the table, refused as soon as the table would pass the example limit."""
        nonlocal csvs
        csvs += 1
        if csvs > CSV_FILES:
            raise InputError(f"More than {CSV_FILES} CSV files in one training. Put the examples in fewer CSVs")
        table.extend(_csv_rows(data, name, room=limits().fusion_examples - len(table)))

    for file in files or []:
        path = Path(file)
        suffix = path.suffix.lower()
        if suffix == ".zip":
            with open_zip(path) as archive:
                check_not_a_bomb(archive)
                for name, data in zip_entries(archive, problems):
                    if name.lower().endswith(".csv"):
                        add_csv(data, name)
                        continue
                    images[name] = images[PurePosixPath(name).name] = data
                    unpacked += 1
                    if unpacked > limits().fusion_examples:  # each is kept in memory until the training ends
                        raise InputError(
                            f"'{path.name}' holds more than {limits().fusion_examples} files; a training takes at "
                            f"most {limits().fusion_examples} examples ({FUSION_EXAMPLES_ENV}). Zip fewer images"
                        )
        elif suffix == ".csv":
            with path.open("rb") as handle:
                add_csv(handle.read(CSV_BYTES + 1), path.name)
        else:
            images[path.name] = str(path)
    table = [row for row in table if any(str(cell or "").strip() for cell in row[:3])]
    check_count("examples", len(table), limits().fusion_examples, FUSION_EXAMPLES_ENV)  # before any image is read
    examples = []
    for number, row in enumerate(table, start=1):
        name, text, label = ([str(cell).strip() if cell is not None else "" for cell in row] + ["", "", ""])[:3]
        image = images.get(name) or images.get(PurePosixPath(name).name) if name else None
        if name and image is None and resolve is not None:
            found = resolve(name)
            image = str(found) if found is not None else None
        if name and image is None:
            raise InputError(
                f"Row {number} names the image {name!r}, which is not among the uploaded files"
                + (f" (skipped: {'; '.join(problems[:3])})" if problems else "")
                + ". Upload it with the others, or correct the name in the table"
            )
        examples.append(Example(image, text, label, name))
    return examples


def _csv_rows(data: bytes, name: str, room: int) -> list[list[str]]:
    """The image,text,label rows of one CSV; refused past ``room`` rows (read no further), too big or malformed."""
    if len(data) > CSV_BYTES:
        raise InputError(f"'{name}' is over {CSV_BYTES // 2**10} KB. Send at most {limits().fusion_examples} rows")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"'{name}' is not UTF-8 text. Save it as a UTF-8 CSV") from error
    reader = csv.reader(io.StringIO(text))
    try:
        header = [cell.strip().lower() for cell in next(reader, [])]
        if not set(COLUMNS) <= set(header):
            raise InputError(
                f"'{name}' needs a header row naming the columns {', '.join(COLUMNS)}; its first row is "
                f"{', '.join(header[:5])[:200] or 'empty'}"
            )
        where = [header.index(column) for column in COLUMNS]
        rows = []
        for row in reader:
            if len(rows) >= room:
                raise InputError(
                    f"Too many examples: '{name}' brings them past {limits().fusion_examples}; the limit is "
                    f"{limits().fusion_examples} examples per request ({FUSION_EXAMPLES_ENV}). Send fewer rows"
                )
            rows.append([row[i] if i < len(row) else "" for i in where])
    except csv.Error as error:  # a malformed row, or a cell longer than the csv module reads
        raise InputError(f"'{name}' is not a readable CSV (line {reader.line_num}). Check its quoting") from error
    return rows


# --- held-out folds ---------------------------------------------------------------------------------------------


def folds(image_ids: Sequence[str], texts: Sequence[str], seed: int, k: int = FOLDS) -> tuple[np.ndarray, str]:
    """A fold number per example, and how the examples were grouped (said beside the accuracies)."""
    groups = _groups(image_ids, [" ".join(text.lower().split()) for text in texts])
    split = f"held out by grouped {k}-fold: examples sharing an image or a text are held out together"
    if len(set(groups)) < k:
        groups = _groups(image_ids, [str(i) for i in range(len(image_ids))])
        split = f"held out by grouped {k}-fold: examples sharing an image are held out together"
    if len(set(groups)) < k:
        raise InputError(
            f"The examples use {len(set(groups))} different images; the {k}-fold held-out check needs at least {k}. "
            "Add examples with other images"
        )
    rng = np.random.default_rng(seed)
    members: dict[int, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    order = [list(members)[i] for i in rng.permutation(len(members))]
    order.sort(key=lambda group: -len(members[group]))  # stable: equal sizes keep the seeded order
    assignment, sizes = np.zeros(len(groups), dtype=np.int64), [0] * k
    for group in order:
        fold = min(range(k), key=lambda f: (sizes[f], f))
        assignment[members[group]] = fold
        sizes[fold] += len(members[group])
    return assignment, split


def _groups(image_ids: Sequence[str], texts: Sequence[str]) -> list[int]:
    """Connected components of examples linked by a shared image id or a shared text."""
    parent = list(range(len(image_ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keys in (image_ids, texts):
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key in first:
                parent[root(i)] = root(first[key])
            else:
                first[key] = i
    return [root(i) for i in range(len(image_ids))]


# --- training ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Progress of a training run: ``phase`` is "encoding", "training" (the head on all examples, ``loss`` after
    ``step``; step 0 is every head's loss before training, reported for all heads first) or "held-out" (fold
    ``fold`` of FOLDS)."""

    head: str
    phase: str
    step: int = 0
    loss: float | None = None
    fold: int = 0
    done: int = 0  # head trainings finished so far
    total: int = 0  # head trainings in the run


@dataclass(frozen=True)
class HeadScore:
    head: str
    accuracy: float  # held-out
    correct: int
    total: int
    confusion: np.ndarray  # [true label, predicted label] counts, labels in LabResult.labels order


@dataclass(frozen=True)
class LabResult:
    heads: object  # heads.FusionHeads, trained on all examples, encoder attached
    labels: list[str]
    scores: dict[str, HeadScore]
    losses: dict[str, list[float]]  # per head, the training loss after each step (on all examples)
    split: str  # how held-out accuracy was measured
    chance: float  # the most common label's share: what always guessing it scores
    examples: int
    options: LabOptions = field(default_factory=LabOptions)

    def best(self) -> str:
        return max(self.scores, key=lambda head: (self.scores[head].accuracy, -HEADS.index(head)))


def training(examples: Sequence[Example], options: LabOptions, space) -> Iterator[Step | LabResult]:
    """Train the chosen heads, yielding a Step as each step or fold ends, then the LabResult.

    ``space``: the CLIP space to encode with (``pipelines.fusion.shared_space()``). Each head is trained on all
    examples (the exported head, whose loss curve the Steps carry), then once per fold for its held-out accuracy.
    Checks come before any encoding. The same examples and seed give the same heads and numbers."""
    from . import heads as trainable

    options.verify()
    labels = check_examples(examples)
    kinds = [kind for kind in HEADS if kind in options.heads]
    total = len(kinds) * (FOLDS + 1)
    yield Step("", "encoding", total=total)
    names = [example.shown for example in examples]
    images, texts = embed_pairs(space, [e.image for e in examples], [e.text for e in examples], names)
    targets = np.array([labels.index(e.label.strip()) for e in examples])
    assignment, split = folds([digest(e.image) for e in examples], [e.text for e in examples], options.seed)
    recipe = trainable.Recipe(steps=options.steps)
    trained, losses, scores, done = {}, {}, {}, 0
    for kind in kinds:  # step 0: where each head starts, so a plot knows every curve from its first frame
        start = trainable.initial_loss(kind, images, texts, targets, len(labels), seed=options.seed, recipe=recipe)
        yield Step(kind, "training", 0, start, done=done, total=total)
    for kind in kinds:
        losses[kind] = []
        fitting = trainable.fitting(kind, images, texts, targets, len(labels), seed=options.seed, recipe=recipe)
        while True:
            try:
                step, loss = next(fitting)
            except StopIteration as finished:
                trained[kind] = finished.value
                break
            losses[kind].append(loss)
            yield Step(kind, "training", step, loss, done=done, total=total)
        done += 1
        predicted = np.zeros(len(examples), dtype=np.int64)
        for fold in range(FOLDS):
            held = assignment == fold
            head = trainable.fit(
                kind, images[~held], texts[~held], targets[~held], len(labels), seed=options.seed, recipe=recipe
            )
            predicted[held] = trainable.probabilities(head, images[held], texts[held]).argmax(-1)
            done += 1
            yield Step(kind, "held-out", fold=fold + 1, done=done, total=total)
        confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
        np.add.at(confusion, (targets, predicted), 1)
        correct = int((predicted == targets).sum())
        scores[kind] = HeadScore(kind, correct / len(examples), correct, len(examples), confusion)
    config = {
        "format": trainable.FORMAT,
        "version": trainable.VERSION,
        "encoder": space.spec.name,
        "encoder_fingerprint": _fingerprint(space),
        "dim": int(images.shape[1]),
        "hidden": recipe.hidden,
        "seed": options.seed,
        "steps": options.steps,
        "examples": len(examples),
        "split": split,
        "held_out_accuracy": {kind: round(score.accuracy, 4) for kind, score in scores.items()},
    }
    chance = max(np.bincount(targets)) / len(examples)
    heads = trainable.FusionHeads(trained, labels, config, space)
    yield LabResult(heads, labels, scores, losses, split, float(chance), len(examples), options)


def train(examples: Sequence[Example], options: LabOptions, space) -> LabResult:
    """``training`` run to the end: the LabResult."""
    *_, result = training(examples, options, space)
    return result


def _fingerprint(space) -> str:
    """The part of the space's key that names its weights (not the precision, which barely moves an embedding)."""
    return space.key.rpartition("@")[2].rpartition("/")[0]


def attach(heads, space):
    """``heads`` (read from files) on ``space``, the encoder their config names; refused when its weights are not
    the ones the heads were trained on."""
    expected = heads.config.get("encoder_fingerprint")
    if expected and expected != _fingerprint(space):
        raise ModelLoadError(
            str(heads.config.get("encoder")),
            "the fusion heads were trained on embeddings of other weights than the ones that loaded under that name",
            "Load the checkpoint the heads were trained with, or train them again in the Fusion lab",
        )
    heads.space = space
    return heads
