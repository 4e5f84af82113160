"""The staging tests: the candidate scored through the inference service's real HTTP API, staging side.

Run by a Celery task (`run_staging_tests`) for one attempt of one staging deployment; the controller
reads the stored results on its next tick. Five results per attempt:

- signature: the version has an input signature and its input example (the first holdout row, typed
  as a client sends it) scores through the API, answered by the model itself;
- parity: the holdout sample scored through the API gives the registered model's scores (MLflow's
  model, loaded here) within the policy's tolerance;
- auc: the ROC AUC of those scores on the holdout's labels reaches the policy's gate;
- latency: p99 of N single requests, timed by the client (what a caller waits), within the model's
  serving latency budget;
- fallbacks: none of the answers above came from the rules.

A test that could not run (the service unreachable, the version still loading) is stored as neither
passed nor failed; the controller runs a new attempt shortly after. Every HTTP call has a timeout.
"""

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from ..models import Rollout, StagingTestResult

log = logging.getLogger(__name__)

Test = StagingTestResult.Test
HTTP_TIMEOUT = 10.0
BATCH = 200


# A version still loading in the service is answered by the rules; past this many attempts answered
# so, the version is taken to be broken rather than loading.
FALLBACK_ATTEMPTS = 3


class CouldNotRun(Exception):
    """The tests cannot run now (not the version's fault): the attempt is tried again."""

    def __init__(self, message: str, *, by_rules: bool = False):
        super().__init__(message)
        self.by_rules = by_rules


@dataclass
class Outcome:
    passed: bool | None
    detail: str
    value: float | None = None
    threshold: float | None = None


@dataclass
class Session:
    """The HTTP side of one attempt: where, with which token, and every answer seen."""

    url: str
    token: str
    answers: list[dict] = field(default_factory=list)

    def score(self, items: list[dict]) -> list[dict]:
        import requests

        body = {"items": items} if len(items) > 1 else items[0]
        try:
            response = requests.post(
                self.url, json=body, headers={"Authorization": f"Token {self.token}"}, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            raise CouldNotRun(f"the inference service cannot be reached: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 404, 503):
            raise CouldNotRun(f"the inference service answered {response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            raise AssertionError(
                f"the API refused the request ({response.status_code}): {response.text[:300]}"
            )
        payload = response.json()
        answers = payload["items"] if len(items) > 1 else [payload]
        self.answers.extend(answers)
        return answers


def _item(features: dict, index: int, run: str) -> dict:
    # Unique ids: the scoring API caches answers by transaction id.
    return {"transaction_id": f"staging-{run}-{index}", "entity_id": f"staging-{index}", "features": features}


def holdout_of(version):
    """The holdout rows of the version's dataset, split as training split them (or None)."""
    import pandas as pd

    from apps.training import pipeline

    dataset = version.dataset
    if dataset is None or not dataset.path or not dataset.file.is_file():
        return None
    frame = pd.read_parquet(dataset.file)
    if pipeline.LABEL not in frame.columns:
        return None
    params = version.params or {}
    _, holdout = pipeline.split(
        frame,
        holdout_fraction=float(params.get("holdout_fraction", 0.25)),
        seed=int(params.get("seed", 0)),
    )
    return holdout


def request_rows(frame, names: list[str]) -> list[dict]:
    """DataFrame rows as a client sends them in JSON: plain numbers and strings, missing as null."""
    rows = []
    for record in frame[names].astype(object).where(frame[names].notna(), None).to_dict(orient="records"):
        row = {}
        for name, value in record.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            row[name] = value
        rows.append(row)
    return rows


def _signature_names(version) -> list[str]:
    import json

    inputs = (version.signature or {}).get("inputs")
    if not inputs:
        return []
    parsed = json.loads(inputs) if isinstance(inputs, str) else inputs
    return [column["name"] for column in parsed if column.get("name")]


def nearest_rank_p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(0.99 * len(ordered)), 1) - 1]


def roc_auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _latency_budget_ms(model) -> float:
    from apps.serving.services import policy_current

    return float(policy_current(model).latency_budget_ms)


def _run(rollout: Rollout, session: Session) -> dict[str, Outcome]:
    from apps.registry import gateway
    from apps.training.pipeline import LABEL

    version, policy, run = rollout.candidate, rollout.policy, uuid.uuid4().hex[:8]
    results: dict[str, Outcome] = {}
    names = _signature_names(version)
    holdout = holdout_of(version)
    if holdout is not None and len(holdout):
        holdout = holdout.head(policy.staging_holdout_size)
    if not names:
        results[Test.SIGNATURE] = Outcome(False, "the version has no input signature")
    elif holdout is None or not len(holdout):
        results[Test.SIGNATURE] = Outcome(False, "the version has no dataset to take an input example from")
    else:
        missing = [name for name in names if name not in holdout.columns]
        if missing:
            results[Test.SIGNATURE] = Outcome(
                False, f"the dataset lacks signature inputs: {', '.join(missing)}"
            )
        else:
            answer = session.score([_item(request_rows(holdout.head(1), names)[0], 0, run)])[0]
            if answer.get("fallback"):
                # The version may still be loading in the service: not a verdict yet.
                raise CouldNotRun(
                    "the input example was answered by the rules (the version may be loading)", by_rules=True
                )
            ok = answer.get("version") == version.version and 0.0 <= float(answer.get("score", -1)) <= 1.0
            results[Test.SIGNATURE] = Outcome(
                ok, f"input example scored {answer.get('score')} by v{answer.get('version')}"
            )
    if holdout is None or not len(holdout) or not names or any(n not in holdout.columns for n in names):
        for test in (Test.PARITY, Test.AUC):
            results[test] = Outcome(False, "no holdout sample to score (the version has no usable dataset)")
    else:
        rows = request_rows(holdout, names)
        scored = []
        for start in range(0, len(rows), BATCH):
            chunk = [_item(row, start + i + 1, run) for i, row in enumerate(rows[start : start + BATCH])]
            scored += session.score(chunk)
        api_scores = np.array([float(a["score"]) for a in scored], dtype=np.float64)
        try:
            registered = gateway.load_sklearn_model(version.source_uri)
        except gateway.RegistryUnavailable as exc:
            raise CouldNotRun(str(exc)) from exc
        expected = np.asarray(registered.predict_proba(holdout[names])[:, 1], dtype=np.float64)
        model_answers = np.array([not a.get("fallback") for a in scored])
        diff = np.abs(api_scores - expected)[model_answers]
        worst = float(diff.max()) if diff.size else math.inf
        tolerance = policy.staging_parity_tolerance
        results[Test.PARITY] = Outcome(
            worst <= tolerance,
            f"max |API - registered model| on {int(model_answers.sum())} of {len(rows)} rows: {worst:.3g}",
            worst if math.isfinite(worst) else None,
            tolerance,
        )
        labels = holdout[LABEL].to_numpy()
        if len(set(labels.tolist())) < 2:
            results[Test.AUC] = Outcome(False, "the holdout sample holds one class only: no AUC")
        else:
            auc = roc_auc(labels, api_scores)
            gate = policy.staging_auc_gate
            results[Test.AUC] = Outcome(auc >= gate, f"ROC AUC {auc:.4f} on {len(rows)} rows (gate {gate})",
                                        auc, gate)  # fmt: skip
    if holdout is None or not len(holdout) or not names or any(n not in holdout.columns for n in names):
        results[Test.LATENCY] = Outcome(False, "no input rows to time")
    else:
        rows = request_rows(holdout, names)
        timings = []
        for index in range(policy.staging_latency_requests):
            item = _item(rows[index % len(rows)], 100_000 + index, run)
            started = time.perf_counter()
            session.score([item])
            timings.append((time.perf_counter() - started) * 1000)
        p99, budget = nearest_rank_p99(timings), _latency_budget_ms(rollout.model)
        results[Test.LATENCY] = Outcome(p99 <= budget, f"p99 {p99:.1f} ms over {len(timings)} requests "
                                        f"(budget {budget:g} ms)", p99, budget)  # fmt: skip
    fallbacks = sum(bool(a.get("fallback")) for a in session.answers)
    results[Test.FALLBACKS] = Outcome(
        fallbacks == 0, f"{fallbacks} of {len(session.answers)} answers came from the rules", fallbacks, 0
    )
    return results


def staging_tests_run(*, rollout_id: int, attempt: int) -> list[StagingTestResult]:
    """Run one attempt of a staging deployment's tests and store its results; safe to run twice.

    Nothing runs when the attempt already has results, or the rollout is no longer running its tests.
    """
    from apps.serving.services import staging_client_token

    rollout = Rollout.objects.select_related("model", "candidate", "candidate__dataset", "policy").get(
        pk=rollout_id
    )
    if (
        rollout.state != Rollout.State.STAGING_TESTS
        or rollout.staging_results.filter(attempt=attempt).exists()
    ):
        return list(rollout.staging_results.filter(attempt=attempt))
    base = settings.HAFNIUM_INFERENCE_URL.rstrip("/")
    session = Session(
        url=f"{base}/api/v1/models/{quote(rollout.model.name, safe='')}/score?environment=staging",
        token=staging_client_token(),
    )
    try:
        outcomes = _run(rollout, session)
    except CouldNotRun as exc:
        outcomes = {test: Outcome(None, f"could not run: {exc}") for test in Test.values}
        if exc.by_rules and attempt >= FALLBACK_ATTEMPTS:
            detail = f"{attempt} attempts answered by the rules, never by the model: {exc}"
            outcomes[Test.SIGNATURE] = outcomes[Test.FALLBACKS] = Outcome(False, detail)
    except AssertionError as exc:  # the API refused a well-formed request: the version's fault
        outcomes = {test: Outcome(False, str(exc)) for test in Test.values}
    stored = []
    try:
        with transaction.atomic():
            for test in Test.values:
                outcome = outcomes[test]
                stored.append(
                    StagingTestResult.objects.create(
                        rollout=rollout,
                        version=rollout.candidate,
                        attempt=attempt,
                        test=test,
                        passed=outcome.passed,
                        value=outcome.value,
                        threshold=outcome.threshold,
                        detail=outcome.detail[:2000],
                    )
                )
            # Results in: the controller may read them now rather than when the lease runs out.
            Rollout.objects.filter(pk=rollout.pk).update(tests_lease_until=None)
    except IntegrityError:  # a redelivered copy stored this attempt first
        return list(rollout.staging_results.filter(attempt=attempt))
    return stored
