"""Model metadata inside the ONNX file."""

from __future__ import annotations

import onnx
import pytest

from qc.modelpack import ModelInfo, ModelPackError, file_sha256, read_info, write_info


def test_roundtrip_through_the_file(tiny_model, tmp_path):
    info = read_info(tiny_model)
    assert info.product == "widget" and info.input_size == (32, 32)
    info.metrics["auroc"] = 0.5
    model = onnx.load(str(tiny_model))
    write_info(model, info)
    onnx.save(model, str(tmp_path / "again.onnx"))
    again = read_info(tmp_path / "again.onnx")
    assert again == info
    assert again.preprocessing.size == (32, 32)


def test_foreign_onnx_is_refused(tiny_model, tmp_path):
    model = onnx.load(str(tiny_model))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelPackError, match="qc.product"):
        read_info(tmp_path / "plain.onnx")


def test_not_onnx_at_all(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"garbage")
    with pytest.raises(ModelPackError):
        read_info(path)


def test_unknown_mode_and_newer_format_refused():
    props = ModelInfo("p", "supervised", (8, 8), "stretch", 0.5, {}).to_props()
    with pytest.raises(ModelPackError, match="mode"):
        ModelInfo.from_props({**props, "qc.mode": '"magic"'})
    with pytest.raises(ModelPackError, match="newer"):
        ModelInfo.from_props({**props, "qc.format_version": "99"})


def test_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path).startswith("ba7816bf")
