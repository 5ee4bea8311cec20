"""Signed quality documents: the period quality report and the lot certificate of conformance.

`period` and `lot` build the documents' payloads from the service's statistics (pure functions
over the database, no Flask); `keyring` keeps the plant's Ed25519 keys; `signing` signs and
verifies JSON documents and PDFs; `pdf` and `charts` render them. docs/reports.md explains them.
"""
