import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")  # tests never talk to wandb's servers
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads the user's ~/.netrc, wandb settings or ~/.cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
