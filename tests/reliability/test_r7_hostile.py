"""R7: malformed and hostile input (RELIABILITY.md 2.6).

Three parts, each writing its figures to the reliability report under ``R7``:

* ``openapi``: the document validates against the OpenAPI 3.1 schema, every ``$ref``
  resolves, and every operation documents the statuses the shared plumbing gives.
* ``schemathesis``: every operation of ``/openapi.json``, in process, with the
  operator token, a console session, a billing session and an ingest key of a real
  tenant; positive and negative data (examples, coverage and fuzzing phases). No
  5xx, no schema-invalid request answered 2xx, every status and content type
  documented, every response matching its schema, every operation that takes a
  token refusing none or a wrong one, every undeclared method answered 405 with
  ``Allow``.
* ``corpus``: hand-made hostile requests (tests/reliability/r7_corpus.py), each with
  the 4xx status and stable code it must get, and nothing stored.

``ACCRUAL_R7_SEED`` replays a run; ``ACCRUAL_R7_EXAMPLES`` sets the examples per
operation and generation mode (default 20 on SQLite, 8 on PostgreSQL, times
``ACCRUAL_RELIABILITY_SCALE``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from tests.conftest import BACKEND, make_runtime
from tests.reliability import r7_corpus
from tests.reliability.r7_support import Finding, make_tenant, run_schemathesis, status_counts
from tests.reliability.support import latency_ms, record, scale, seed_from
from tests.sandbox_server import free_port, serve

VALIDATION_STATUSES = {400, 413, 415, 422}
LIMIT_STATUSES = {413, 429}


def _examples() -> int:
    given = os.environ.get("ACCRUAL_R7_EXAMPLES")
    base = int(given) if given else (20 if BACKEND == "sqlite" else 8)
    return base * scale()


def _grouped(findings: list[Finding]) -> str:
    """One line per check and kind of failure: the operations it hit, one request to replay."""
    groups: dict[tuple[str, int | None, str], list[Finding]] = {}
    for finding in findings:
        kind = (re.sub(r"\b[A-Z]{3,7} returned", "<method> returned", finding.message.splitlines()[0])
                if finding.check == "unsupported_method" else "")
        groups.setdefault((finding.check, finding.status, kind or finding.operation), []).append(
            finding)
    lines = []
    for (check, status, _), items in sorted(groups.items(), key=lambda g: (g[0][0], g[0][2])):
        operations = sorted({f.operation for f in items})
        more = f" (+{len(operations) - 3} more)" if len(operations) > 3 else ""
        shown = ", ".join(operations[:3]) + more
        first = items[0]
        lines.append(f"- {check} | {status} | x{len(items)} | {shown} | e.g. {first.request} "
                     f"| {first.message.splitlines()[0]}")
    return "\n".join(lines)


def test_r7_openapi_document_is_valid_and_complete(runtime: Runtime) -> None:
    import schemathesis

    with TestClient(runtime.app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    schema = schemathesis.openapi.from_dict(json.loads(response.text))
    problems: list[str] = []
    try:
        schema.validate()
    except Exception as error:  # noqa: BLE001 - the validator's own error type
        problems.append(f"not a valid OpenAPI document: {error}")
    text = response.text
    components = document.get("components", {}).get("schemas", {})
    for name in sorted({part.split('"')[0] for part in text.split('"$ref":"#/components/schemas/')[1:]}):
        if name not in components:
            problems.append(f"$ref to a schema that does not exist: {name}")
    operations = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operations += 1
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            body = "requestBody" in operation
            needed = {"400", "413", "415", "422"} if body else set()
            if operation.get("parameters"):
                needed.add("422")
            if operation.get("security"):
                needed.add("401")
            problems += [f"{label}: status {s} not documented" for s in sorted(needed - set(responses))]
            for status, entry in responses.items():
                if status.startswith(("4", "5")) and "application/json" in entry.get("content", {}):
                    error = entry["content"]["application/json"]["schema"]
                    if "error" not in error.get("properties", {}) and "$ref" not in error:
                        problems.append(f"{label}: {status} is not the error envelope")
    record("R7", f"openapi-{BACKEND}", {"operations": operations, "problems": len(problems)})
    assert not problems, "\n".join(problems)


@pytest.fixture
def served_runtime(tmp_path: Path, pg_databases: tuple[str, str] | None,
                   clock: ManualClock) -> Iterator[Runtime]:
    """The runtime, its app also served on a real port: the fulfillment endpoint asks AWS
    (the emulator the app mounts) through boto3, which needs a server to reach."""
    port = free_port()
    runtime = make_runtime(tmp_path, pg_databases, clock, public_url=f"http://127.0.0.1:{port}")
    try:
        with serve(runtime.app, port=port):
            yield runtime
    finally:
        runtime.console.engine.dispose()
        runtime.billing.engine.dispose()


def test_r7_schemathesis_every_operation(served_runtime: Runtime) -> None:
    runtime = served_runtime
    # The runtime runs on the test clock (10:00 in Shanghai on 2026-11-26), like every test.
    seed = seed_from("ACCRUAL_R7_SEED")
    examples = _examples()
    with TestClient(runtime.app) as client:
        tenant = make_tenant(client, "ada")
    started = time.perf_counter()
    run = run_schemathesis(runtime.app, tenant, seed=seed, max_examples=examples)
    wall = round(time.perf_counter() - started, 2)
    by_check = Counter(f.check for f in run.findings)
    statuses = status_counts(run.calls)
    crashes = [c for c in run.calls if c.status >= 500]
    figures: dict[str, Any] = {
        "seed": seed, "examples": examples, "operations": run.operations,
        "operations_tested": run.operations_tested, "requests": len(run.calls),
        "statuses": dict(sorted(statuses.items())),
        "5xx": len(crashes),
        "invalid_accepted": by_check.get("negative_data_rejection", 0),
        "undocumented_statuses": by_check.get("status_code_conformance", 0),
        "check_failures": dict(sorted(by_check.items())),
        "errors": len(run.errors),
        "validation_ms": latency_ms(c.seconds for c in run.calls if c.status in VALIDATION_STATUSES),
        "validation_p99_ms": latency_ms(
            c.seconds for c in run.calls if c.status in VALIDATION_STATUSES)["p99"],
        "limits_hit": sum(1 for c in run.calls if c.status in LIMIT_STATUSES),
        "wall_s": wall,
    }
    record("R7", f"schemathesis-{BACKEND}", figures)
    crash_lines = "\n".join(f"- {c.method} {c.path} -> {c.status} {c.raised or ''}"
                            for c in crashes[:30])
    assert not run.errors, "schemathesis could not test some operations:\n" + "\n".join(run.errors)
    assert run.operations_tested == run.operations, (
        f"{run.operations - run.operations_tested} operations were never called")
    assert not crashes, f"5xx answers (seed {seed}):\n{crash_lines}"
    assert not run.findings, (
        f"schemathesis findings (seed {seed}, ACCRUAL_R7_SEED={seed} replays):\n"
        + _grouped(run.findings))


def test_r7_hostile_corpus(runtime: Runtime, clock: ManualClock) -> None:
    # A crash is answered 500, as a server would, and judged like any other answer.
    with TestClient(runtime.app, raise_server_exceptions=False) as client:
        outcome = r7_corpus.run(runtime, client, clock)
    failures = [r for r in outcome.results if not r.ok]
    figures: dict[str, Any] = {
        "cases": len(outcome.results), "requests": outcome.requests,
        "5xx": sum(1 for r in outcome.results if r.status >= 500),
        "invalid_accepted": sum(1 for r in outcome.results if r.invalid_accepted),
        "stored": sum(1 for r in outcome.results if r.stored),
        "undocumented_statuses": sum(1 for r in outcome.results if r.undocumented),
        "wrong_status_or_code": sum(1 for r in outcome.results
                                    if 400 <= r.status < 500 and not r.ok and not r.stored),
        "failures": len(failures),
        "validation_p99_ms": latency_ms(r.seconds for r in outcome.results
                                        if r.status in VALIDATION_STATUSES)["p99"],
        "limits_hit": sum(1 for r in outcome.results if r.status in LIMIT_STATUSES),
        "wall_s": outcome.wall_s,
    }
    record("R7", f"corpus-{BACKEND}", figures)
    assert not failures, "hostile corpus cases that did not get their refusal:\n" + "\n".join(
        r.line() for r in failures)
