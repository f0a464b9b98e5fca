"""What the shared CLIP space answers: search over galleries, zero-shot labels, and where in an image words fit.

    retrieval.py     the search pipeline: texts, images or composed queries in, the top-k gallery images out
    gallery.py       a gallery: its images, their embeddings and a nearest-neighbour index per model; built from
                     embedding_cache.py  embeddings on disk (SQLite), by model and image hash
                     encoding.py         many images through the space, decoded on a low-priority thread
                     uploads.py          the upload store: a private folder per gallery, quotas, sweeping
                     archives.py         zips of images read safely (zip bombs, unsafe names)
                     index_store.py      the index per model: exact, or FAISS saved on disk for large galleries
    vector_index.py  exact search for small galleries, FAISS (HNSW, IVF) for large ones
    classify.py      zero-shot classification: an image against labels written as prompts
    heatmap.py       a relevance map from scored crops (shown by the Ask tab; it lives here because it only asks
                     the CLIP space, like everything else in this package)

Nothing here imports torch at import time: the UI imports these types before any model loads.
"""

from .gallery import Gallery
from .retrieval import Hit, Query, SearchOptions, SearchResult

__all__ = ["Gallery", "Hit", "Query", "SearchOptions", "SearchResult"]
