import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: torch's intra-op threads on top of that oversubscribe the
    # cores, and OpenMP's spinning threads then cost more than they give. One thread per worker (inherited by
    # the training subprocesses the tests start).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

os.environ.setdefault("WANDB_MODE", "offline")  # tests never talk to wandb's servers
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads the user's ~/.netrc, wandb settings or ~/.cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
