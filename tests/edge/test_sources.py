"""Image sources: the folder source (complete files only, done/failed), the camera source with
HTTP, key and interval triggers on a fake capture device."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request

import numpy as np

from edge.config import CameraConfig, FolderConfig
from edge.sources import CameraSource, FolderSource, parse_device
from edge.triggers import HttpTrigger, IntervalTrigger, KeyTrigger, TriggerQueue
from tests.edge.conftest import write_image


def _folder(tmp_path, **kw) -> FolderSource:
    config = FolderConfig(path=str(tmp_path / "in"), poll_s=0.01, **kw)
    return FolderSource(config, lambda p: tmp_path / p)


def test_partial_file_waits_until_its_size_holds(tmp_path):
    source = _folder(tmp_path, settle_polls=2)
    path = source.folder / "part.jpg"
    with open(path, "wb") as fh:
        fh.write(b"\xff\xd8 first half")
        fh.flush()
        assert source.scan() == []  # first sighting
        fh.write(b" second half")
        fh.flush()
        assert source.scan() == []  # it grew: not complete
    assert source.scan() == [path]  # same size and mtime on two polls in a row
    assert source.scan() == []  # handed out once


def test_hidden_temporary_and_non_image_files_are_ignored(tmp_path):
    source = _folder(tmp_path, settle_polls=1)
    for name in (".hidden.png", "upload.png.part", "frame.tmp", "notes.txt"):
        (source.folder / name).write_bytes(b"x")
    (source.folder / "empty.png").write_bytes(b"")
    assert source.scan() == []


def test_files_come_oldest_first_and_move_to_done_or_failed(tmp_path):
    source = _folder(tmp_path, settle_polls=1, serial_from_name=True)
    write_image(source.folder / "b.png", 50)
    time.sleep(0.01)
    write_image(source.folder / "a.png", 50)
    first, second = source.next(1.0), source.next(1.0)
    assert [first.name, second.name] == ["b.png", "a.png"]
    assert first.serial == "b" and first.key.startswith("b.png:")
    source.finish(first, ok=True)
    source.finish(second, ok=False)
    assert (source.done_dir / "b.png").exists() and (source.failed_dir / "a.png").exists()
    assert source.next(0.05) is None
    write_image(source.folder / "b.png", 60)  # the same name again: kept apart in done/
    frame = source.next(1.0)
    source.finish(frame, ok=True)
    assert (source.done_dir / "b-1.png").exists()


def test_after_delete_and_a_file_changed_during_failure(tmp_path):
    source = _folder(tmp_path, settle_polls=1, after="delete")
    write_image(source.folder / "x.png", 50)
    frame = source.next(1.0)
    source.finish(frame, ok=True)
    assert not (source.folder / "x.png").exists() and not list(source.done_dir.iterdir())
    write_image(source.folder / "y.png", 50)
    frame = source.next(1.0)
    write_image(source.folder / "y.png", 90, size=80)  # rewritten while we decoded it
    source.finish(frame, ok=False)
    assert (source.folder / "y.png").exists()  # not failed: it will be taken again
    assert source.next(1.0).name == "y.png"


class FakeCapture:
    """cv2.VideoCapture stand-in: numbered BGR frames at ~200 fps."""

    def __init__(self, device):
        self.device, self.n = device, 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV naming
        return True

    def read(self):
        time.sleep(0.005)
        self.n += 1
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 0] = self.n % 256  # blue channel: BGR order is converted to RGB
        return True, frame

    def release(self) -> None:
        pass


def _camera(trigger: str = "http") -> tuple[CameraSource, TriggerQueue, CameraConfig]:
    config = CameraConfig(device="0", trigger=trigger, http_port=0, reply_timeout_s=3)
    queue = TriggerQueue()
    source = CameraSource(config, queue, capture_factory=FakeCapture)
    source.start()
    return source, queue, config


def test_http_trigger_takes_a_fresh_frame_and_answers_the_verdict(tmp_path):
    source, queue, config = _camera()
    http = HttpTrigger(queue, config)
    replies = []

    def post() -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{http.port}/trigger", data=json.dumps({"serial": "SN7"}).encode(),
            method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            replies.append((response.status, json.load(response)))

    client = threading.Thread(target=post)
    client.start()
    try:
        frame = source.next(3.0)
        assert frame is not None and frame.serial == "SN7" and frame.key is None
        assert frame.image.shape == (48, 64, 3) and frame.image[0, 0, 2] > 0  # now RGB
        frame.trigger.finish({"verdict": "pass", "id": "r1"})
        client.join(timeout=5)
        assert replies == [(200, {"verdict": "pass", "id": "r1"})]
        with urllib.request.urlopen(f"http://127.0.0.1:{http.port}/health", timeout=5) as r:
            assert json.load(r) == {"status": "ok"}
    finally:
        http.close()
        source.close()


def test_key_and_interval_triggers():
    source, queue, _config = _camera("key")
    try:
        KeyTrigger(queue, io.StringIO("SN1\n\n"))
        first, second = source.next(2.0), source.next(2.0)
        assert (first.serial, second.serial) == ("SN1", None)
        interval = IntervalTrigger(queue, 0.05)
        assert source.next(2.0) is not None
        interval.close()
    finally:
        source.close()


def test_camera_that_gives_no_frames_fails_the_trigger(monkeypatch):
    class Dead(FakeCapture):
        def read(self):
            time.sleep(0.01)
            return False, None

    queue = TriggerQueue()
    source = CameraSource(CameraConfig(), queue, capture_factory=Dead)
    source.start()
    try:
        monkeypatch.setattr("edge.sources.FRAME_WAIT_S", 0.2)
        trigger = queue.fire("SN9")
        assert source.next(1.0) is None
        assert trigger.wait(0) and "no frame" in trigger.error
    finally:
        source.close()


def test_parse_device():
    assert parse_device("0") == 0
    assert parse_device("rtsp://cam/stream") == "rtsp://cam/stream"
