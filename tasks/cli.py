"""The `lstm-suite` command: `lstm-suite COMMAND TASK [options]`."""
from __future__ import annotations

import sys

from tasks.common.errors import InputError
from tasks.registry import TASKS, get_task


def usage() -> str:
    lines = ["usage: lstm-suite COMMAND TASK [options]   (add --help after TASK for the options)", "", "commands:"]
    lines.append("  train TASK [--key=value ...]  train with configs/TASK.yaml; any value can be overridden")
    lines.append("  tasks                         list the tasks")
    lines.append("  serve [TASK ...] [--port N]   HTTP server over each task's newest checkpoint (needs the serve extra)")
    lines.append("  demo [TASK ...] [--port N]    web demo of each task's newest checkpoint (needs the serve extra)")
    extra = sorted({c for t in TASKS.values() for c in t.commands})
    for command in extra:
        owners = ", ".join(t.name for t in TASKS.values() if command in t.commands)
        lines.append(f"  {command} TASK [options]{' ' * max(1, 14 - len(command))}(tasks: {owners})")
    lines += ["", "tasks:"] + [f"  {t.name:<16}{t.summary}" for t in TASKS.values()]
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command == "tasks":
        print("\n".join(f"{t.name:<16}{t.summary}" for t in TASKS.values()))
        return 0
    if command in ("serve", "demo"):  # any number of tasks; LitServe and Gradio are imported only here
        from tasks.serving import command as serving

        return serving.serve(rest) if command == "serve" else serving.demo(rest)
    if not rest or rest[0].startswith("-"):
        raise InputError(f"`lstm-suite {command}` needs a task: one of {', '.join(TASKS)}")
    task = get_task(rest[0])
    if command == "train":
        from tasks.common.training import train  # imports Lightning's CLI machinery only when training

        train(task, rest[1:])
        return 0
    if command not in task.commands:
        known = ", ".join(["train", *task.commands])
        raise InputError(f"task {task.name} has no command {command!r}: it has {known}")
    return task.commands[command](rest[1:])


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (InputError, FileNotFoundError) as error:
        print(f"lstm-suite: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
