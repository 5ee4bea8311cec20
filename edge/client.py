"""The service's API as the station uses it (Authorization: Bearer <station API key>):
POST /api/v1/results, PUT /api/v1/inspections/<id>/image, GET|HEAD /api/v1/products/<p>/model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote

import requests

from edge.config import ServiceConfig

log = logging.getLogger(__name__)


class ServiceUnavailable(RuntimeError):
    """The service cannot be reached or answered 5xx/429: try again later. status is the HTTP
    status, None when no reply came (connection error, timeout)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ServiceRefused(RuntimeError):
    """The service answered 4xx: retrying the same request will not help until someone acts."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ServiceClient:
    """A requests session bound to one service URL and station key."""

    def __init__(self, config: ServiceConfig):
        self.base = config.url.rstrip("/") + "/api/v1"
        self.timeout = config.timeout_s
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {config.api_key}"
        self.session.headers["User-Agent"] = "qc-edge"
        self.session.verify = config.verify_tls

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.base + path, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            status = response.status_code
            raise ServiceUnavailable(f"{method} {path}: HTTP {status}", status)
        if response.status_code >= 400:
            raise ServiceRefused(response.status_code, _error_text(response))
        return response

    def post_results(self, results: list[dict]) -> dict:
        """Send a batch; the reply counts accepted, already_known and lists rejected items."""
        return self._call("POST", "/results", json=results).json()

    def put_image(self, result_id: str, path: Path) -> None:
        """Attach a kept image to a result the service already has."""
        with open(path, "rb") as fh:
            self._call("PUT", f"/inspections/{result_id}/image", files={"image": (path.name, fh)})

    def model_head(self, product: str) -> tuple[str, str] | None:
        """(sha256, version) of the product's active model, or None when it has none."""
        try:
            response = self._call("HEAD", self._model_path(product))
        except ServiceRefused as exc:
            if exc.status == 404:
                return None
            raise
        return _model_headers(response)

    def download_model(self, product: str, out: IO[bytes]) -> tuple[str, str]:
        """Stream the active model into out; returns the (sha256, version) the service claims."""
        kwargs = {"stream": True, "timeout": (self.timeout, 120)}
        with self._call("GET", self._model_path(product), **kwargs) as response:
            claimed = _model_headers(response)
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
        return claimed

    @staticmethod
    def _model_path(product: str) -> str:
        return f"/products/{quote(product, safe='')}/model"


def _model_headers(response: requests.Response) -> tuple[str, str]:
    sha = response.headers.get("X-Model-Sha256", "").lower()
    if len(sha) != 64:
        raise ServiceRefused(response.status_code, "model reply lacks an X-Model-Sha256 header")
    # The service percent-encodes the label (UTF-8) so any product name travels in a header.
    return sha, unquote(response.headers.get("X-Model-Version", ""))


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # the service's {"error": {"status", "title", "message"}}
        return str(error.get("message") or error.get("title"))[:300]
    if error:
        return str(error)[:300]
    return str(body)[:300]
