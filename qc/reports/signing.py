"""Sign and verify documents with the plant's Ed25519 key (the `cryptography` library).

A JSON document is {"payload": {...}, "signature": {...}}; the signature covers the payload's
canonical JSON (keys sorted, no whitespace, UTF-8). A PDF carries that JSON document as an
attached file and ends with one more line, `%QC-SIGNATURE <fingerprint> <base64 signature>`,
whose signature covers every byte of the PDF before that line: changing a number in the
payload, a byte of the PDF or the signature fails verification. docs/reports.md shows how to
check both with openssl.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from qc.reports.keyring import SigningKey, raw_public

log = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
CANONICAL = "JSON, keys sorted, separators ',' ':', no whitespace, UTF-8"
ATTACHMENT = "qc-document.json"  # the signed JSON document inside a PDF
PDF_TRAILER = b"%QC-SIGNATURE "


class VerificationError(Exception):
    """A document that does not verify; the message says why."""


def canonical(payload: Any) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerificationError(f"the {what} is not base64") from None


def sign_document(payload: dict, key: SigningKey) -> dict:
    """The signed JSON document of a payload."""
    return {
        "payload": payload,
        "signature": {
            "algorithm": ALGORITHM,
            "key_fingerprint": key.fingerprint,
            "public_key": _b64(raw_public(key.public)),
            "canonicalization": CANONICAL,
            "value": _b64(key.private.sign(canonical(payload))),
        },
    }


def _trusted_key(fp: Any, trusted: dict[str, Ed25519PublicKey]) -> Ed25519PublicKey:
    key = trusted.get(str(fp))
    if key is None:
        raise VerificationError(
            f"signed with key {fp}, which is not among the trusted public keys "
            "(ask the plant for its key: `qc keys show`)"
        )
    return key


def verify_document(document: Any, trusted: dict[str, Ed25519PublicKey]) -> dict:
    """The payload of a signed JSON document; VerificationError when anything is off."""
    if not isinstance(document, dict) or not isinstance(document.get("payload"), dict):
        raise VerificationError("not a qc document: no 'payload' object")
    sig = document.get("signature")
    if not isinstance(sig, dict) or sig.get("algorithm") != ALGORITHM:
        raise VerificationError(f"no {ALGORITHM} 'signature' object")
    key = _trusted_key(sig.get("key_fingerprint"), trusted)
    if "public_key" in sig and _unb64(sig["public_key"], "public key") != raw_public(key):
        raise VerificationError("the embedded public key does not match its fingerprint")
    try:
        key.verify(_unb64(sig.get("value"), "signature"), canonical(document["payload"]))
    except InvalidSignature:
        raise VerificationError("the signature does not match the payload") from None
    return document["payload"]


def sign_pdf(pdf: bytes, key: SigningKey) -> bytes:
    """Append the signature line over every byte of the PDF."""
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    value = _b64(key.private.sign(body))
    return body + PDF_TRAILER + f"{key.fingerprint} {value}\n".encode("ascii")


def split_pdf(data: bytes) -> tuple[bytes, str, bytes]:
    """(signed body, key fingerprint, signature) of a signed PDF."""
    body, sep, line = data.rstrip(b"\n").rpartition(b"\n")
    if not sep or not line.startswith(PDF_TRAILER):
        raise VerificationError("the PDF has no qc signature line at its end")
    parts = line[len(PDF_TRAILER):].decode("ascii", "replace").split()
    if len(parts) != 2:
        raise VerificationError("the PDF's signature line is malformed")
    return body + b"\n", parts[0], _unb64(parts[1], "PDF signature")


def embedded_document(pdf: bytes) -> dict:
    """The signed JSON document attached to a PDF."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        files = PdfReader(io.BytesIO(pdf)).attachments
        data = files[ATTACHMENT][0]
    except (PyPdfError, KeyError, IndexError, ValueError) as exc:
        raise VerificationError(f"no {ATTACHMENT} attached to the PDF ({exc})") from None
    try:
        return json.loads(data)
    except ValueError:
        raise VerificationError(f"the attached {ATTACHMENT} is not JSON") from None


def verify_pdf(data: bytes, trusted: dict[str, Ed25519PublicKey]) -> dict:
    """The payload of a signed PDF: its bytes and its attached document must both verify."""
    body, fp, value = split_pdf(data)
    try:
        _trusted_key(fp, trusted).verify(value, body)
    except InvalidSignature:
        raise VerificationError("the PDF was changed after signing") from None
    document = embedded_document(body)
    payload = verify_document(document, trusted)
    if document["signature"]["key_fingerprint"] != fp:
        raise VerificationError("the PDF and its attached document name different keys")
    return payload


def verify_bytes(data: bytes, trusted: dict[str, Ed25519PublicKey]) -> dict:
    """Verify a signed PDF or JSON document; returns its payload."""
    if data.startswith(b"%PDF"):
        return verify_pdf(data, trusted)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("neither a PDF nor a JSON document") from None
    return verify_document(document, trusted)
