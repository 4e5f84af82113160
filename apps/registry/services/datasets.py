"""Dataset versions: Parquet files kept under DATASET_ROOT by content hash, with a DVC pointer."""

import hashlib
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction

from apps.audit.services import audit_record
from hafnium_portal.errors import DomainError

from ..models import DatasetVersion

# The name is a folder of the dataset store: nothing that could climb out of it.
DATASET_NAME = re.compile(r"\w[\w.-]*")


def _file_digests(path: Path) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _parquet_schema(path: Path) -> tuple[int, list[dict]]:
    metadata = pq.read_metadata(path)
    schema = pq.read_schema(path)
    return metadata.num_rows, [{"name": field.name, "type": str(field.type)} for field in schema]


def dataset_register(
    *, actor, name: str, source: Path, description: str = "", params: dict | None = None
) -> DatasetVersion:
    """Register a Parquet file as a dataset version; the same content twice is the same version.

    The file is copied into the dataset store under its content hash, with a DVC pointer (`.dvc`)
    beside it, so that DVC can track the very same file. The version records both locations
    relative to DATASET_ROOT: no server path leaves the portal.
    """
    source = Path(source)
    if not DATASET_NAME.fullmatch(name):
        raise DomainError(f"dataset name {name!r}: use letters, digits, '.', '_' and '-' only")
    if not source.is_file():
        raise DomainError(f"dataset file {source} does not exist")
    try:
        rows, schema = _parquet_schema(source)
    except Exception as exc:
        raise DomainError(f"{source} is not a readable Parquet file: {exc}") from exc
    sha256, md5 = _file_digests(source)
    existing = DatasetVersion.objects.filter(name=name, sha256=sha256).first()
    if existing is not None:
        return existing
    # The copy happens before (and outside) the transaction: a slow disk never holds database locks.
    root = Path(settings.DATASET_ROOT)
    stored = root / name / f"{sha256}.parquet"
    stored.parent.mkdir(parents=True, exist_ok=True)
    if not stored.exists():
        shutil.copyfile(source, stored)
    size = stored.stat().st_size
    pointer = stored.with_name(stored.name + ".dvc")
    pointer.write_text(f"outs:\n- md5: {md5}\n  size: {size}\n  hash: md5\n  path: {stored.name}\n")
    with transaction.atomic():
        dataset, created = DatasetVersion.objects.get_or_create(
            name=name,
            sha256=sha256,
            defaults={
                "md5": md5,
                "size_bytes": size,
                "row_count": rows,
                "schema": schema,
                "path": stored.relative_to(root).as_posix(),
                "dvc_path": pointer.relative_to(root).as_posix(),
                "description": description,
                "params": params or {},
                "created_by": actor,
            },
        )
        if created:
            audit_record(
                actor=actor,
                action="registry.dataset_registered",
                obj=dataset,
                after={"sha256": sha256, "rows": rows, "location": dataset.path, "params": params or {}},
            )
    return dataset
