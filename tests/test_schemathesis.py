"""schemathesis against the OpenAPI schema, with and without a token: no answer is a 5xx.

Every operation of ``/openapi.json`` gets valid (positive) and invalid
(negative) requests generated from its schema and sent to a real server
(real OpenBao, real SQLite). It takes longer than a unit test (about 40 s
for 12 examples per operation on the 2-core build machine), so it carries the
``fuzz`` marker: the default run deselects it and ``.ci/run`` runs it as its
own step, ``pytest -m fuzz``, with ``SECRETSD_FUZZ_EXAMPLES`` (default 20 there,
12 here) examples per operation and mode.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import RunningServer

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("SECRETSD_FUZZ_EXAMPLES", "12"))
# Calls that would end the fuzzing admin's own session rather than test anything.
SKIP_AUTHENTICATED = {("POST", "/v1/auth/tokens/revoke-self")}


@pytest.fixture
def fuzzed(server_factory: Any) -> RunningServer:
    # Long-polls end at once; limits do not turn the run into a stream of 429s.
    server: RunningServer = server_factory(
        max_wait=0.2, auth_failure_limit_per_client="", auth_failure_limit_per_role=""
    )
    return server


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "admin"])
def test_no_operation_answers_5xx(fuzzed: RunningServer, authenticated: bool) -> None:
    schema = schemathesis.openapi.from_dict(fuzzed.app.openapi())
    headers = {"Authorization": f"Bearer {fuzzed.token}"} if authenticated else {}
    session = requests.Session()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if authenticated and (operation.method.upper(), operation.path) in SKIP_AUTHENTICATED:
            continue
        operations += 1
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def call(case: Any) -> None:
            try:
                response = case.call(
                    base_url=fuzzed.url, session=session, headers=headers, timeout=10
                )
            except (requests.exceptions.InvalidHeader, UnicodeError, ValueError):
                return  # the client library refuses to send it: nothing reached the server
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} query={case.query!r} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        call()
    assert operations > 30
    assert not failures, "\n".join(failures[:20])
