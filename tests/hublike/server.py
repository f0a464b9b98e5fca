"""A Hugging Face Hub look-alike on loopback, answering what the installed ``huggingface_hub`` (2.4) asks.

Repos live on disk as ``ROOT/{owner}/{name}/{revision}/<files>``, one directory per revision. A revision's directory
name is the revision quoted for a path segment (``urllib.parse.quote(revision, safe="")``): ``main`` stays ``main``,
the conversion branch ``refs/pr/3`` is stored as ``refs%2Fpr%2F3``. ``write_repo`` lays this out. A revision's commit
sha is a stable hash of the repo id and its files, so the client can also ask for a revision by that sha.

Routes (the ones ``snapshot_download``, ``hf_hub_download``, ``model_info`` and ``list_repo_tree`` use):

- ``GET /api/models/{owner}/{name}[/revision/{rev}]`` → ``id``, ``sha``, ``siblings`` (+ sizes, LFS with ``?blobs``);
- ``GET /api/models/{owner}/{name}/tree/{rev}[/{path}]?recursive=`` → entries ``type, oid, size, path[, lfs]``, paged
  with a ``Link: <...>; rel="next"`` header past ``tree_page_size`` entries, as the Hub pages;
- ``HEAD``/``GET /{owner}/{name}/resolve/{rev}/{path}`` → the file with ``ETag`` (git blob sha1), ``X-Repo-Commit``
  and ``Content-Length``; an LFS file (weights, or anything over 10 MiB) → ``302`` to a second origin (another
  loopback port, as the Hub redirects to its CDN) with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``. Both origins
  honour ``Range``. ``refs/pr/3`` may come quoted (``refs%2Fpr%2F3``, as the client sends it) or plain.
- errors as the Hub sends them: ``404`` + ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``;
  a repo with a ``.private`` marker file answers ``401`` + ``RepoNotFound`` (a private repo passes for a missing one);
  one with a ``.gated`` marker answers ``403`` + ``GatedRepo`` on its files (its info stays public, as on the Hub).

Other paths (the client also asks e.g. ``/api/agent-harnesses``) get a plain 404; every request lands in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

# File names the Hub stores in LFS (its default .gitattributes), and the size above which anything goes to LFS.
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".h5",
    ".model",
    ".msgpack",
    ".pt",
    ".pth",
    ".ckpt",
    ".onnx",
    ".npz",
    ".ot",
    ".tflite",
    ".pkl",
    ".pickle",
    ".zip",
    ".gz",
    ".tar",
    ".arrow",
    ".parquet",
)
LFS_MIN_SIZE = 10 * 1024 * 1024  # bytes
TREE_PAGE_SIZE = 1000  # entries per tree page, the Hub's cap
COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def revision_dirname(revision: str) -> str:
    """The directory name a revision is stored under (``refs/pr/3`` → ``refs%2Fpr%2F3``)."""
    return quote(revision, safe="")


def write_repo(root: Path, repo_id: str, files: dict[str, bytes | str | Path], revision: str = "main") -> Path:
    """Lay out one revision of a repo under ``root``: ``{path in repo: bytes, text or a file to copy}``.

    Replaces whatever that revision held before; returns the revision's directory.
    """
    if repo_id.count("/") != 1:
        raise ValueError(f"expected a repo id 'owner/name', got {repo_id!r}")
    directory = Path(root) / repo_id / revision_dirname(revision)
    if directory.exists():
        shutil.rmtree(directory)
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        elif isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)
    directory.mkdir(parents=True, exist_ok=True)  # an empty revision is still a revision
    return directory


@dataclass(frozen=True)
class FileInfo:
    path: str  # in the repo, with "/"
    local: Path
    size: int
    git_oid: str  # sha1 of the git blob (of the LFS pointer for LFS files), the Hub's ETag for small files
    sha256: str
    lfs: bool

    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Store:
    """Reads repos from disk; hashes each file once per (size, mtime)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._hashes: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.blobs: dict[str, Path] = {}  # sha256 -> file, for the LFS origin

    def repo_dir(self, repo_id: str) -> Path | None:
        directory = self.root / repo_id
        return directory if repo_id.count("/") == 1 and directory.is_dir() else None

    def revisions(self, repo_dir: Path) -> dict[str, Path]:
        return {unquote(d.name): d for d in sorted(repo_dir.iterdir()) if d.is_dir()}

    def files(self, repo_id: str, rev_dir: Path) -> list[FileInfo]:
        infos = []
        for local in sorted(p for p in rev_dir.rglob("*") if p.is_file()):
            path = local.relative_to(rev_dir).as_posix()
            stat = local.stat()
            key = (str(local), stat.st_size, stat.st_mtime_ns)
            with self._lock:
                hashes = self._hashes.get(key)
            if hashes is None:
                data = local.read_bytes()
                hashes = (_git_oid(data), hashlib.sha256(data).hexdigest())
                with self._lock:
                    self._hashes[key] = hashes
            lfs = path.endswith(LFS_SUFFIXES) or stat.st_size > LFS_MIN_SIZE
            info = FileInfo(path, local, stat.st_size, hashes[0], hashes[1], lfs)
            if lfs:
                info = FileInfo(path, local, stat.st_size, _git_oid(info.pointer()), hashes[1], lfs)
                self.blobs[info.sha256] = local
            infos.append(info)
        return infos

    def commit_sha(self, repo_id: str, files: list[FileInfo]) -> str:
        digest = hashlib.sha1(repo_id.encode())
        for f in files:
            digest.update(f"\0{f.path}\0{f.sha256}".encode())
        return digest.hexdigest()

    def resolve(self, repo_id: str, rev: str) -> tuple[str, Path, list[FileInfo]] | None:
        """(commit sha, revision directory, files) for a branch name or a commit sha; None if unknown."""
        repo_dir = self.root / repo_id
        revisions = self.revisions(repo_dir)
        if rev in revisions:
            files = self.files(repo_id, revisions[rev])
            return self.commit_sha(repo_id, files), revisions[rev], files
        if COMMIT_RE.fullmatch(rev):
            for rev_dir in revisions.values():
                files = self.files(repo_id, rev_dir)
                if self.commit_sha(repo_id, files) == rev:
                    return rev, rev_dir, files
        return None


class _Error(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range; None for the whole file; ValueError if unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header.removeprefix("bytes=").strip().partition("-")
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), (min(int(last), size - 1) if last else size - 1)
    if start >= size or start > end:
        raise ValueError(header)
    return start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # tests read hub.requests instead

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _dispatch(self, head: bool):
        hub = self.server.owner
        hub.requests.append((self.command, self.path))
        try:
            if self.server.is_lfs_origin:
                self._lfs(head)
            else:
                self._route(head)
        except _Error as e:
            body = json.dumps({"error": e.message}).encode()
            headers = {"X-Error-Message": e.message, **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._send(e.status, body, headers, head, content_type="application/json")

    # --- routes -------------------------------------------------------------------------------------------------

    def _route(self, head: bool):
        url = urlsplit(self.path)
        segments = url.path.strip("/").split("/")  # still quoted: a quoted revision stays one segment
        query = parse_qs(url.query)
        if segments[:2] == ["api", "models"] and len(segments) >= 4:
            repo_id = "/".join(unquote(s) for s in segments[2:4])
            rest = segments[4:]
            if not rest:
                return self._info(repo_id, "main", query, head)
            if rest[0] == "revision" and len(rest) >= 2:
                rev, _ = _take_revision(rest[1:])
                return self._info(repo_id, rev, query, head)
            if rest[0] == "tree" and len(rest) >= 2:
                rev, path = _take_revision(rest[1:])
                return self._tree(repo_id, rev, unquote("/".join(path)), query, url.query, head)
        if len(segments) >= 5 and segments[2] == "resolve":
            repo_id = "/".join(unquote(s) for s in segments[:2])
            rev, path = _take_revision(segments[3:])
            return self._resolve(repo_id, rev, unquote("/".join(path)), head)
        raise _Error(404, None, f"Sorry, we can't find the page you are looking for: {url.path}")

    def _repo(self, repo_id: str, rev: str, *, files_access: bool) -> tuple[str, Path, list[FileInfo]]:
        store = self.server.owner.store
        repo_dir = store.repo_dir(repo_id)
        if repo_dir is None:
            raise _Error(404, "RepoNotFound", "Repository not found")
        if (repo_dir / ".private").is_file():
            raise _Error(401, "RepoNotFound", "Repository not found")  # the Hub hides a private repo's existence
        if files_access and (repo_dir / ".gated").is_file():
            raise _Error(403, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to it.")
        found = store.resolve(repo_id, rev)
        if found is None:
            raise _Error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return found

    def _info(self, repo_id: str, rev: str, query: dict, head: bool):
        sha, _, files = self._repo(repo_id, rev, files_access=False)
        blobs = _flag(query, "blobs")
        siblings = []
        for f in files:
            sibling: dict = {"rfilename": f.path}
            if blobs:
                sibling.update(size=f.size, blobId=f.git_oid)
                if f.lfs:
                    sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": len(f.pointer())}
            siblings.append(sibling)
        repo_dir = self.server.owner.store.repo_dir(repo_id)
        info = {
            "_id": sha[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "private": False,
            "gated": "auto" if (repo_dir / ".gated").is_file() else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": None,
            "lastModified": "2024-01-01T00:00:00.000Z",
            "createdAt": "2023-01-01T00:00:00.000Z",
            "siblings": siblings,
        }
        self._send_json(info, head)

    def _tree(self, repo_id: str, rev: str, path: str, query: dict, raw_query: str, head: bool):
        _, _, files = self._repo(repo_id, rev, files_access=False)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        recursive = _flag(query, "recursive")
        entries: dict[str, dict] = {}
        for f in files:
            if not f.path.startswith(prefix):
                continue
            rest = f.path[len(prefix) :].split("/")
            # the folders on the way to the file, then the file itself (if within reach)
            depth = len(rest) if recursive else 1
            for i in range(1, min(depth, len(rest) - 1) + 1):
                folder = prefix + "/".join(rest[:i])
                entries.setdefault(
                    folder, {"type": "directory", "oid": _git_oid(folder.encode()), "size": 0, "path": folder}
                )
            if len(rest) == 1 or recursive:
                entry = {"type": "file", "oid": f.git_oid, "size": f.size, "path": f.path}
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": len(f.pointer())}
                entries[f.path] = entry
        if prefix and not entries:
            raise _Error(404, "EntryNotFound", f"{path} does not exist on {rev!r}")
        listed = sorted(entries.values(), key=lambda e: (e["type"] != "directory", e["path"]))
        page_size = self.server.owner.tree_page_size
        start = int(query.get("cursor", ["0"])[0])
        page = listed[start : start + page_size]
        headers = {}
        if start + page_size < len(listed):
            others = "&".join(p for p in raw_query.split("&") if p and not p.startswith("cursor="))
            next_url = f"{self.server.owner.url}{urlsplit(self.path).path}?{others}&cursor={start + page_size}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send_json(page, head, headers)

    def _resolve(self, repo_id: str, rev: str, path: str, head: bool):
        sha, _, files = self._repo(repo_id, rev, files_access=True)
        found = next((f for f in files if f.path == path), None)
        if found is None:
            raise _Error(404, "EntryNotFound", f"{path} does not exist on {rev!r}", {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if found.lfs:
            location = f"{self.server.owner.lfs_url}/lfs/{found.sha256}?filename={quote(path.split('/')[-1])}"
            headers.update(
                {
                    "Location": location,
                    "X-Linked-Etag": f'"{found.sha256}"',
                    "X-Linked-Size": str(found.size),
                    "ETag": f'"{found.git_oid}"',
                }
            )
            return self._send(302, f"Found. Redirecting to {location}".encode(), headers, head)
        headers["ETag"] = f'"{found.git_oid}"'
        self._send_file(found.local, headers, head)

    def _lfs(self, head: bool):
        url = urlsplit(self.path)
        sha256 = url.path.removeprefix("/lfs/")
        local = self.server.owner.store.blobs.get(sha256)
        if not url.path.startswith("/lfs/") or local is None or not local.is_file():
            raise _Error(404, None, "NoSuchKey")
        self._send_file(local, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"}, head)

    # --- responses ----------------------------------------------------------------------------------------------

    def _send_file(self, local: Path, headers: dict, head: bool):
        data = local.read_bytes()
        try:
            wanted = _parse_range(self.headers.get("Range"), len(data))
        except ValueError:
            raise _Error(416, None, "Requested Range Not Satisfiable", {"Content-Range": f"bytes */{len(data)}"})
        if wanted is None:
            return self._send(200, data, headers, head)
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(206, data[start : end + 1], headers, head)

    def _send_json(self, value, head: bool, headers: dict | None = None):
        self._send(200, json.dumps(value).encode(), headers or {}, head, content_type="application/json")

    def _send(self, status: int, body: bytes, headers: dict, head: bool, content_type="application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _flag(query: dict, name: str) -> bool:
    return query.get(name, ["false"])[0].lower() in {"1", "true", "yes"}


def _take_revision(segments: list[str]) -> tuple[str, list[str]]:
    """Split quoted path segments into (revision, rest): ``refs%2Fpr%2F3`` is one segment, ``refs/pr/3`` three."""
    if len(segments) >= 3 and segments[0] == "refs" and segments[1] in {"pr", "convert"}:
        return "/".join(segments[:3]), segments[3:]
    return unquote(segments[0]), segments[1:]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # so going back online can bind the same port again

    def __init__(self, address, owner: HubLookalike, is_lfs_origin: bool):
        self.owner, self.is_lfs_origin = owner, is_lfs_origin
        super().__init__(address, _Handler)


class HubLookalike:
    """The running look-alike: ``url`` (the HF_ENDPOINT), ``lfs_url`` (the CDN origin), ``requests`` (every
    ``(method, path with query)`` both origins received, in order), ``offline`` (True = both origins refuse
    connections, as an unreachable Hub does; False = serving again) and ``close()``."""

    def __init__(self, root: Path, host: str = "127.0.0.1", public_host: str | None = None):
        """Serve ``root`` on two free ports of ``host``; ``public_host`` is the name its URLs use (default ``host``:
        a name only a proxy resolves makes a Hub this machine reaches through that proxy alone)."""
        self.store = _Store(Path(root))
        self.root = Path(root)
        self.requests: list[tuple[str, str]] = []
        self.tree_page_size = TREE_PAGE_SIZE
        self.home: Path | None = None  # the client's HF_HOME, when a fixture pointed the client here
        self._host = host
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._servers: list[tuple[_Server, threading.Thread]] = []
        self._ports = [0, 0]
        self._start()
        self.url = f"http://{public_host or host}:{self._ports[0]}"
        self.lfs_url = f"http://{public_host or host}:{self._ports[1]}"
        self._offline = False

    def _start(self):
        for i, is_lfs in enumerate((False, True)):
            server = _Server((self._host, self._ports[i]), self, is_lfs)
            self._ports[i] = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"hub-lookalike-{'lfs' if is_lfs else 'api'}",
            )
            thread.start()
            self._servers.append((server, thread))

    def _stop(self):
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers = []
        with self._conn_lock:  # pooled keep-alive connections must not keep working while "offline"
            for connection in list(self._connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _track(self, connection: socket.socket, alive: bool):
        with self._conn_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    @property
    def offline(self) -> bool:
        return self._offline

    @offline.setter
    def offline(self, value: bool):
        if value and not self._offline:
            self._stop()
        elif not value and self._offline:
            self._start()
        self._offline = bool(value)

    def commit(self, repo_id: str, revision: str = "main") -> str:
        """The commit sha the look-alike gives ``revision`` of ``repo_id`` now."""
        found = self.store.resolve(repo_id, revision)
        if found is None:
            raise KeyError(f"{repo_id}@{revision}")
        return found[0]

    def paths(self, marker: str) -> list[str]:
        """The request paths containing ``marker`` (e.g. "/resolve/" or "/lfs/"), in order."""
        return [path for _, path in self.requests if marker in path]

    def close(self):
        if not self._offline:
            self._stop()
        self._offline = True

    def __enter__(self) -> HubLookalike:
        return self

    def __exit__(self, *exc):
        self.close()
