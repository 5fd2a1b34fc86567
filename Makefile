# lstm-suite: `make help` lists the targets. Every target creates .venv on first use.
TASK ?= music
ARGS ?=
CKPT ?=
TEXT ?=
IN ?=
OUT ?=
AUDIO ?=
VIDEO ?=
HORIZON ?=
TASKS ?=
PORT ?=
TRAINER ?=
TORCHRUN ?=
BENCH ?= suite
# pytest-xdist processes for `make test`: one process leaves a core idle while tests wait on training subprocesses
TEST_WORKERS ?= 2
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUITE := $(VENV)/bin/lstm-suite
# paths are quoted, so they may hold spaces
ckpt_flag = $(if $(CKPT),--ckpt "$(CKPT)")
# AUDIO, VIDEO: one path as it is (spaces and all) when it exists, else its words (several files; globs expand)
paths = set -- "$(1)"; [ -e "$$1" ] || set -- $(1);

.DEFAULT_GOAL := help
.PHONY: help venv train sample translate transcribe forecast classify serve demo test bench clean

help: ## Show this help
	@echo "usage: make TARGET [TASK=name] [ARGS=\"--key=value ...\"] [CKPT=path] [TRAINER=cpu|gpu|gpus|nodes|ddp-cpu]"
	@echo "       make train TRAINER=nodes TORCHRUN=\"--nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d ...\"  (run on every node)"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'
	@echo
	@echo "tasks: music, music-pianoroll, translation, speech, forecast, video   (details: .venv/bin/lstm-suite tasks)"

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## Create .venv and install the project (done by every target when needed)

$(VENV)/.serve-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[serve]'
	touch $@

train: venv ## Train TASK (default music) from configs/TASK.yaml; e.g. ARGS="--trainer.max_epochs=3"
	$(if $(TORCHRUN),$(VENV)/bin/torchrun $(TORCHRUN) --no-python) $(SUITE) train $(TASK) $(if $(TRAINER),--config configs/trainer/$(TRAINER).yaml) $(ARGS)

sample: venv ## Sample from TASK's newest best checkpoint (or CKPT=path); options in ARGS, see ARGS=--help
	$(SUITE) sample $(TASK) $(ckpt_flag) $(ARGS)

translate: venv ## Translate TEXT="..." (or IN=file OUT=file) with CKPT (default: newest best translation run)
	$(SUITE) translate translation $(ckpt_flag) $(if $(TEXT),--text "$(TEXT)") $(if $(IN),--in "$(IN)") $(if $(OUT),--out "$(OUT)") $(ARGS)

transcribe: venv ## Transcribe AUDIO=file.wav (several files or a folder) with CKPT (default: newest best speech run)
	$(call paths,$(AUDIO)) $(SUITE) transcribe speech $(ckpt_flag) "$$@" $(ARGS)

forecast: venv ## Forecast HORIZON=52 steps past the end of the data with CKPT (default: newest best forecast run); CSV in OUT
	$(SUITE) forecast forecast $(ckpt_flag) $(if $(HORIZON),--horizon $(HORIZON)) $(if $(OUT),--out "$(OUT)") $(ARGS)

classify: venv ## Classify VIDEO=clip.mp4 (several files or a folder) with CKPT (default: newest best video run)
	$(call paths,$(VIDEO)) $(SUITE) classify video $(ckpt_flag) "$$@" $(ARGS)

serve: $(VENV)/.serve-installed ## HTTP server (LitServe) over each task's newest best checkpoint on PORT=8000; TASKS="music translation" to choose
	$(SUITE) serve $(TASKS) $(if $(PORT),--port $(PORT)) $(ARGS)

demo: $(VENV)/.serve-installed ## Web demo (Gradio) of each task's newest best checkpoint on PORT=7860; TASKS="..." to choose
	$(SUITE) demo $(TASKS) $(if $(PORT),--port $(PORT)) $(ARGS)

test: venv $(VENV)/.serve-installed ## Run the test suite (fast: tiny models, generated data)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

bench: venv ## Run bench/$(BENCH).py: default suite, every task's speed, memory and generation in one table (~15 min); or BENCH=pianoroll, BENCH=translation ARGS="speed ..."
	$(PY) bench/$(BENCH).py $(ARGS)

clean: ## Remove runs/ (every run: checkpoints, logs, samples), .pytest_cache/ and __pycache__/ folders outside .venv (keeps .venv and the data cache)
	rm -rf runs .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
