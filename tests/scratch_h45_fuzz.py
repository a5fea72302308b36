"""scratch (h45): every check, both modes, failures collected."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

import test_platform_contract as tpc

OUT = os.environ.get("H45_OUT", "/tmp/h45/failures.jsonl")
MODES = os.environ.get("H45_MODES", "positive,negative").split(",")
N = int(os.environ.get("H45_N", "10"))
ONLY = os.environ.get("H45_ONLY", "")

env = tpc.env


def _labels():
    return [l for l in tpc._operations() if ONLY in l]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("role", tpc.ROLES, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("label", _labels())
def test_all(env, label, role, mode):
    schema, tokens = env
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)
    seen = {}

    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=N, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.headers = {**(case.headers or {}), **tokens[role]}
        try:
            response = case.call_and_validate()
        except BaseException as exc:  # noqa: BLE001
            subs = getattr(exc, "exceptions", [exc])
            for s in subs:
                key = (type(s).__name__, str(s).splitlines()[0][:200] if str(s) else "")
                if key not in seen:
                    seen[key] = {"label": label, "role": role, "mode": mode,
                                 "exc": key[0], "msg": str(s)[:1500],
                                 "curl": case.as_curl_command()[:600]}
            return
        try:
            tpc._security_headers(response, case)
        except AssertionError as exc:
            seen[("headers", str(exc))] = {"label": label, "role": role, "mode": mode,
                                           "exc": "headers", "msg": str(exc)}

    run()
    with open(OUT, "a") as fh:
        for v in seen.values():
            fh.write(json.dumps(v) + "\n")
