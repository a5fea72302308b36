"""The ``fhir`` kind: a report sent to a FHIR R4 server, the export's bundle
(``documents.fhir.fhir_bundle``, by ``payloads.fhir_bundle``) as one ``transaction`` of PUTs.

Every resource gets a stable id (the destination's prefix + the export's id; the
DiagnosticReport one id per study, not per version), so a resend updates the same resources
instead of creating new ones (FHIR's update-as-create), and the report's status moves on the
server as it moves here: ``preliminary`` → ``final`` → ``amended``. References inside the
bundle are rewritten to the new ids. The transaction is validated with ``fhir.resources``
before it leaves.

A later event's report replaces the earlier one on the server (its status must not go back):
a row retried after a later one reached the server is skipped as ``superseded``. A retracted
study's correction is the newest report it got again, as ``entered-in-error``.

Errors are the registry's two: ``DestinationUnavailable`` (no answer, HTTP 5xx/408/429) and
``DestinationRejected`` (any other refusal; its reason holds the HTTP status and the
OperationOutcome's issue codes, never its diagnostics, which can quote the report).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from typing import Any

from medai.destinations_config import FhirDestination
from medai.platform.context import Platform
from medai.platform.delivery import payloads
from medai.platform.delivery.destinations.registry import (
    DestinationKind,
    DestinationRejected,
    DestinationUnavailable,
    register,
)
from medai.platform.records.tables import OutboxItem

log = logging.getLogger("medai.integration.send")
_VERSIONED = re.compile(r"^(report-\d+)-v\d+$")
FHIR_JSON = "application/fhir+json"


def stable_id(resource_type: str, rid: str, prefix: str) -> str:
    """The id a resource has on the server (at most 64 characters, FHIR's limit)."""
    if resource_type == "DiagnosticReport":
        rid = _VERSIONED.sub(r"\1", rid)
    return (prefix + rid)[:64]


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (ids.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, ids))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    return value


def transaction(bundle: dict[str, Any], base_url: str, prefix: str = "medai-") -> dict[str, Any]:
    """The collection ``bundle`` as a transaction of PUTs to stable ids."""
    from fhir.resources.R4B.bundle import Bundle

    base = base_url.rstrip("/")
    resources = [copy.deepcopy(e["resource"]) for e in bundle.get("entry") or []]
    ids = {
        f"{r['resourceType']}/{r['id']}": f"{r['resourceType']}/{stable_id(r['resourceType'], r['id'], prefix)}"
        for r in resources
    }
    entries = []
    for r in resources:
        ref = ids[f"{r['resourceType']}/{r['id']}"]
        r = _rewrite(r, ids)
        r["id"] = ref.split("/", 1)[1]
        entries.append(
            {"fullUrl": f"{base}/{ref}", "resource": r, "request": {"method": "PUT", "url": ref}}
        )
    out = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    if bundle.get("timestamp"):
        out["timestamp"] = bundle["timestamp"]
    Bundle.model_validate(out)
    return out


def _issue_codes(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    codes = sorted(
        {
            str(i.get("code"))
            for i in body.get("issue") or []
            if isinstance(i, dict) and i.get("code")
        }
    )
    return f" ({', '.join(codes)[:60]})" if codes else ""


def post_transaction(
    bundle: dict[str, Any],
    url: str,
    *,
    where: str,
    timeout: float = 30.0,
    token_env: str | None = None,
    client=None,
) -> int:
    """POST the transaction to the server's base ``url``; the number of resources it
    answered for. ``where`` names the destination in errors and logs (no credentials)."""
    import httpx

    headers = {"Content-Type": f"{FHIR_JSON}; charset=utf-8", "Accept": FHIR_JSON}
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise DestinationRejected(where, f"the bearer token variable {token_env} is empty")
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
    own = client is None
    client = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = client.post(url.rstrip("/"), content=body, headers=headers)
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        log.warning("FHIR to %s: %s", where, type(exc).__name__)
        raise DestinationUnavailable(where, type(exc).__name__) from None
    finally:
        if own:
            client.close()
    code = response.status_code
    if code >= 500 or code in (408, 429):
        log.warning("FHIR to %s: HTTP %d", where, code)
        raise DestinationUnavailable(where, f"HTTP {code}")
    if code not in (200, 201):
        log.warning("FHIR to %s: HTTP %d", where, code)
        raise DestinationRejected(where, f"HTTP {code}{_issue_codes(response)}")
    try:
        reply = response.json()
    except ValueError:
        raise DestinationRejected(where, "the answer is not FHIR JSON") from None
    answered = (
        [e.get("response") or {} for e in (reply.get("entry") or []) if isinstance(e, dict)]
        if isinstance(reply, dict)
        else []
    )
    bad = [r.get("status", "") for r in answered if not str(r.get("status", "")).startswith("2")]
    if len(answered) != len(bundle["entry"]) or bad:
        raise DestinationRejected(
            where,
            f"transaction-response has {len(answered)} of "
            f"{len(bundle['entry'])} entries, {len(bad)} not 2xx",
        )
    log.info("FHIR to %s: %d resources stored", where, len(answered))
    return len(answered)


class FhirTransaction(DestinationKind):
    """A FHIR R4 server (``FhirDestination``)."""

    kind = "fhir"
    config = FhirDestination
    replaced_by_later = True
    codes = (*DestinationKind.codes, "superseded")

    def build(
        self, p: Platform, item: OutboxItem, parts: payloads.Parts, dest: Any, *, correction: bool
    ) -> dict[str, Any]:
        bundle = payloads.fhir_bundle(parts, entered_in_error=correction)
        return transaction(bundle, dest.url, dest.id_prefix)

    def send(self, payload: dict[str, Any], dest: Any) -> int:
        return post_transaction(
            payload, dest.url, where=dest.where, timeout=dest.timeout_s, token_env=dest.token_env
        )


KIND = register(FhirTransaction())
