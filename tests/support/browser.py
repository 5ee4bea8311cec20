"""Headless Chromium (the Debian package) driven by Playwright, and a live server for it.

Tests call require_chromium() first: without /usr/bin/chromium they are skipped with the
reason, except under CI=true, where that is a failure. chromium(camera=...) gives the pages a
fake camera filming a chosen frame (write_y4m). `python -m tests.support.browser URL OUT` saves
the README screenshots of a running demo.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium's synthetic camera, and camera permission granted without a prompt.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
TABLET = {"width": 1280, "height": 800}


def require_chromium() -> None:
    """Skip (or fail under CI=true) when Chromium or Playwright is missing."""
    import pytest

    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is missing (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {problem}")
    pytest.skip(problem)


def artifacts_dir() -> Path:
    """Where screenshots go: $QC_TEST_ARTIFACTS, else a folder in the system temp dir."""
    folder = Path(os.environ.get("QC_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "qc-test")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Serve a Flask app on a free loopback port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


class Console:
    """Console errors, failed requests and uncaught exceptions seen by a page."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda req: self.errors.append(
            f"request failed: {req.url} {req.failure}"))
        page.on("response", self._response)

    def _response(self, response) -> None:
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


def write_y4m(path: Path, rgb: np.ndarray, fps: int = 10) -> Path:
    """Write one RGB frame (even width and height) as a Y4M video, which a fake camera loops."""
    import cv2

    h, w = rgb.shape[:2]
    planes = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # (H*3/2, W): Y, then U, then V
    header = f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n"
    path.write_bytes(header.encode() + b"FRAME\n" + planes.tobytes())
    return path


@contextlib.contextmanager
def chromium(
    viewport: dict | None = None, camera: Path | None = None, pw: object | None = None
) -> Iterator[object]:
    """A fresh headless Chromium context (new user-data-dir, removed afterwards).

    With `camera` (a .y4m or .mjpeg file), pages get a camera that films it, without a prompt.
    `pw`: a running Playwright to share; a thread can run only one, so two browsers need it.
    """
    from playwright.sync_api import sync_playwright

    args = ARGS + [*FAKE_CAMERA, f"--use-file-for-fake-video-capture={camera}"] if camera else ARGS
    with contextlib.ExitStack() as cleanup:
        pw = pw or cleanup.enter_context(sync_playwright())
        profile = tempfile.mkdtemp(prefix="qc-chromium-")
        cleanup.callback(shutil.rmtree, profile, ignore_errors=True)
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=args,
            viewport=viewport or TABLET, locale="en-GB", timezone_id="UTC",
            permissions=["camera"] if camera else None,
        )
        cleanup.callback(context.close)
        yield context


def log_in(page, base: str, username: str, password: str, target: str) -> None:
    """Open `target`, get sent to the login form, log in and land back on `target`."""
    page.goto(f"{base}{target}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: url == f"{base}{target}")


def log_out(page) -> None:
    """End the session with the header's button."""
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")


def screenshot_demo(base: str, out: Path, photo: Path) -> list[Path]:
    """Station (after inspecting `photo`) and dashboard screenshots of a running demo."""
    out.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        page = context.new_page()
        log_in(page, base, "operator", "operator-demo", "/station")
        if page.locator("#setup").is_visible():
            page.get_by_role("button", name="Start inspecting").click()
        page.locator("#lot").fill("L-2611-1")
        page.locator("#serial").fill("FL2611280042")
        page.locator("#photo").set_input_files(str(photo))
        page.locator("#heatmap").wait_for(state="visible")
        page.wait_for_function("document.getElementById('heatmap').complete")
        page.screenshot(path=str(out / "station.png"))
        log_out(page)
        log_in(page, base, "manager", "manager-demo", "/dashboard")
        page.wait_for_function("Chart.getChart('chart-savings') !== undefined")
        page.screenshot(path=str(out / "dashboard.png"), full_page=True)
    return [out / "station.png", out / "dashboard.png"]


if __name__ == "__main__":
    base_url, folder = sys.argv[1].rstrip("/"), Path(sys.argv[2])
    sample = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(
        "sample_images/defect/scratch/scratch_000.jpg")
    for path in screenshot_demo(base_url, folder, sample):
        print(path)
