"""Fuzzing the HTTP API from its own OpenAPI schema (Schemathesis) against a real
server on 127.0.0.1: schema-valid requests (positive) and schema-violating ones
(negative) for every route. Checks: never a 5xx; every answer (status code, content
type, headers, body) conforms to the schema; schema-valid data is accepted and
schema-violating data rejected with a 4xx. Bounded and derandomised (a fixed budget
of examples per route and mode, a deadline per example, no example database), so it is
reproducible and runs in seconds; SEQREC_FUZZ_EXAMPLES / SEQREC_FUZZ_SEED fuzz longer
or elsewhere."""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
pytest.importorskip("uvicorn", reason="the 'serve' extra (uvicorn) is not installed")

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.core.parameters import ParameterLocation  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
)

from seqrec.serving.api import ServeConfig, build_runtime, create_app  # noqa: E402

from .conftest import LiveServer  # noqa: E402

KEY = "fuzz-key"
# budget per route and mode; SEQREC_FUZZ_SEED=N explores another fixed sequence
MAX_EXAMPLES = int(os.environ.get("SEQREC_FUZZ_EXAMPLES", "60"))
SEED = os.environ.get("SEQREC_FUZZ_SEED")
ROUTES = [
    ("POST", "/v1/sessions/{session_id}/events"),
    ("GET", "/v1/sessions/{session_id}/recommendations"),
    ("POST", "/v1/recommendations"),
    ("DELETE", "/v1/sessions/{session_id}"),
    ("GET", "/v1/model"),
    ("POST", "/v1/admin/reload"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
# negative data exists only for routes with parameters or a body
CASES = [
    (method, path, mode)
    for method, path in ROUTES
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "{" in path or method == "POST"
]
# A schema-valid request may still be refused for what a schema cannot say: an id that
# is not in the catalogue (strict mode), a directory that holds no model (reload).
REFUSED_FOR_CONTENT = {"unknown_item", "model_load_failed"}
LIMITS = {"max_k": 50, "max_items": 8, "max_filter_items": 8, "max_session_id": 40}
BOOLEAN_WORDS = {"0", "1", "false", "true", "f", "t", "no", "yes", "n", "y", "off", "on"}


@pytest.fixture(scope="module")
def api_schema(model_dirs):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQREC_FUZZ_KEY", KEY)
        yield from serve_and_load_schema(model_dirs)


def serve_and_load_schema(model_dirs):
    # small limits, so that the fuzzer reaches them; a body limit no schema-valid
    # request can reach (a schema cannot bound bytes: 413 is tested elsewhere)
    config = ServeConfig(
        model=str(model_dirs["gru4rec"]),
        api_key_env="SEQREC_FUZZ_KEY",
        **LIMITS,
        max_body_bytes=1 << 20,
    )
    with LiveServer(create_app(build_runtime(config), config)) as server:
        rejected = ["400", "401", "403", "404", "405", "409", "413", "414", "415", "422"]
        config = schemathesis.Config.from_dict(
            # a rejection may be any 4xx the API documents (413 too_many_items, ...)
            {"checks": {"negative_data_rejection": {"expected-statuses": rejected}}}
        )
        yield schemathesis.openapi.from_url(server.url + "/openapi.json", config=config)


def query_valid_on_the_wire(name: str, value) -> bool:
    """Whether a query parameter the fuzzer made "invalid" is valid as the server
    receives it: in a query string every value is text, so ``?allow=false`` is the
    item id "false", ``strict=[false]`` is ``?strict=false`` and ``strict=[]`` is no
    parameter at all (every query parameter is optional)."""
    values = list(value) if isinstance(value, list | dict) else [value]
    wire = [str(v).lower() if isinstance(v, bool) else str(v) for v in values if v is not None]
    if not wire:
        return True
    if name in ("allow", "deny"):
        return len(wire) <= LIMITS["max_filter_items"] and all(len(w) <= 256 for w in wire)
    if len(wire) != 1:
        return False
    if name in ("exclude_history", "strict"):
        return wire[0].strip().lower() in BOOLEAN_WORDS
    if name == "k":
        try:
            return 1 <= int(wire[0]) <= LIMITS["max_k"]
        except ValueError:
            return False
    return False


def valid_on_the_wire(case) -> bool:
    """True when every mutation of a negative case is in the query and undone by the
    query string's encoding (see :func:`query_valid_on_the_wire`)."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    mutations = getattr(data, "mutations", ())
    return bool(mutations) and all(
        m.parameter_location == ParameterLocation.QUERY
        and query_valid_on_the_wire(str(m.parameter), (case.query or {}).get(m.parameter))
        for m in mutations
    )


# seconds a request may take: the client's own 10 s default failed a model reload on a
# host running two trainings beside the suite (a hang guard, not a timing test)
TIMEOUT = 30


def accepted_unless_content(response) -> None:
    """Schemathesis' positive_data_acceptance, except for :data:`REFUSED_FOR_CONTENT`."""
    if response.status_code == 422:
        code = response.json().get("error", {}).get("code")
        assert code in REFUSED_FOR_CONTENT, f"schema-valid request rejected: {response.text}"
        return
    assert response.status_code < 400, f"schema-valid request rejected: {response.text}"


@pytest.mark.parametrize(
    "method, path, mode", CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES]
)
def test_api_conforms_to_its_schema(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    @seed(int(SEED or 0))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=SEED is None,
        database=None,
        # ms per example: a hung request fails the test; generous, because a reload
        # loads a model and a loaded CI host once took 7 s for it (not a timing test)
        deadline=30_000,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        if mode is GenerationMode.POSITIVE:
            response = case.call_and_validate(
                headers={"X-API-Key": KEY},
                excluded_checks=[positive_data_acceptance],
                timeout=TIMEOUT,
            )
            accepted_unless_content(response)
        else:
            excluded = [negative_data_rejection] if valid_on_the_wire(case) else []
            case.call_and_validate(
                headers={"X-API-Key": KEY}, excluded_checks=excluded, timeout=TIMEOUT
            )

    run()
