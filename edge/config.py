"""Station configuration: a TOML file read with tomllib into dataclasses, strictly validated
(unknown keys, wrong types and impossible values are errors that name the key to fix).

Relative paths are taken relative to the config file's folder. The API key may come from the
environment (QC_EDGE_API_KEY) instead of the file. Reference: docs/edge.md.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 stations: pip install tomli
    import tomli as tomllib

log = logging.getLogger(__name__)

API_KEY_ENV = "QC_EDGE_API_KEY"
VERDICT_EVENTS = ("pass", "fail", "flagged")
IMAGE_POLICIES = ("all", "fail", "none")
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string"}


class ConfigError(ValueError):
    """A station config that cannot work; the message names the key and what to write."""


@dataclass
class StationConfig:
    """Who this station is: its name in the service and the product it inspects."""

    name: str = ""
    product: str = ""
    lot: str = ""  # attached to every result unless a trigger gives one


@dataclass
class ServiceConfig:
    """Where the plant service is; url "" runs the station offline (needs model.path)."""

    url: str = ""
    api_key: str = ""
    timeout_s: float = 10.0
    verify_tls: bool = True


@dataclass
class PathsConfig:
    """Where the agent keeps its outbox, images and model cache."""

    data_dir: str = "qc-edge-data"


@dataclass
class ModelConfig:
    """Which model runs: the product's active one from the service, or a fixed local file."""

    path: str = ""  # a fixed local model: no download, no polling
    poll_s: float = 60.0  # how often to ask the service for a newly activated model
    threads: int = 1  # onnxruntime intra-op threads; stations usually spare one core


@dataclass
class FolderConfig:
    """A folder an industrial camera drops files into."""

    path: str = ""
    done_dir: str = ""  # default <path>/done
    failed_dir: str = ""  # default <path>/failed (files that are not readable images)
    after: str = "move"  # move | delete: what happens to a handled file
    poll_s: float = 0.2
    settle_polls: int = 2  # a file is complete when its size and mtime hold this many polls
    serial_from_name: bool = False  # use the file name (without suffix) as the serial


@dataclass
class CameraConfig:
    """A USB or RTSP camera read through OpenCV, frames taken on a trigger."""

    device: str = "0"  # a camera index ("0") or a URL (rtsp://...)
    trigger: str = "http"  # http | key | mqtt | interval
    interval_s: float = 1.0  # for trigger = "interval"
    http_host: str = "127.0.0.1"
    http_port: int = 8765
    reply_timeout_s: float = 5.0  # the HTTP trigger waits this long for the verdict
    jpeg_quality: int = 90  # kept frames are stored as JPEG


@dataclass
class SourceConfig:
    """Where images come from: kind = folder | camera | none (one-shot commands only)."""

    kind: str = "folder"
    folder: FolderConfig | None = None
    camera: CameraConfig | None = None


@dataclass
class SyncConfig:
    """How results travel to the service."""

    batch_size: int = 200
    interval_s: float = 1.0  # pause between polls of an empty outbox
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0


@dataclass
class RetentionConfig:
    """Which images are kept and sent, and the bounds on local disk (docs/edge.md)."""

    keep_images: str = "fail"  # all | fail | none
    upload_images: str = "fail"  # all | fail | none (only kept images can be uploaded)
    max_images_mb: float = 2048.0
    pass_image_days: float = 2.0
    fail_image_days: float = 30.0
    sent_result_days: float = 7.0  # sent result rows are kept this long for `status`


@dataclass
class GuardConfig:
    """Image-quality guard thresholds; 0 disables a check."""

    enabled: bool = True
    action: str = "flag"  # flag: record flags; fail: also turn the verdict into fail
    min_sharpness: float = 10.0  # Laplacian variance on a 256x256 grey copy
    min_brightness: float = 30.0
    max_brightness: float = 225.0
    max_dark_fraction: float = 0.5  # share of pixels < 8
    max_bright_fraction: float = 0.05  # share of pixels > 247 (clipped highlights)
    drift_z: float = 4.0  # z-score vs the model's training images


@dataclass
class MqttConfig:
    """The MQTT broker for line signals (and the camera's MQTT trigger); host "" = off."""

    host: str = ""
    port: int = 1883
    username: str = ""
    password: str = ""
    topic_prefix: str = "qc"
    qos: int = 1
    publish: list[str] = field(default_factory=lambda: ["pass", "fail"])


@dataclass
class WebhookConfig:
    """An HTTP endpoint called with each selected result; url "" = off."""

    url: str = ""
    on: list[str] = field(default_factory=lambda: ["fail"])
    timeout_s: float = 2.0


@dataclass
class EdgeConfig:
    """The whole station config."""

    station: StationConfig
    service: ServiceConfig = field(default_factory=ServiceConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    base_dir: Path = field(default=Path("."), repr=False)

    def resolve(self, path: str) -> Path:
        """A config path made absolute against the config file's folder."""
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.paths.data_dir)


def load(path: str | os.PathLike) -> EdgeConfig:
    """Read and validate a station TOML file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (see examples/station.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return from_dict(raw, base_dir=path.resolve().parent)


def from_dict(raw: dict[str, Any], base_dir: Path = Path(".")) -> EdgeConfig:
    """Build and validate an EdgeConfig from parsed TOML."""
    raw = dict(raw)
    raw.setdefault("station", {})
    config = _build(EdgeConfig, raw, "", skip=("base_dir",))
    config.base_dir = Path(base_dir)
    if not config.service.api_key:
        config.service.api_key = os.environ.get(API_KEY_ENV, "")
    _validate(config)
    return config


def _build(cls: type, table: Any, where: str, skip: tuple[str, ...] = ()) -> Any:
    """Instantiate dataclass cls from a TOML table; unknown keys and wrong types are errors."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    unknown = sorted(set(table) - set(names))
    if unknown:
        section = f"[{where}]" if where else "the top level"
        raise ConfigError(f"unknown key {unknown[0]!r} in {section}; allowed: {', '.join(names)}")
    values = {}
    for name in names:
        if name in table:
            key = f"{where}.{name}" if where else name
            values[name] = _convert(hints[name], table[name], key)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    """Check one value against its annotation (dataclass, str, int, float, bool, list[str])."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if typing.get_origin(hint) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{key} must be a list of strings, like ["fail"]')
        return list(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{key} must be {TYPE_WORDS.get(hint, hint.__name__)}, not {value!r}")
    return value


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")


def _positive(value: float, key: str, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'}, not {value}")


def _validate(c: EdgeConfig) -> None:
    """Cross-field checks after types are right."""
    if not c.station.name or not c.station.product:
        raise ConfigError("[station] needs name and product (as registered in the service)")
    if c.service.url and not c.service.url.startswith(("http://", "https://")):
        raise ConfigError(f"service.url must start with http:// or https://, not {c.service.url!r}")
    if c.service.url and not c.service.api_key:
        raise ConfigError(
            f"service.api_key is empty: set it or {API_KEY_ENV} "
            "(`qc stations create --name NAME` prints it)"
        )
    if not c.service.url and not c.model.path:
        raise ConfigError("without service.url the station needs model.path (a local model)")
    _positive(c.service.timeout_s, "service.timeout_s")
    _positive(c.model.poll_s, "model.poll_s")
    _positive(c.model.threads, "model.threads")
    _validate_source(c.source)
    if c.source.kind == "camera" and c.source.camera.trigger == "mqtt" and not c.mqtt.host:
        raise ConfigError('source.camera.trigger = "mqtt" needs [mqtt] host = "..."')
    _validate_sync(c.sync)
    _validate_retention(c.retention)
    _choice(c.guard.action, ("flag", "fail"), "guard.action")
    _positive(c.guard.drift_z, "guard.drift_z", allow_zero=True)
    for item in c.mqtt.publish:
        _choice(item, VERDICT_EVENTS, "mqtt.publish item")
    for item in c.webhook.on:
        _choice(item, VERDICT_EVENTS, "webhook.on item")
    if not 0 <= c.mqtt.qos <= 2:
        raise ConfigError(f"mqtt.qos must be 0, 1 or 2, not {c.mqtt.qos}")
    if c.webhook.url and not c.webhook.url.startswith(("http://", "https://")):
        raise ConfigError(f"webhook.url must start with http:// or https://, not {c.webhook.url!r}")


def _validate_source(s: SourceConfig) -> None:
    _choice(s.kind, ("folder", "camera", "none"), "source.kind")
    if s.kind == "folder":
        if s.folder is None or not s.folder.path:
            raise ConfigError('source.kind = "folder" needs [source.folder] with path = "..."')
        _choice(s.folder.after, ("move", "delete"), "source.folder.after")
        _positive(s.folder.poll_s, "source.folder.poll_s")
        if s.folder.settle_polls < 1:
            raise ConfigError("source.folder.settle_polls must be >= 1")
    if s.kind == "camera":
        if s.camera is None:
            s.camera = CameraConfig()
        _choice(s.camera.trigger, ("http", "key", "mqtt", "interval"), "source.camera.trigger")
        _positive(s.camera.interval_s, "source.camera.interval_s")
        if not 1 <= s.camera.jpeg_quality <= 100:
            raise ConfigError("source.camera.jpeg_quality must be 1..100")


def _validate_sync(s: SyncConfig) -> None:
    if not 1 <= s.batch_size <= 1000:
        raise ConfigError(
            f"sync.batch_size must be 1..1000 (the service limit), not {s.batch_size}"
        )
    _positive(s.interval_s, "sync.interval_s")
    _positive(s.backoff_base_s, "sync.backoff_base_s")
    if s.backoff_max_s < s.backoff_base_s:
        raise ConfigError("sync.backoff_max_s must be >= sync.backoff_base_s")


def _validate_retention(r: RetentionConfig) -> None:
    _choice(r.keep_images, IMAGE_POLICIES, "retention.keep_images")
    _choice(r.upload_images, IMAGE_POLICIES, "retention.upload_images")
    for name in ("max_images_mb", "pass_image_days", "fail_image_days", "sent_result_days"):
        _positive(getattr(r, name), f"retention.{name}", allow_zero=True)
