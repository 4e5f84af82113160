"""Routing tables: which versions of a model answer its traffic, per environment, in basis points.

PostgreSQL keeps every revision (RoutingTable; the newest is in force) and is the source of truth.
Redis keeps a copy of the newest revision as a hash the scoring path reads in its one round trip:
`hafnium:serving:routes:<model>` (production) and `hafnium:serving:staging-routes:<model>` (staging),
`{version: basis points, "revision": n}`. A change is published after its commit; a publication only
replaces an older revision (two commits published out of order cannot leave the older one), and the
beat task `publish_routing_tables` publishes every table again, which heals a Redis that restarted
empty or a publication lost while Redis was down.
"""

import logging
import threading

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion, RegisteredModel
from hafnium_portal.errors import DomainError

from . import config
from .hotpath import ROUTES_KEY, STAGING_ROUTES_KEY
from .models import RoutingTable

log = logging.getLogger(__name__)

BASIS_POINTS = 10_000
ENVIRONMENTS = tuple(RoutingTable.Environment.values)
REVISION_FIELD = "revision"
REDIS_TIMEOUT = 2.0

# KEYS: the table's hash. ARGV: revision, then version, points, version, points...
# Replaces the hash unless it already holds this revision or a newer one; returns 1 when it did.
_PUBLISH = """
local current = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'revision', unpack(ARGV))
return 1
"""


def routes_key(model_name: str, environment: str) -> str:
    return (ROUTES_KEY if environment == RoutingTable.Environment.PRODUCTION else STAGING_ROUTES_KEY).format(
        model_name
    )


def _validated(model: RegisteredModel, environment: str, weights) -> dict[int, int]:
    """The weights in their stored form (versions with 0 points left out), or a DomainError saying why."""
    if environment not in ENVIRONMENTS:
        raise DomainError(f"Unknown environment {environment!r}: production or staging.")
    if not isinstance(weights, dict):
        raise DomainError("Weights are a mapping of version numbers to basis points.")
    table = {}
    for number, points in weights.items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise DomainError(f"{number!r} is not a version number.")
        if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= BASIS_POINTS:
            raise DomainError(f"The weight of v{number} must be whole basis points from 0 to {BASIS_POINTS}.")
        table[number] = points
    if table and sum(table.values()) != BASIS_POINTS:
        raise DomainError(f"The weights sum to {sum(table.values())} basis points, not {BASIS_POINTS}.")
    known = set(ModelVersion.objects.filter(model=model, version__in=table).values_list("version", flat=True))
    unknown = sorted(set(table) - known)
    if unknown:
        raise DomainError(f"{model} has no version {', '.join(f'v{n}' for n in unknown)}.")
    return {number: points for number, points in sorted(table.items()) if points > 0}


def _latest(model: RegisteredModel, environment: str) -> RoutingTable | None:
    return RoutingTable.objects.filter(model=model, environment=environment).order_by("-revision").first()


@transaction.atomic
def routes_set(
    *, model: RegisteredModel, environment: str, weights: dict[int, int], actor, reason: str
) -> RoutingTable:
    """A new revision of the model's routing table in `environment`, published to Redis after the commit.

    Idempotent: the weights in force again make no revision and no audit event (the table in force is
    returned; with no table yet and `{}`, an unsaved revision 0). Raises DomainError on bad weights.
    """
    table = _validated(model, environment, weights)
    RegisteredModel.objects.select_for_update().get(pk=model.pk)  # one new revision at a time
    current = _latest(model, environment)
    before = current.versions if current is not None else {}
    if before == table:
        return current or RoutingTable(model=model, environment=environment, revision=0, weights={})
    revision = RoutingTable.objects.create(
        model=model,
        environment=environment,
        revision=(current.revision if current else 0) + 1,
        weights={str(number): points for number, points in table.items()},
        reason=reason,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit_record(
        actor=actor,
        action="serving.routes_set",
        obj=revision,
        before={"environment": environment, "weights": before},
        after={"environment": environment, "weights": table, "revision": revision.revision, "reason": reason},
    )
    name, number = model.name, revision.revision
    transaction.on_commit(lambda: routes_publish(name, environment, number, table))
    config.bump()  # a routed version must be in the scoring processes' config, whatever its stage
    return revision


def routes_get(model: RegisteredModel, environment: str = "production") -> dict[int, int]:
    """The weights in force (from PostgreSQL); {} when the model has no table in this environment."""
    current = _latest(model, environment)
    return current.versions if current is not None else {}


def routed_versions() -> dict[int, set[int]]:
    """Versions named by a table in force, per model id (served whatever their stage)."""
    routed: dict[int, set[int]] = {}
    for model_id, weights in _in_force().values_list("model_id", "weights"):
        routed.setdefault(model_id, set()).update(int(number) for number in weights)
    return routed


def _in_force():
    newer = RoutingTable.objects.filter(
        model=OuterRef("model"), environment=OuterRef("environment"), revision__gt=OuterRef("revision")
    )
    return RoutingTable.objects.filter(~Exists(newer))


_client: tuple[str, redis.Redis] | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    """A client with timeouts of seconds (not the scoring path's milliseconds): this is no request."""
    global _client
    with _client_lock:
        if _client is None or _client[0] != settings.REDIS_URL:
            _client = (
                settings.REDIS_URL,
                redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
                ),
            )
        return _client[1]


def routes_publish(model_name: str, environment: str, revision: int, weights: dict[int, int]) -> bool:
    """Write a revision to Redis unless Redis holds it or a newer one. False (logged) when Redis failed."""
    arguments = [revision]
    for number, points in weights.items():
        arguments += [number, points]
    try:
        _redis().eval(_PUBLISH, 1, routes_key(model_name, environment), *arguments)
    except redis.RedisError as exc:  # the beat task publishes it again
        log.warning("could not publish the %s routing of %s r%s: %s", environment, model_name, revision, exc)
        return False
    return True


def routes_publish_all() -> int:
    """Publish every table in force (the beat task); returns how many were published."""
    published = 0
    for table in _in_force().select_related("model"):
        published += routes_publish(table.model.name, table.environment, table.revision, table.versions)
    return published
