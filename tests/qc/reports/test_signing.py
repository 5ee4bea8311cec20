"""Signed documents: a changed number, PDF byte or signature fails; rotated keys still verify."""

from __future__ import annotations

import base64
import json

import pytest
from fpdf import FPDF

from qc.reports import signing
from qc.reports.keyring import Keyring
from qc.reports.signing import VerificationError

PAYLOAD = {"document": "quality-report", "stats": {"totals": {"inspected": 100, "defective": 12,
                                                              "defect_rate": 0.12}},
           "lot": "L/ä 1", "escape_cost": 25.0}


@pytest.fixture
def ring(tmp_path):
    ring = Keyring(tmp_path / "instance")
    ring.ensure()
    return ring


def _pdf(document: dict) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "inspected: 100")
    pdf.embed_file(bytes=json.dumps(document).encode(), basename=signing.ATTACHMENT,
                   compress=False)
    return bytes(pdf.output())


def test_canonical_form_is_sorted_compact_utf8():
    assert signing.canonical({"b": 1, "a": [1.0, "ä"]}) == '{"a":[1.0,"ä"],"b":1}'.encode()
    with pytest.raises(ValueError):
        signing.canonical({"x": float("nan")})


def test_a_signed_document_verifies_and_survives_a_json_round_trip(ring):
    document = signing.sign_document(PAYLOAD, ring.current())
    again = json.loads(json.dumps(document, indent=2))  # how it travels: any JSON formatting
    assert signing.verify_document(again, ring.public_keys()) == PAYLOAD
    assert signing.verify_bytes(json.dumps(again).encode(), ring.public_keys()) == PAYLOAD


def test_changing_a_number_in_the_payload_is_detected(ring):
    text = json.dumps(signing.sign_document(PAYLOAD, ring.current()))
    for old, new in (('"defective": 12', '"defective": 11'), ('0.12', '0.13'),
                     ('"L/\\u00e4 1"', '"L/a 1"')):
        assert old in text
        with pytest.raises(VerificationError, match="does not match the payload"):
            signing.verify_bytes(text.replace(old, new).encode(), ring.public_keys())


def test_a_changed_or_foreign_signature_is_detected(ring, tmp_path):
    document = signing.sign_document(PAYLOAD, ring.current())
    value = bytearray(base64.b64decode(document["signature"]["value"]))
    value[5] ^= 1
    forged = {**document, "signature": {**document["signature"],
                                        "value": base64.b64encode(value).decode()}}
    with pytest.raises(VerificationError, match="does not match"):
        signing.verify_document(forged, ring.public_keys())
    with pytest.raises(VerificationError, match="not base64"):
        signing.verify_document({**document, "signature": {**document["signature"],
                                                           "value": "!!"}}, ring.public_keys())
    other = Keyring(tmp_path / "other").ensure()  # someone else's key, not trusted here
    with pytest.raises(VerificationError, match="not among the trusted"):
        signing.verify_document(signing.sign_document(PAYLOAD, other), ring.public_keys())
    swapped = {**document, "signature": {**document["signature"], "public_key":
                                         signing.sign_document(PAYLOAD, other)["signature"][
                                             "public_key"]}}
    with pytest.raises(VerificationError, match="embedded public key"):
        signing.verify_document(swapped, ring.public_keys())
    with pytest.raises(VerificationError, match="not a qc document"):
        signing.verify_bytes(b"[1, 2]", ring.public_keys())


def test_a_document_signed_with_a_rotated_out_key_still_verifies(ring):
    old_document = signing.sign_document(PAYLOAD, ring.current())
    old_pdf = signing.sign_pdf(_pdf(old_document), ring.current())
    _old, new = ring.rotate()
    assert signing.verify_document(old_document, ring.public_keys()) == PAYLOAD
    assert signing.verify_pdf(old_pdf, ring.public_keys()) == PAYLOAD
    assert signing.sign_document(PAYLOAD, ring.current())["signature"]["key_fingerprint"] \
        == new.fingerprint


def test_a_signed_pdf_verifies_and_any_changed_byte_is_detected(ring):
    document = signing.sign_document(PAYLOAD, ring.current())
    signed = signing.sign_pdf(_pdf(document), ring.current())
    assert signing.verify_bytes(signed, ring.public_keys()) == PAYLOAD
    body, fp, _sig = signing.split_pdf(signed)
    assert fp == ring.current().fingerprint and signed.startswith(body)
    visible = signed.index(b"inspected: 100") if b"inspected: 100" in signed else len(body) // 2
    for position in (10, visible, len(body) - 3):
        changed = bytearray(signed)
        changed[position] ^= 0x01
        with pytest.raises(VerificationError):
            signing.verify_pdf(bytes(changed), ring.public_keys())
    line = signed[len(body):]
    tampered_sig = line[:-5] + (b"A" if line[-5:-4] != b"A" else b"B") + line[-4:]
    with pytest.raises(VerificationError):
        signing.verify_pdf(body + tampered_sig, ring.public_keys())
    with pytest.raises(VerificationError, match="no qc signature line"):
        signing.verify_pdf(body, ring.public_keys())


def test_a_pdf_whose_attachment_was_swapped_and_re_signed_elsewhere_fails(ring, tmp_path):
    other = Keyring(tmp_path / "other").ensure()
    forged = signing.sign_pdf(_pdf(signing.sign_document(PAYLOAD, other)), other)
    with pytest.raises(VerificationError, match="not among the trusted"):
        signing.verify_pdf(forged, ring.public_keys())
    no_attachment = FPDF()
    no_attachment.add_page()
    bare = signing.sign_pdf(bytes(no_attachment.output()), ring.current())
    with pytest.raises(VerificationError, match="no qc-document.json"):
        signing.verify_pdf(bare, ring.public_keys())
