"""The model card of a version: generated from the portal's records plus the owners' narrative."""

import hashlib
from dataclasses import dataclass, field

from .models import ModelCardRevision, ModelVersion

NARRATIVE_TITLES = {
    "intended_use": "Intended use",
    "out_of_scope_use": "Out-of-scope use",
    "limitations": "Limitations",
    "ethical_considerations": "Ethical considerations",
}
# What a card must have before a version may be promoted (governance checks `missing`).
REQUIRED = ["intended_use", "limitations", "owners", "training data", "metrics", "signature"]
METRIC_ORDER = ["roc_auc", "pr_auc", "ks", "brier", "log_loss"]


@dataclass
class ModelCard:
    version: ModelVersion
    narrative: dict[str, str]
    revision: ModelCardRevision | None
    owners: list[str]
    metrics: list[dict]
    features: list[dict]
    history: list[dict]
    missing: list[str] = field(default_factory=list)
    markdown: str = ""
    sha256: str = ""

    @property
    def complete(self) -> bool:
        return not self.missing


def _metric_rows(version: ModelVersion) -> list[dict]:
    names = [m for m in METRIC_ORDER if m in version.metrics] + sorted(
        m for m in version.metrics if m not in METRIC_ORDER
    )
    return [
        {"name": name, "value": version.metrics[name], "ci": version.confidence_intervals.get(name)}
        for name in names
    ]


def _features(version: ModelVersion) -> list[dict]:
    import json

    inputs = (version.signature or {}).get("inputs") or "[]"
    return json.loads(inputs) if isinstance(inputs, str) else inputs


def _body(card: ModelCard) -> str:
    version = card.version
    model = version.model
    lines = [
        f"# Model card: {model.name} v{version.version}",
        "",
        f"- Team: {model.team or 'none'}",
        f"- Owners: {', '.join(card.owners) or 'none'}",
        f"- Risk tier: {model.get_risk_tier_display()}",
        f"- MLflow run: {version.run_id or 'unknown'}",
        f"- Artifact sha256: {version.artifact_sha256 or 'unknown'}",
        "",
    ]
    if model.description:
        lines += [model.description, ""]
    for key, title in NARRATIVE_TITLES.items():
        lines += [f"## {title}", "", card.narrative.get(key) or "_Not written yet._", ""]
    lines += ["## Training data", ""]
    if version.dataset:
        dataset = version.dataset
        lines += [
            f"- Dataset: {dataset.name}",
            f"- sha256: {dataset.sha256}",
            f"- Rows: {dataset.row_count}",
            f"- DVC pointer: {dataset.dvc_location}",
            "",
        ]
    else:
        lines += ["_Unknown._", ""]
    lines += ["## Features", ""]
    lines += [f"- {f.get('name')} ({f.get('type')})" for f in card.features] or ["_No signature._"]
    lines += [
        "",
        "## Metrics (holdout, 95% bootstrap interval)",
        "",
        "| metric | value | interval |",
        "| --- | --- | --- |",
    ]
    for row in card.metrics:
        interval = f"{row['ci'][0]:.4f} to {row['ci'][1]:.4f}" if row["ci"] else "-"
        lines.append(f"| {row['name']} | {row['value']:.4f} | {interval} |")
    return "\n".join(lines) + "\n"


def model_card(version: ModelVersion) -> ModelCard:
    revision = version.model.card_revisions.first()
    narrative = {key: getattr(revision, key) if revision else "" for key in NARRATIVE_TITLES}
    card = ModelCard(
        version=version,
        narrative=narrative,
        revision=revision,
        owners=sorted(owner.get_username() for owner in version.model.owners.all()),
        metrics=_metric_rows(version),
        features=_features(version),
        history=[
            {"at": t.at, "from": t.from_stage, "to": t.to_stage, "actor": t.actor, "reason": t.reason}
            for t in version.transitions.select_related("actor")
        ],
    )
    present = {
        "intended_use": bool(narrative["intended_use"]),
        "limitations": bool(narrative["limitations"]),
        "owners": bool(card.owners),
        "training data": version.dataset_id is not None,
        "metrics": bool(card.metrics),
        "signature": bool(card.features),
    }
    card.missing = [item for item in REQUIRED if not present[item]]
    body = _body(card)
    # The hash covers the card's content, not its approval history, which grows as approvals come.
    card.sha256 = hashlib.sha256(body.encode()).hexdigest()
    history = ["## Stage history", ""] + [
        f"- {h['at']:%Y-%m-%d %H:%M %Z}: {h['from'] or '—'} → {h['to']} by {h['actor'] or 'system'}"
        + (f" ({h['reason']})" if h["reason"] else "")
        for h in card.history
    ]
    card.markdown = body + "\n" + "\n".join(history) + "\n"
    return card
