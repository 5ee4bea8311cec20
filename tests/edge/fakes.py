"""A tiny in-process stand-in for the service's station API (results, images, model download),
for edge unit tests that need HTTP but not the whole service. The end-to-end test uses the
real service instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "test-key"


class FakeService:
    """Records results by id (idempotent, like the service); can be 'down' or lie."""

    def __init__(self) -> None:
        self.results: dict[str, dict] = {}
        self.posts: list[int] = []  # batch sizes received
        self.images: dict[str, bytes] = {}
        self.down = False
        self.reject_ids: set[str] = set()
        self.poison_ids: set[str] = set()  # a batch holding one of these is answered 500
        self.max_batch: int | None = None  # a larger batch is answered 413
        self.max_body: int | None = None  # a batch whose JSON is longer is answered 413
        self.failed_posts: list[int] = []  # batch sizes answered 500
        self.too_large_posts: list[int] = []  # batch sizes answered 413
        self.received_ids: list[str] = []  # every id of every batch answered 200
        self.model: bytes | None = None
        self.model_version = ""
        self.sha_override: str | None = None
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def set_model(self, data: bytes, version: str) -> None:
        self.model, self.model_version = data, version

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def refusal(self, body: list) -> tuple[int, str] | None:
        """(status, message) when this batch is too large or holds a poison result, else None."""
        with self.lock:
            if self.max_batch is not None and len(body) > self.max_batch:
                self.too_large_posts.append(len(body))
                return 413, "upload is larger than the limit"
            if self.max_body is not None and len(json.dumps(body)) > self.max_body:
                self.too_large_posts.append(len(body))
                return 413, "upload is larger than the limit"
            if any(item["id"] in self.poison_ids for item in body):
                self.failed_posts.append(len(body))
                return 500, "internal error; the request was not recorded (see the log)"
        return None

    def post_results(self, body: list) -> dict:
        accepted = known = 0
        rejected = []
        with self.lock:
            self.posts.append(len(body))
            self.received_ids.extend(item["id"] for item in body)
            for index, item in enumerate(body):
                if item["id"] in self.reject_ids:
                    rejected.append({"index": index, "id": item["id"], "error": "unknown product"})
                elif item["id"] in self.results:
                    known += 1
                else:
                    self.results[item["id"]] = item
                    accepted += 1
        return {"received": len(body), "accepted": accepted, "already_known": known,
                "rejected": rejected}


def _handler(fake: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _auth(self) -> bool:
            if fake.down:
                self._json(503, {"error": "down"})
                return False
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self._json(401, {"error": {"message": "bad key"}})
                return False
            return True

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            if self._auth() and self.path == "/api/v1/results":
                results = json.loads(body)
                if refusal := fake.refusal(results):
                    self._json(refusal[0], {"error": {"message": refusal[1]}})
                else:
                    self._json(200, fake.post_results(results))

        def do_PUT(self) -> None:  # noqa: N802
            body = self._body()
            match = re.fullmatch(r"/api/v1/inspections/([^/]+)/image", self.path)
            if self._auth() and match:
                if match.group(1) not in fake.results:
                    self._json(404, {"error": "no such inspection"})
                else:
                    fake.images[match.group(1)] = body
                    self._json(200, {"id": match.group(1)})

        def _model(self, with_body: bool) -> None:
            if not self._auth():
                return
            if fake.model is None:
                self._json(404, {"error": "no active model"})
                return
            sha = fake.sha_override or hashlib.sha256(fake.model).hexdigest()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(fake.model)))
            self.send_header("X-Model-Sha256", sha)
            self.send_header("X-Model-Version", fake.model_version)
            self.end_headers()
            if with_body:
                self.wfile.write(fake.model)

        def do_GET(self) -> None:  # noqa: N802
            self._model(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._model(with_body=False)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    return Handler
