"""Every YAML in configs/ parses against its task's classes: no stale or misspelled key ships."""
from pathlib import Path

import pytest

from tasks.cli import main
from tasks.registry import TASKS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def task_of(config: Path) -> str:
    """configs/translation-multi30k.yaml belongs to `translation`: the longest task name it starts with."""
    return max((name for name in TASKS if config.stem.startswith(name)), key=len)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_task_config_builds(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", task_of(config), "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "model:" in printed and "data:" in printed


@pytest.mark.parametrize("variant", sorted((CONFIGS / "trainer").glob("*.yaml")), ids=lambda p: p.stem)
def test_trainer_variants_build(variant, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "music", "--config", str(variant), "--print_config"])
    assert exit_info.value.code == 0
    assert "accelerator:" in capsys.readouterr().out


def test_every_task_has_a_config():
    assert {task_of(c) for c in CONFIGS.glob("*.yaml")} == set(TASKS)
