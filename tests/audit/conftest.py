"""Each audit test keeps its checkpoints (and their key file) in a folder of its own."""

import pytest


@pytest.fixture(autouse=True)
def checkpoint_folder(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "audit-checkpoints")
    settings.AUDIT_CHECKPOINT_KEY_FILE = tmp_path / "audit-checkpoint-key"
    settings.AUDIT_CHECKPOINT_KEY = ""
    settings.AUDIT_CHECKPOINT_WEBHOOK_URL = ""
    return tmp_path / "audit-checkpoints"
