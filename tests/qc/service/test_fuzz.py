"""Property-based fuzzing of /api/v1 from its own OpenAPI document (schemathesis): every
operation, as every role, with generated paths, queries and bodies. No answer may be a 5xx, use
a status the document does not declare, or break the declared response shape."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROLES = ("station", "operator", "manager", "engineer", "admin")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Why 5: ~28 operations x 5 roles x 5 examples x 2 databases stays well under a minute;
# derandomized, so a failure repeats, and no example database is replayed.
FUZZ = settings(max_examples=5, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def test_api_answers_within_its_document(app, plant):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 28
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def answers_within_the_document(case):
            for role in ROLES:  # each generated request as every role
                case.call_and_validate(headers=plant.auth(role), checks=CHECKS)

        answers_within_the_document()
