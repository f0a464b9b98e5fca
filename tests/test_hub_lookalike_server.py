"""The Hub look-alike answers the installed huggingface_hub as the Hub does: downloads, listings, revisions,
redirected large files, ranges and the Hub's errors, each read by the real client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hublike import hub_fixture, write_repo

hub = hub_fixture()

WEIGHTS = bytes(range(256)) * 40  # stands in for a checkpoint: stored in LFS, served from the second origin
MAIN = {"config.json": '{"model_type": "toy"}', "model.safetensors": WEIGHTS, "tokenizer/vocab.txt": "a\nb\n"}
PR = {"config.json": '{"model_type": "toy", "converted": true}', "model.safetensors": WEIGHTS[::-1]}


@pytest.fixture
def repo(hub):
    write_repo(hub.root, "acme/tiny", MAIN)
    write_repo(hub.root, "acme/tiny", PR, revision="refs/pr/3")
    return "acme/tiny"


def _read(directory: str, name: str) -> bytes:
    return (Path(directory) / name).read_bytes()


def test_snapshot_download_fetches_every_file_with_weights_from_the_lfs_origin(hub, repo):
    path = huggingface_hub.snapshot_download(repo)
    assert _read(path, "config.json") == MAIN["config.json"].encode()
    assert _read(path, "tokenizer/vocab.txt") == b"a\nb\n"
    assert _read(path, "model.safetensors") == WEIGHTS
    assert hub.commit(repo) in path  # the snapshot is named by the commit the server reported
    assert len(hub.paths("/lfs/")) == 1  # the weights came through the redirect, the small files did not
    assert str(hub.home) in path  # into the test's own cache, not the user's


def test_hf_hub_download_and_the_cache_once_the_hub_is_gone(hub, repo):
    first = huggingface_hub.hf_hub_download(repo, "config.json")
    hub.offline = True
    assert huggingface_hub.hf_hub_download(repo, "config.json") == first  # served from the cache
    assert hub.paths("model.safetensors") == []
    # (a file never fetched is not tried here: hf_hub_download retries a refused connection for ~20 s)
    hub.offline = False
    assert Path(huggingface_hub.hf_hub_download(repo, "model.safetensors")).read_bytes() == WEIGHTS


def test_model_info_names_the_commit_and_files(hub, repo):
    info = huggingface_hub.HfApi().model_info(repo, files_metadata=True)
    assert info.id == repo and info.sha == hub.commit(repo)
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(MAIN)
    assert siblings["model.safetensors"].lfs.size == len(WEIGHTS)
    assert siblings["config.json"].lfs is None
    pr = huggingface_hub.model_info(repo, revision="refs/pr/3")  # the module-level client is pointed here too
    assert pr.sha == hub.commit(repo, "refs/pr/3") != info.sha


def test_list_repo_tree_lists_folders_files_and_lfs_pointers(hub, repo):
    top = {entry.path: entry for entry in huggingface_hub.list_repo_tree(repo)}
    assert set(top) == {"tokenizer", "config.json", "model.safetensors"}
    assert isinstance(top["tokenizer"], huggingface_hub.hf_api.RepoFolder)
    assert top["model.safetensors"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    everything = [entry.path for entry in huggingface_hub.list_repo_tree(repo, recursive=True)]
    assert "tokenizer/vocab.txt" in everything
    inside = [entry.path for entry in huggingface_hub.list_repo_tree(repo, path_in_repo="tokenizer")]
    assert inside == ["tokenizer/vocab.txt"]


def test_a_long_tree_arrives_in_pages(hub, repo):
    hub.tree_page_size = 1
    listed = [entry.path for entry in huggingface_hub.list_repo_tree(repo, recursive=True)]
    assert sorted(listed) == sorted(["tokenizer", *MAIN])
    assert len(hub.paths("cursor=")) == len(listed) - 1  # one request per further page


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_range_requests_get_just_those_bytes(hub, repo, name):
    url = huggingface_hub.hf_hub_url(repo, name)
    response = huggingface_hub.get_session().get(url, headers={"Range": "bytes=3-9"})
    content = MAIN[name].encode() if isinstance(MAIN[name], str) else MAIN[name]
    assert response.status_code == 206
    assert response.content == content[3:10]
    assert response.headers["Content-Range"] == f"bytes 3-9/{len(content)}"


@pytest.mark.parametrize("revision", ["refs/pr/3", "commit"])
def test_a_revision_downloads_its_own_files(hub, repo, revision):
    revision = hub.commit(repo, "refs/pr/3") if revision == "commit" else revision
    path = huggingface_hub.snapshot_download(repo, revision=revision)
    assert _read(path, "config.json") == PR["config.json"].encode()
    assert _read(path, "model.safetensors") == PR["model.safetensors"]
    assert not (Path(path) / "tokenizer").exists()  # main's folder is not in the pull request
    main = huggingface_hub.hf_hub_download(repo, "config.json")
    assert Path(main).read_bytes() == MAIN["config.json"].encode()


def test_pr_branches_spelled_with_slashes_resolve_too(hub, repo):
    response = huggingface_hub.get_session().get(f"{hub.url}/{repo}/resolve/refs/pr/3/config.json")
    assert response.content == PR["config.json"].encode()


@pytest.mark.parametrize(
    ("repo_id", "revision", "filename", "error"),
    [
        ("acme/missing", None, "config.json", RepositoryNotFoundError),
        ("acme/tiny", "refs/pr/99", "config.json", RevisionNotFoundError),
        ("acme/tiny", None, "missing.json", EntryNotFoundError),
    ],
)
def test_hub_errors_become_the_clients_exceptions(hub, repo, repo_id, revision, filename, error):
    with pytest.raises(error):
        huggingface_hub.hf_hub_download(repo_id, filename, revision=revision)


def test_snapshot_of_an_unknown_revision_says_so(hub, repo):
    with pytest.raises(RevisionNotFoundError):
        huggingface_hub.snapshot_download(repo, revision="no-such-branch")


def test_private_and_gated_repos_refuse_anonymous_downloads(hub, repo):
    write_repo(hub.root, "acme/private", MAIN)
    (hub.root / "acme/private/.private").touch()
    write_repo(hub.root, "acme/gated", MAIN)
    (hub.root / "acme/gated/.gated").touch()
    with pytest.raises(RepositoryNotFoundError):
        huggingface_hub.snapshot_download("acme/private")
    with pytest.raises(GatedRepoError):
        huggingface_hub.hf_hub_download("acme/gated", "config.json")


def test_an_unreachable_hub_refuses_connections_until_it_is_back(hub, repo):
    hub.offline = True
    with pytest.raises(LocalEntryNotFoundError):
        huggingface_hub.snapshot_download(repo)
    hub.offline = False
    assert _read(huggingface_hub.snapshot_download(repo), "config.json") == MAIN["config.json"].encode()
