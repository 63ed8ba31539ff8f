"""The hub's HTTP side, on 127.0.0.1, with only what ``huggingface_hub`` 2.4 calls while
``from_pretrained``, ``snapshot_download`` and ``hf_hub_download`` run:

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info with ``sha`` and
  ``siblings`` (``HfApi.model_info``; diffusers lists the siblings to choose variants and folders).
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true``: the tree listing ``snapshot_download``
  reads (``type``, ``path``, ``size``, ``oid``; ``lfs`` with ``oid``/``size``/``pointerSize`` for
  weights).
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (the git blob id, or the
  LFS sha256 as on the hub), ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, ``Content-Length``,
  and ``Range`` requests (``http_get`` resumes with ``Range: bytes=N-``).
- Errors as the hub sends them: ``X-Error-Code`` ``RepositoryNotFound`` (401),
  ``RevisionNotFound`` / ``EntryNotFound`` (404), which ``hf_raise_for_status`` turns into its
  typed errors.
- A renamed repo answers every URL under its old id with a 307 to the same URL under the new id,
  as the hub does after a transfer (``THUDM/*`` -> ``zai-org/*``).

Sources: huggingface_hub 2.4.0's ``hf_api.py`` (``model_info``, ``_iter_repo_tree_pages``,
``RepoFile``/``RepoFolder``/``ModelInfo`` parsing), ``file_download.py`` (``get_hf_file_metadata``,
``http_get``), ``utils/_http.py`` (``hf_raise_for_status``, ``_httpx2_follow_hub_redirects_with_backoff``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Files the hub stores in LFS: weights and other binaries (its default .gitattributes).
_LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".ckpt",
    ".pth",
    ".pt",
    ".model",
    ".msgpack",
    ".h5",
    ".zip",
)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubRepo:
    """One repo: its files (path -> bytes) at a single commit."""

    repo_id: str
    files: dict[str, bytes]
    sha: str = ""
    _meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + hashlib.sha1(self.files[path]).digest())
        self.sha = self.sha or digest.hexdigest()
        for path, data in self.files.items():
            meta: dict[str, Any] = {"oid": git_blob_id(data), "size": len(data)}
            if path.endswith(_LFS_SUFFIXES):
                meta["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            self._meta[path] = meta

    def tree(self, path: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for name in sorted(self.files):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :].split("/")
            # Folders on the way down, then the file itself when the listing reaches it.
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                if depth == 1 or recursive:
                    oid = hashlib.sha1(folder.encode()).hexdigest()
                    entries.setdefault(folder, {"type": "directory", "oid": oid, "path": folder})
            if len(rest) == 1 or recursive:
                entries[name] = {"type": "file", "path": name, **self._meta[name]}
        return list(entries.values())

    def info(self) -> dict[str, Any]:
        return {
            "_id": hashlib.md5(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": "diffusers",
            "siblings": [{"rfilename": name} for name in sorted(self.files)],
            "lastModified": "2024-01-01T00:00:00.000Z",
            "createdAt": "2024-01-01T00:00:00.000Z",
        }


class LocalHub:
    """Serve ``repos`` on 127.0.0.1 in a background thread; ``renamed`` maps old ids to new ones.
    ``requests`` records every ``(method, path)`` served, for tests to check what was fetched."""

    def __init__(self, repos: dict[str, HubRepo], renamed: dict[str, str] | None = None) -> None:
        self.repos = repos
        self.renamed = dict(renamed or {})
        self.requests: list[tuple[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalHub:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="local-hub", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the local hub did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    # --- routes ----------------------------------------------------------------------------------

    _API = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$")
    _RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((request.method, path))
        api = self._API.match(path)
        resolve = None if api else self._RESOLVE.match(path)
        repo_id = api.group(1) if api else resolve.group(1) if resolve else None
        if repo_id is None:
            return web.Response(status=404, text="Not Found")
        if repo_id in self.renamed:
            # The hub's answer for a transferred repo: the same URL under the new id.
            new_url = request.rel_url.human_repr().replace(repo_id, self.renamed[repo_id], 1)
            return web.Response(status=307, headers={"Location": new_url})
        repo = self.repos.get(repo_id)
        if repo is None:
            return _error(401, "RepositoryNotFound", f"Repository Not Found for url: {path}.")
        if api:
            return self._api(request, repo, api)
        assert resolve is not None
        return self._resolve(request, repo, resolve.group(2), resolve.group(3))

    def _api(self, request: web.Request, repo: HubRepo, match: re.Match[str]) -> web.Response:
        kind, revision, sub = match.group(2), match.group(3), match.group(4) or ""
        if request.method != "GET":
            return web.Response(status=405)
        if revision is not None and revision not in ("main", repo.sha):
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if kind == "tree":
            recursive = request.query.get("recursive", "false").lower() in ("1", "true")
            entries = repo.tree(sub, recursive)
            if sub and not entries:
                return _error(404, "EntryNotFound", f"{sub} does not exist on {revision}")
            return web.json_response(entries)
        return web.json_response(repo.info())

    def _resolve(
        self, request: web.Request, repo: HubRepo, revision: str, name: str
    ) -> web.Response:
        if revision not in ("main", repo.sha):
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        data = repo.files.get(name)
        if data is None:
            return _error(404, "EntryNotFound", f"Entry not found: {name}")
        meta = repo._meta[name]
        headers = {
            "X-Repo-Commit": repo.sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if "lfs" in meta:
            headers["ETag"] = f'"{meta["lfs"]["oid"]}"'
            headers["X-Linked-Etag"] = f'"{meta["lfs"]["oid"]}"'
            headers["X-Linked-Size"] = str(len(data))
        else:
            headers["ETag"] = f'"{meta["oid"]}"'
        status, body = 200, data
        wanted = request.headers.get("Range")
        if wanted:
            found = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if found is None:
                return web.Response(status=416)
            start = int(found.group(1))
            end = int(found.group(2)) if found.group(2) else len(data) - 1
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=body, headers=headers)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": message},
        status=status,
        headers={"X-Error-Code": code, "X-Error-Message": message},
    )
