"""What the scoring hot path knows, held in each process: clients, models, versions, policies, rules.

PostgreSQL is the source of truth. A snapshot of it is kept in Redis under a versioned key; a change
(a token, a stage, a threshold, a rule) bumps the version after its commit. Each request reads the
version in its one pipelined round trip; a process fetches the snapshot again only when the version
moved or its copy is older than SERVING_CONFIG_MAX_AGE (which also bounds how long a change made
without a signal, a queryset update, takes to be seen). With Redis down, a process keeps its copy and
rebuilds it from the database once per max age.
"""

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import transaction

from .validation import Feature, features_of

log = logging.getLogger(__name__)

VERSION_KEY = "hafnium:serving:config-version"
SNAPSHOT_KEY = "hafnium:serving:config:{}"
DEFAULT_POLICY = {
    "review_at": 0.5,
    "decline_at": 0.9,
    "breaker_failures": 5,
    "breaker_reset_after": 30.0,
    "latency_budget_ms": 100.0,
}
# Versions that can be asked to answer (Production, and what a rollout may route to).
SERVABLE_STAGES = ("production", "staging", "candidate")


def token_digest(key: str) -> str:
    """Tokens are kept in the snapshot by digest: the snapshot in Redis holds no usable credential."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Client:
    user_id: int
    name: str
    can_score: bool
    can_score_staging: bool = False

    is_authenticated = True
    is_active = True

    @property
    def pk(self):
        return self.user_id


@dataclass(frozen=True)
class VersionConfig:
    number: int
    stage: str
    run_id: str
    source_uri: str
    features: tuple[Feature, ...]
    signature: dict | None = None

    def __str__(self) -> str:
        return f"v{self.number}"

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.numeric)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if not f.numeric)


@dataclass(frozen=True)
class ModelConfig:
    id: int
    name: str
    production: int | None
    versions: dict[int, VersionConfig]
    policy: dict
    rules: tuple[dict, ...]


@dataclass
class Snapshot:
    version: str
    clients: dict[str, Client] = field(default_factory=dict)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    loaded_at: float = 0.0


def build() -> dict:
    """The snapshot from the database, as JSON-ready data."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.db.models import Q
    from rest_framework.authtoken.models import Token

    from apps.registry.models import ModelVersion, RegisteredModel

    from .models import FallbackRule, ServingPolicy
    from .routing import routed_versions

    def holders(codename: str) -> set[int]:
        permission = Permission.objects.filter(content_type__app_label="serving", codename=codename).first()
        if permission is None:
            return set()
        allowed = Q(is_superuser=True) | Q(user_permissions=permission) | Q(groups__permissions=permission)
        return set(get_user_model().objects.filter(allowed, is_active=True).values_list("pk", flat=True))

    scorers, staging_scorers = holders("score"), holders("score_staging")
    clients = {
        token_digest(key): {
            "user_id": user_id,
            "name": username,
            "can_score": user_id in scorers,
            "can_score_staging": user_id in staging_scorers,
        }
        for key, user_id, username in Token.objects.filter(user__is_active=True).values_list(
            "key", "user_id", "user__username"
        )
    }
    models = {}
    for model_id, name in RegisteredModel.objects.values_list("pk", "name"):
        models[name] = {
            "id": model_id,
            "production": None,
            "versions": {},
            "policy": DEFAULT_POLICY,
            "rules": [],
        }
    names = {entry["id"]: name for name, entry in models.items()}
    # A version a routing table names answers whatever its stage (a rollback to an archived version).
    servable = Q(stage__in=SERVABLE_STAGES)
    for model_id, numbers in routed_versions().items():
        servable |= Q(model_id=model_id, version__in=numbers)
    servable = ModelVersion.objects.filter(servable).order_by("version")
    for version in servable.values("model_id", "version", "stage", "run_id", "source_uri", "signature"):
        entry = models[names[version["model_id"]]]
        try:
            features = [[f.name, f.kind, f.required] for f in features_of(version["signature"])]
        except (ValueError, KeyError, TypeError):
            log.warning("version %s of model %s has an unusable signature", version["version"], entry["id"])
            continue
        entry["versions"][str(version["version"])] = {
            "stage": version["stage"],
            "run_id": version["run_id"],
            "source_uri": version["source_uri"],
            "features": features,
            "signature": version["signature"],
        }
        if version["stage"] == "production":
            entry["production"] = version["version"]
    for policy in ServingPolicy.objects.order_by("model_id", "-version"):
        entry = models[names[policy.model_id]]
        if entry["policy"] is DEFAULT_POLICY:
            entry["policy"] = {key: getattr(policy, key) for key in DEFAULT_POLICY}
    for rule in FallbackRule.objects.order_by("model_id", "order", "id"):
        models[names[rule.model_id]]["rules"].append(rule.as_dict())
    return {"clients": clients, "models": models}


def _rules(model_name: str, data: list[dict]) -> tuple:
    """The model's fallback rules, ready to evaluate; one that does not parse is left out (and logged)."""
    from .rules import Rule

    rules = []
    for index, rule in enumerate(data):
        try:
            rules.append(Rule.from_dict(rule))
        except (KeyError, TypeError, ValueError) as exc:
            log.error("fallback rule %d of %s is unusable, left out: %s", index, model_name, exc)
    return tuple(rules)


def _parse(version: str, data: dict) -> Snapshot:
    models = {}
    for name, entry in data["models"].items():
        versions = {
            int(number): VersionConfig(
                number=int(number),
                stage=spec["stage"],
                run_id=spec["run_id"],
                source_uri=spec["source_uri"],
                features=tuple(Feature(n, kind, required) for n, kind, required in spec["features"]),
                signature=spec.get("signature"),
            )
            for number, spec in entry["versions"].items()
        }
        models[name] = ModelConfig(
            id=entry["id"],
            name=name,
            production=entry["production"],
            versions=versions,
            policy=entry["policy"],
            rules=_rules(name, entry["rules"]),
        )
    clients = {digest: Client(**client) for digest, client in data["clients"].items()}
    return Snapshot(version=version, clients=clients, models=models, loaded_at=time.monotonic())


_lock = threading.Lock()
_current: Snapshot | None = None


def reset() -> None:
    """Forget this process's copy (tests, after the database changed under it)."""
    global _current
    with _lock:
        _current = None


def peek() -> Snapshot | None:
    """This process's copy as it is, without checking it (what a request may need, before its read)."""
    return _current


def current(version: bytes | str | None, client: redis.Redis | None) -> Snapshot:
    """The snapshot for the config version read from Redis (None: Redis is down or has no version)."""
    global _current
    version = version.decode() if isinstance(version, bytes) else version
    snapshot = _current
    if _usable(snapshot, version):
        return snapshot
    with _lock:
        if not _usable(_current, version):
            _current = _load(version, client)
        return _current


def _usable(snapshot: Snapshot | None, version: str | None) -> bool:
    if snapshot is None or time.monotonic() - snapshot.loaded_at >= settings.SERVING_CONFIG_MAX_AGE:
        return False
    return version is None or snapshot.version == version


def _load(version: str | None, client: redis.Redis | None) -> Snapshot:
    if client is not None:
        try:
            if version is None:
                version = str(client.incr(VERSION_KEY))  # Redis lost it (a restart): start a new one
            raw = client.get(SNAPSHOT_KEY.format(version))
            if raw is not None:
                return _parse(version, json.loads(raw))
            data = build()
            client.set(
                SNAPSHOT_KEY.format(version),
                json.dumps(data, separators=(",", ":")),
                ex=max(1, int(settings.SERVING_CONFIG_MAX_AGE)),
            )
            return _parse(version, data)
        except redis.RedisError as exc:
            log.warning("serving config from Redis failed, reading the database: %s", exc)
    return _parse(version or "local", build())


_bump_failed_logged = False


def bump() -> None:
    """After the commit: tell every inference process that the snapshot is out of date."""

    def publish():
        from .hotpath import redis_client

        try:
            redis_client().incr(VERSION_KEY)
        except redis.RedisError as exc:  # processes notice within SERVING_CONFIG_MAX_AGE anyway
            global _bump_failed_logged
            if not _bump_failed_logged:
                _bump_failed_logged = True
                log.warning("could not publish a serving config change (seen within max age): %s", exc)

    transaction.on_commit(publish)
