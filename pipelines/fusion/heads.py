"""The Fusion lab's trainable heads: small torch modules over frozen embeddings of the shared CLIP space, their
seeded training, and the trained set (``FusionHeads``) that predicts, saves (safetensors + JSON) and loads.

Every head reads one image embedding and one text embedding and returns logits over the task's labels:

    image    an MLP on the image embedding alone
    text     an MLP on the text embedding alone
    sum      each modality projected to a hidden size and added, then a ReLU and a linear head (the first article's
             ``fused = text_emb + image_emb``)
    concat   the two embeddings concatenated into one linear layer, then a ReLU and a linear head (the second
             article's ``nn.Linear(1000 + 768, 1)`` on ``cat(text, image)``)
    late     one MLP per modality, each trained on its own; their probabilities averaged

Why a ReLU after fusion: on frozen encoders a linear layer after sum or concat is additive in the two modalities
(``w @ cat(t, i) = w_t @ t + w_i @ i``), and no additive score can tell whether the two agree when every text and
every image is as often a match as not. One hidden layer after the fusion is the smallest change that can. (With it,
sum and concat can express the same functions; they differ in how they start.) Late fusion stays additive on
purpose: it is the baseline that cannot see agreement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import InputError, ModelLoadError
from .cache import embed_pairs

HEADS = ("image", "text", "sum", "concat", "late")  # the order the lab trains and shows them in
HIDDEN = 64  # units after fusion (and in each single-modality MLP): enough for 40 examples, trains in a second
FORMAT = "mm-fusion-heads"  # what the JSON config says it is
VERSION = 1
WEIGHTS_FILE, CONFIG_FILE = "fusion_heads.safetensors", "fusion_heads.json"


def _linear(inputs: int, outputs: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear with torch's default initialisation range, drawn from ``generator`` (never the global RNG, which
    other requests share)."""
    layer = nn.Linear(inputs, outputs)
    bound = 1 / inputs**0.5
    with torch.no_grad():
        nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class Head(nn.Module):
    """A head over (image, text) embeddings; ``forward`` gives logits, ``loss`` what its training minimises."""

    def loss(self, image: torch.Tensor, text: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(self(image, text), target)

    def probabilities(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self(image, text).softmax(-1)


class SingleModality(Head):
    def __init__(self, modality: str, dim: int, classes: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.modality = modality
        self.mlp = nn.Sequential(_linear(dim, hidden, generator), nn.ReLU(), _linear(hidden, classes, generator))

    def forward(self, image, text):
        return self.mlp(image if self.modality == "image" else text)


class SumFusion(Head):
    def __init__(self, dim: int, classes: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.image = _linear(dim, hidden, generator)
        self.text = _linear(dim, hidden, generator)
        self.out = _linear(hidden, classes, generator)

    def forward(self, image, text):
        return self.out(torch.relu(self.image(image) + self.text(text)))


class ConcatFusion(Head):
    def __init__(self, dim: int, classes: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.fused = _linear(2 * dim, hidden, generator)
        self.out = _linear(hidden, classes, generator)

    def forward(self, image, text):
        return self.out(torch.relu(self.fused(torch.cat([text, image], dim=-1))))


class LateFusion(Head):
    def __init__(self, dim: int, classes: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.image = SingleModality("image", dim, classes, hidden, generator)
        self.text = SingleModality("text", dim, classes, hidden, generator)

    def probabilities(self, image, text):
        return (self.image.probabilities(image, text) + self.text.probabilities(image, text)) / 2

    def forward(self, image, text):  # log of the averaged probabilities: its argmax and softmax agree with them
        return self.probabilities(image, text).clamp_min(1e-12).log()

    def loss(self, image, text, target):  # each modality's head learns on its own; their mean, on the others' scale
        return (self.image.loss(image, text, target) + self.text.loss(image, text, target)) / 2


def build(kind: str, dim: int, classes: int, *, hidden: int = HIDDEN, seed: int = 0) -> Head:
    """A fresh head of ``kind`` (one of HEADS), initialised from ``seed`` alone."""
    generator = torch.Generator().manual_seed(seed)
    if kind in ("image", "text"):
        return SingleModality(kind, dim, classes, hidden, generator)
    makers = {"sum": SumFusion, "concat": ConcatFusion, "late": LateFusion}
    if kind not in makers:
        raise InputError(f"Unknown head {kind!r}; expected some of: {', '.join(HEADS)}")
    return makers[kind](dim, classes, hidden, generator)


@dataclass(frozen=True)
class Recipe:
    """How every head is trained: full-batch AdamW on the cached embeddings, a fixed number of steps."""

    steps: int = 300
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    hidden: int = HIDDEN


def fitting(
    kind: str,
    images: np.ndarray,
    texts: np.ndarray,
    targets: np.ndarray,
    classes: int,
    *,
    seed: int,
    recipe: Recipe = Recipe(),
) -> Generator[tuple[int, float], None, Head]:
    """Trains a head of ``kind`` on (N, D) image and text embeddings and N label indices, yielding (step, loss)
    after each step; returns the trained head. The same inputs and seed give the same head."""
    head = build(kind, images.shape[1], classes, hidden=recipe.hidden, seed=seed)
    image, text = torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(texts, dtype=torch.float32)
    target = torch.as_tensor(targets, dtype=torch.long)
    optimiser = torch.optim.AdamW(head.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    head.train()
    for step in range(1, recipe.steps + 1):
        optimiser.zero_grad()
        loss = head.loss(image, text, target)
        loss.backward()
        optimiser.step()
        yield step, float(loss.detach())
    return head.eval()


def initial_loss(
    kind: str, images: np.ndarray, texts: np.ndarray, targets: np.ndarray, classes: int, *, seed: int, recipe=Recipe()
) -> float:
    """The loss of the head ``fitting`` starts from (the same seed), before any step."""
    head = build(kind, images.shape[1], classes, hidden=recipe.hidden, seed=seed)
    with torch.no_grad():
        image, text = torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(texts, dtype=torch.float32)
        return float(head.loss(image, text, torch.as_tensor(targets, dtype=torch.long)))


def fit(kind: str, images: np.ndarray, texts: np.ndarray, targets: np.ndarray, classes: int, **kwargs) -> Head:
    """``fitting`` run to the end: the trained head."""
    steps = fitting(kind, images, texts, targets, classes, **kwargs)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value


def probabilities(head: Head, images: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """(N, classes) probabilities of ``head`` for N embedding pairs."""
    with torch.inference_mode():
        image, text = torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(texts, dtype=torch.float32)
        return head.probabilities(image, text).numpy()


@dataclass(frozen=True)
class HeadPrediction:
    head: str  # one of HEADS
    label: str  # the most probable label
    confidence: float  # its probability
    probabilities: dict[str, float]  # every label's


@dataclass(frozen=True)
class FusionResult:
    """What every head says about one (image, text) pair, in HEADS order."""

    text: str
    predictions: tuple[HeadPrediction, ...]

    def by_head(self) -> dict[str, HeadPrediction]:
        return {prediction.head: prediction for prediction in self.predictions}


class FusionHeads:
    """Trained heads over one encoder's embeddings, with the labels they predict.

    ``heads([(image, text), ...])`` encodes each pair with the attached CLIP space and returns one FusionResult per
    pair. ``save`` writes fusion_heads.safetensors and fusion_heads.json; ``read`` reads them back (tensors and JSON
    only: no code runs).
    """

    def __init__(self, heads: dict[str, Head], labels: Sequence[str], config: dict, space=None):
        self.heads, self.labels, self.config, self.space = dict(heads), list(labels), dict(config), space

    @property
    def description(self) -> str:
        return f"fusion heads ({', '.join(self.heads)}) over {self.config.get('encoder', '?')}: {self.labels}"

    def predict_embeddings(self, images: np.ndarray, texts: np.ndarray) -> dict[str, np.ndarray]:
        """{head: (N, labels) probabilities} for N embedding pairs."""
        return {kind: probabilities(head, images, texts) for kind, head in self.heads.items()}

    def __call__(self, pairs: Sequence[tuple[object, str]]) -> list[FusionResult]:
        if self.space is None:
            raise InputError("These heads have no encoder attached; load them with pipelines.load('fusion-head', path)")
        images, texts = embed_pairs(self.space, [image for image, _ in pairs], [text for _, text in pairs])
        scores = self.predict_embeddings(images, texts)
        results = []
        for row, (_, text) in enumerate(pairs):
            predictions = []
            for kind, probs in scores.items():
                best = int(probs[row].argmax())
                shares = {label: float(p) for label, p in zip(self.labels, probs[row])}
                predictions.append(HeadPrediction(kind, self.labels[best], float(probs[row][best]), shares))
            results.append(FusionResult(text, tuple(predictions)))
        return results

    def save(self, folder: Path | str) -> list[Path]:
        """Writes the weights (safetensors) and the config (JSON) into ``folder``; returns both paths."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{kind}.{name}": value.detach().contiguous().cpu()
            for kind, head in self.heads.items()
            for name, value in head.state_dict().items()
        }
        weights, config = folder / WEIGHTS_FILE, folder / CONFIG_FILE
        save_file(tensors, weights, metadata={"format": FORMAT})
        config.write_text(json.dumps({**self.config, "heads": list(self.heads), "labels": self.labels}, indent=2))
        return [weights, config]

    @classmethod
    def read(cls, path: Path | str) -> "FusionHeads":
        """Heads saved by ``save``, from their folder or either file, without an encoder attached."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        name = str(path)
        folder = Path(path).expanduser()
        folder = folder if folder.is_dir() else folder.parent
        weights, config_file = folder / WEIGHTS_FILE, folder / CONFIG_FILE
        if not (weights.is_file() and config_file.is_file()):
            raise ModelLoadError(
                name,
                f"it has no {WEIGHTS_FILE} and {CONFIG_FILE}",
                "Give the folder the Fusion lab's two downloaded files were saved in",
            )
        try:
            config = json.loads(config_file.read_text())
            if config.get("format") != FORMAT or config.get("version") != VERSION:
                raise ValueError(f"format {config.get('format')!r} version {config.get('version')!r}")
            kinds, labels = list(config["heads"]), [str(label) for label in config["labels"]]
            dim, hidden = int(config["dim"]), int(config["hidden"])
            if not kinds or any(kind not in HEADS for kind in kinds) or len(labels) < 2:
                raise ValueError(f"heads {kinds!r}, labels {labels!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ModelLoadError(
                name, f"{CONFIG_FILE} is not a Fusion lab config ({error})", "Download the heads again"
            ) from error
        try:
            tensors = load_file(weights)
        except (SafetensorError, OSError) as error:
            raise ModelLoadError(name, f"{WEIGHTS_FILE} is damaged ({error})", "Download the heads again") from error
        heads = {}
        for kind in kinds:
            head = build(kind, dim, len(labels), hidden=hidden)
            own = {key.removeprefix(f"{kind}."): value for key, value in tensors.items() if key.startswith(f"{kind}.")}
            try:
                head.load_state_dict(own, strict=True)
            except RuntimeError as error:
                raise ModelLoadError(
                    name, f"the weights do not fit the {kind} head its config describes", "Download the heads again"
                ) from error
            heads[kind] = head.eval()
        return cls(heads, labels, config)
