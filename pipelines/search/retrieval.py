"""Search a gallery in the shared CLIP space: by text, by image, or by both (composed), optionally away from a text.

searcher = pipelines.load("search")
[result] = searcher(["a red circle"], top_k=3)                                  # text
[result] = searcher([Query(image="cat.jpg")])                                   # image -> images
[result] = searcher([Query(image="red_circle.png", text="blue", image_weight=0.5)])   # composed
[result] = searcher([Query(text="a circle", negative="red")])                   # ... but not red
[result] = searcher([Query(vector=embedding)], gallery=my_gallery)              # an embedding computed elsewhere
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import runtime
from ..core.base import Pipeline
from ..core.budget import Deadline
from ..core.errors import InputError
from ..core.limits import limits
from ..core.options import ANY, option, verify
from ..core.registry import ModelSpec
from ..fusion.operators import early_fusion
from ..fusion.space import OPEN_CLIP_FILES, ClipSpace
from .gallery import Gallery, Matches, bundled

if TYPE_CHECKING:
    import torch

MAX_TOP_K = 100


@dataclass(frozen=True)
class Query:
    """One search. Give text, an image, both (a composed query), or a vector already in the CLIP space."""

    text: str | None = option(None, kind=ANY, help="words to look for (checked, with what to do, when searched)")
    image: Any = option(None, kind=ANY, help="an image to look for: path, bytes, PIL image or array")
    vector: Any = option(None, kind=ANY, help="a unit embedding from ClipSpace (e.g. of an image already encoded)")
    image_weight: float = option(
        0.5, low=0, high=1, step=0.05, help="composed queries: 0 = only the text counts, 1 = only the image"
    )
    negative: str | None = option(None, kind=ANY, help='move away from this text ("blurry")')
    negative_weight: float = option(0.5, low=0, high=1, step=0.05, help="how far: 0 = ignore the negative text")

    def verify(self) -> None:
        if self.text is None and self.image is None and self.vector is None:
            raise InputError("A query needs text, an image or a vector; got none. Type a few words or give an image")
        verify(self)


@dataclass(frozen=True)
class Hit:
    path: str
    label: str  # file name without its suffix, underscores as spaces
    score: float  # cosine similarity in the CLIP space (of the fused query, for composed queries)


@dataclass(frozen=True)
class SearchResult:
    query: str  # what was searched, in words
    hits: tuple[Hit, ...]
    notices: tuple[str, ...] = ()  # what the user should know: a text cut to the model's context, a small gallery


@dataclass(frozen=True)
class SearchOptions:
    top_k: int = option(5, low=1, high=MAX_TOP_K, whole=True, slider=(1, 48), help="images per query, best first")
    gallery: Gallery | None = option(None, kind=ANY, help="where to look (a Gallery); none = the bundled examples")
    encode_seconds: float | None = option(
        None,
        low=0,
        optional=True,
        help="seconds a search may spend encoding gallery images new to the model (None: no limit); past them it "
        "searches those encoded, and the next search encodes the rest",
    )

    def verify(self) -> None:
        verify(self)
        if self.gallery is not None and not isinstance(self.gallery, Gallery):
            raise InputError(f"gallery must be a pipelines.search.gallery.Gallery; got {type(self.gallery).__name__}")


class SearchPipeline(Pipeline):
    """Queries (texts or Query objects) in, the top-k gallery images out (one SearchResult per query)."""

    Options = SearchOptions
    hub_files = OPEN_CLIP_FILES

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, space: ClipSpace):
        super().__init__(spec, device, dtype)
        self.space = space

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "SearchPipeline":
        space = runtime.cache.get(
            ("clip", spec.source, spec.revision, str(device), str(dtype)), lambda: ClipSpace.load(spec, device, dtype)
        )
        return cls(spec, device, dtype, space)

    @property
    def gallery(self) -> Gallery:
        """The bundled examples: what a search without ``gallery=`` looks in."""
        return bundled()

    def preprocess(self, queries: list, options: SearchOptions) -> list[tuple[Query, tuple[str, ...]]]:
        prepared = []
        for query in queries:
            query = _as_query(query)
            notices = []
            if query.text is not None:
                text, notice = self._clean_text(query.text, "search query")
                query, notices = _replace(query, text=text), [notice] if notice else []
            if isinstance(query.negative, str) and query.negative.strip():
                negative, notice = self._clean_text(query.negative, "negative text")
                query = _replace(query, negative=negative)
                notices += [notice] if notice else []
            else:
                query = _replace(query, negative=None)
            prepared.append((query, tuple(notices)))
        return prepared

    def _forward(
        self, batch: list[tuple[Query, tuple[str, ...]]], options: SearchOptions, deadline: Deadline | None = None
    ):
        gallery = options.gallery if options.gallery is not None else self.gallery
        vectors = self.query_vectors([query for query, _ in batch])
        if deadline is None and options.encode_seconds is not None:  # the batcher's joinable form of the same limit
            deadline = Deadline(options.encode_seconds)
        return gallery.find(self.space, vectors, options.top_k, deadline=deadline)

    def postprocess(self, outputs: Matches, batch, options: SearchOptions) -> list[SearchResult]:
        size, results = outputs.searched, []
        for (query, notices), found in zip(batch, outputs.rows):
            if outputs.notice:
                notices += (outputs.notice,)
            elif options.top_k > size:
                notices += (
                    f"The gallery holds {size} image{'s' * (size != 1)}, fewer than the {options.top_k} "
                    f"results asked for: showing all of them.",
                )
            hits = tuple(Hit(item.path, item.label, score) for item, score in found)
            results.append(SearchResult(_describe(query), hits, notices))
        return results

    def query_vectors(self, queries: list[Query]) -> np.ndarray:
        """(Q, D) unit query vectors: texts and images embedded in one batch each, then fused."""
        texts = [q.text for q in queries if q.text is not None] + [q.negative for q in queries if q.negative]
        text_vectors = iter(self.space.embed_texts(texts)) if texts else iter(())
        image_vectors = iter(self.space.embed_images([q.image for q in queries if q.image is not None]))
        vectors = []
        for query in queries:
            parts, weights = [], []
            if query.vector is not None:
                parts.append(_as_vector(query.vector, self.space)), weights.append(1.0)
            both = query.image is not None and query.text is not None  # composed: the slider weighs the two
            if query.image is not None:
                parts.append(next(image_vectors)), weights.append(query.image_weight if both else 1.0)
            if query.text is not None:
                parts.append(next(text_vectors)), weights.append(1 - query.image_weight if both else 1.0)
            vector = early_fusion(parts, weights)
            vectors.append(vector)
        for i, query in enumerate(queries):  # negatives come after every positive text, in order
            if query.negative:
                vectors[i] = early_fusion([vectors[i], next(text_vectors)], [1.0, -query.negative_weight])
        return np.stack(vectors)

    def _clean_text(self, text, what: str) -> tuple[str, str]:
        """The text with whitespace collapsed, and a notice if the model will read only its beginning."""
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"The {what} is empty (got {text!r}). Type a few words, e.g. 'a red circle'")
        # Cut at the text limit before anything else reads it: the model reads far fewer characters anyway.
        chars = limits().text_chars
        cut = len(text.strip()) > chars
        text = " ".join(text[:chars].split())
        if not any(unicodedata.category(c)[0] in "LN" for c in text):
            raise InputError(
                f"The {what} {text!r} has no letters or digits (only symbols or emoji), so it says "
                "nothing the model can search for. Type a few words, e.g. 'a red circle'"
            )
        limit = self.space.context_length
        if cut or self.space.token_count(text) > limit:
            start = " ".join(text.split()[:8])
            return text, (
                f"The {what} is longer than the {limit} tokens "
                f"{self.spec.name} reads: only its beginning (\u201c{start} \u2026\u201d) was used."
            )
        return text, ""


def _as_query(query) -> Query:
    if isinstance(query, Query):
        query.verify()
        return query
    if isinstance(query, np.ndarray):
        return Query(vector=query)
    if query is None or isinstance(query, str):
        return Query(text=query if query is not None else "")
    raise InputError(f"Expected a text, a Query or a vector; got {type(query).__name__}")


def _replace(query: Query, **changes) -> Query:
    from dataclasses import replace

    return replace(query, **changes)


def _as_vector(vector, space: ClipSpace) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(vector)) or not np.any(vector):
        raise InputError("The query vector is all zeros or not finite; pass an embedding from ClipSpace")
    return vector


def _describe(query: Query) -> str:
    parts = []
    if query.vector is not None:
        parts.append("an embedding")
    if query.image is not None:
        parts.append("an image" if not isinstance(query.image, str) else f"image {query.image.rsplit('/', 1)[-1]}")
    if query.text is not None:
        parts.append(query.text)
    text = " + ".join(parts)
    return text + (f", not {query.negative}" if query.negative else "")
