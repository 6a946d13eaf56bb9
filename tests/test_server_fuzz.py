"""Fuzz the API from its own OpenAPI schema (schemathesis), in process: no input may cause a 500.

Valid and invalid bodies alike, 30 generated examples per operation: every answer must be a
documented status with a body that fits the schema; valid bodies get a 2xx, invalid ones a 4xx.
Profiles live in a temporary directory, with room for every name the examples make up.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from rnn_ime.predict import Predictor
from rnn_ime.server import create_app
from rnn_ime.user.directory import ProfileDirConfig

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, positive_data_acceptance, negative_data_rejection]


@pytest.fixture(scope="module")
def api_schema(small_model, tmp_path_factory):
    profiles = ProfileDirConfig(tmp_path_factory.mktemp("profiles"), max_profiles=10_000)
    app = create_app(Predictor.from_dir(small_model), profiles=profiles)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_has_every_operation(api_schema):
    assert {op.label for op in operations(api_schema)} == {
        "POST /api/suggest", "POST /api/complete", "POST /api/pinyin", "GET /api/health",
        "GET /api/pinyin/options", "POST /api/learn", "POST /api/undo", "POST /api/forget",
        "GET /api/user/{name}/stats"}


# schemathesis's own pytest plugin (schema.parametrize) does not run under pytest 9, so each
# operation's strategy is driven by hypothesis directly.
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CASES = [("POST /api/suggest", POSITIVE), ("POST /api/suggest", NEGATIVE),
         ("POST /api/complete", POSITIVE), ("POST /api/complete", NEGATIVE),
         ("POST /api/pinyin", POSITIVE), ("POST /api/pinyin", NEGATIVE),
         ("POST /api/learn", POSITIVE), ("POST /api/learn", NEGATIVE),
         ("POST /api/undo", POSITIVE), ("POST /api/undo", NEGATIVE),
         ("POST /api/forget", POSITIVE), ("POST /api/forget", NEGATIVE),
         ("GET /api/user/{name}/stats", POSITIVE), ("GET /api/user/{name}/stats", NEGATIVE),
         ("GET /api/health", POSITIVE),  # health and the options have no input to get wrong
         ("GET /api/pinyin/options", POSITIVE)]


@pytest.mark.parametrize("label, mode", CASES, ids=[f"{op}-{m.value}" for op, m in CASES])
def test_no_input_makes_the_api_fail(api_schema, label, mode):
    [operation] = [op for op in operations(api_schema) if op.label == label]
    statuses = set()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def call(case) -> None:
        statuses.add(case.call_and_validate(checks=CHECKS).status_code)

    call()
    assert statuses <= ({200} if mode is POSITIVE else {400, 422}), statuses
