# Real-time emotion evaluator. Every target installs what it needs, from nothing.
#   make run     serve the page and the API at http://127.0.0.1:$(PORT)
#   make test    lint + the whole test suite (what CI runs)
#   make verify-model  re-measure the shipped models on FER+ Valid against their cards (CI too)
#   make train   train on FER+ (hours on a CPU; resumable), then export, compact, calibrate, evaluate
#   make synth   CDK synth (no AWS credentials, no Docker);  make deploy  cdk deploy
#   make bench   latency/throughput/cold start/size against the seed's design

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
FERPLUS ?= ../shared/data/ferplus
RUN ?= runs/ferplus-r34-64
EPOCHS ?= 24
# The shipped model's first representation (plain soft targets, standard augmentation); it
# was then warm-restarted twice with layer4 frozen and its classifier re-balanced (make
# rebalance, make balance): training/README.md has the commands. From-scratch balanced
# recipes (--tau 1, --defer, --live-aug) scored lower.
TRAIN_ARGS ?= --tau 0 --live-aug 0
MODEL ?= models/emotion.onnx
# The page's on-device classifier: a student distilled from the same teacher (timm resnet10t,
# weight-only int8, 5.5 MB; training/README.md "A device student, distilled"). The server can
# serve it too: EMOTION_MODEL=models/emotion-student.onnx.
DEVICE_MODEL ?= models/emotion-student.onnx
# The float export (training.fit.export) that `make compact` stores as $(MODEL), weight-only int8.
FLOAT ?= runs/float/emotion.onnx
# The shipped model's float16 weights, rebuilt from $(MODEL) once and cached under
# runs/shipped/ (training/fit/shipped.py): a shell assignment, so a failed rebuild stops the recipe.
SHIPPED_WEIGHTS = weights=$$($(PY) -m training.fit.shipped --model $(MODEL) $(1))
SITE_BUILD := build/site
export PYTHONPATH := $(CURDIR)/function:$(CURDIR)

.PHONY: run test dev lint train export balance rebalance finetune recalibrate calibrate eval verify-model compact quantize gpu-pack site synth deploy deploy-ci destroy lock smoke \
	bench clean

# --- installs -----------------------------------------------------------------------------
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# What `make run` needs: the function's runtime plus a server.
$(VENV)/.runtime: function/requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r function/requirements.txt uvicorn==0.54.0
	touch $@

# Only the Python packages, training's included (`python -m training.fit.train --help` needs them;
# `make run` installs just the server's).
dev: $(VENV)/.dev

# Everything the tests need (training included: the suite trains a tiny model).
$(VENV)/.dev: requirements-dev.txt function/requirements.txt training/requirements.txt \
		infra/requirements.txt infra/requirements-smoke.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# The deploy toolchain alone: the CDK app (infra/) needs aws-cdk-lib, constructs and cdk-nag,
# not the function's or training's packages (cdk.json runs it with this venv's Python).
CDK_VENV := .venv-cdk
$(CDK_VENV)/.installed: infra/requirements.txt
	$(PYTHON) -m venv $(CDK_VENV)
	$(CDK_VENV)/bin/python -m pip install -q --upgrade pip
	$(CDK_VENV)/bin/python -m pip install -q -r infra/requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian's Chromium for the browser tests (never `playwright install`).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# --- the page -----------------------------------------------------------------------------
site: $(SITE_BUILD)/.built
# The device's classifier ($(DEVICE_MODEL)) and the face detector go in under content-hashed
# names (tools/site_model.py); onnxruntime-web (wasm build) from npm runs both in
# js/classify-worker.js, fetched only in on-device mode. Never from a CDN.
CLASSIFIER := $(DEVICE_MODEL)
DETECTOR := models/face-detector.onnx
ORT_WEB := node_modules/onnxruntime-web/dist
$(SITE_BUILD)/.built: node_modules/.installed $(shell find site -type f 2>/dev/null) \
		$(CLASSIFIER) $(CLASSIFIER:.onnx=.json) $(DETECTOR) $(DETECTOR:.onnx=.json) tools/site_model.py
	rm -rf $(SITE_BUILD) && mkdir -p $(SITE_BUILD)/vendor
	cp -r site/. $(SITE_BUILD)/
	cp node_modules/tracking/build/tracking-min.js $(SITE_BUILD)/vendor/
	cp node_modules/tracking/build/data/face-min.js $(SITE_BUILD)/vendor/
	mkdir -p $(SITE_BUILD)/vendor/ort
	cp $(ORT_WEB)/ort.wasm.bundle.min.mjs $(SITE_BUILD)/vendor/ort/ort.wasm.min.js
	cp $(ORT_WEB)/ort-wasm-simd-threaded.wasm $(SITE_BUILD)/vendor/ort/
	$(PYTHON) tools/site_model.py $(CLASSIFIER) $(SITE_BUILD)/models
	$(PYTHON) tools/site_model.py $(DETECTOR) $(SITE_BUILD)/models detector.json
	touch $@

# --- serve ---------------------------------------------------------------------------------
# Slow clients are bounded: a request head must arrive within EMOTION_HEAD_TIMEOUT (10 s,
# emotion/serve.py), a body within EMOTION_BODY_TIMEOUT (30 s), and an idle keep-alive
# connection is closed after 5 s (tests/function/test_slow_clients.py).
SERVE_ARGS := --http emotion.serve:TimedH11Protocol --timeout-keep-alive 5 --no-access-log
run: $(VENV)/.runtime site
	EMOTION_STATIC_DIR=$(SITE_BUILD) $(VENV)/bin/uvicorn emotion.app:create_app --factory \
		--host $(HOST) --port $(PORT) $(SERVE_ARGS)

# --- test ----------------------------------------------------------------------------------
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(VENV)/.dev $(CDK_VENV)/.smoke node_modules/.installed /usr/bin/chromium site lint
	$(PY) -m pytest -q

# --- training ------------------------------------------------------------------------------
train: $(VENV)/.dev
	$(PY) -m training.fit.train --train $(FERPLUS)/FER2013Train --valid $(FERPLUS)/FER2013Valid \
		--run $(RUN) --epochs $(EPOCHS) --resume $(TRAIN_ARGS)
	$(MAKE) export compact eval

# The float export, into $(FLOAT): from the training run when it is here, else from the
# shipped model's weights (a fresh clone: rebuilt from $(MODEL), training/fit/shipped.py).
# PRIOR_WEIGHT trades mean per-class recall (0) for accuracy (1).
export: $(VENV)/.dev
	$(if $(wildcard $(RUN)/final.pth),source="--run $(RUN)",$(SHIPPED_WEIGHTS) && \
		source="--weights $$weights") && $(PY) -m training.fit.export $$source --out $(FLOAT) \
		$(if $(PRIOR_WEIGHT),--prior-weight $(PRIOR_WEIGHT))

# Accuracy and mean per-class recall for a range of prior weights (which PRIOR_WEIGHT to ship).
balance: $(VENV)/.dev
	$(PY) -m training.measure.choose_prior_weight --model $(MODEL) --valid $(FERPLUS)/FER2013Valid

# Retrain the last layer with the logit-adjusted loss on the frozen network's features
# (training/README.md), into runs/rebalanced.pth; then make export with --weights it.
rebalance: $(VENV)/.dev
	$(SHIPPED_WEIGHTS) && $(PY) -m training.fit.retrain_classifier --weights $$weights \
		--train $(FERPLUS)/FER2013Train --out runs/rebalanced.pth

# Fine-tune the shipped model on your own faces: DATA=<root>/<class>/*.jpg, OUT=new model.
# FER+ faces are replayed in every batch and FER+ Valid measures what was kept, when FERPLUS
# holds them (without them: distillation alone, and no check; the report says so).
OUT ?= models/finetuned.onnx
finetune: $(VENV)/.dev
	$(if $(DATA),,$(error usage: make finetune DATA=<folder per class> [OUT=$(OUT)]))
	$(call SHIPPED_WEIGHTS,--faces $(DATA)) && \
	$(PY) -m training.adapt.finetune --data $(DATA) --out $(OUT) --weights $$weights \
		$(if $(wildcard $(FERPLUS)/FER2013Train/label.csv),--replay $(FERPLUS)/FER2013Train) \
		$(if $(wildcard $(FERPLUS)/FER2013Valid/label.csv),--check $(FERPLUS)/FER2013Valid) \
		$(FINETUNE_ARGS)

# Recalibrate a deployment to the people it serves (training/adapt/recalibrate.py; seconds, the
# server's packages only): DATA=<folder per class>, OUT=<folder> gets emotion.onnx and a card
# with a `recalibration` block; serve it with EMOTION_MODEL=<OUT>/emotion.onnx make run.
recalibrate: $(VENV)/.runtime
	$(if $(and $(DATA),$(filter command line environment,$(origin OUT))),,$(error usage: make \
		recalibrate DATA=<folder per class> OUT=<folder> [RECALIBRATE_ARGS=--overwrite]))
	$(PY) -m training.adapt.recalibrate --data $(DATA) --out $(OUT) --model $(MODEL) $(RECALIBRATE_ARGS)

# The temperature that makes confidence match accuracy, fitted on Valid, into the card.
calibrate: $(VENV)/.dev
	$(PY) -m training.ship.calibrate --model $(MODEL) --valid $(FERPLUS)/FER2013Valid

eval: calibrate
	$(PY) -m training.measure.evaluate --model $(MODEL) --valid $(FERPLUS)/FER2013Valid \
		$(if $(wildcard $(RUN)/final.pth),--run $(RUN))

# The file git keeps and the server serves: the float export stored weight-only int8 (folded
# to float at load; first conv and head kept float16), measured against the float model on FER+
# Valid (within 0.3 accuracy points or nothing is written); its card beside it. `make export`
# first makes $(FLOAT). The device's student: make compact FLOAT=<its export>
# MODEL=$(DEVICE_MODEL) COMPACT_ARGS="--flip-tta drop --float-layers first_conv".
compact: $(VENV)/.dev
	@test -f $(FLOAT) || { echo "$(FLOAT) is not here: make export first" >&2; exit 1; }
	$(PY) -m training.ship.int8_weights --model $(FLOAT) --valid $(FERPLUS)/FER2013Valid \
		--out $(MODEL) $(COMPACT_ARGS)

# Re-measure the shipped models (the server's and the device's) on FER+ Valid against their
# cards and the floors in training/measure/verify.py (CI runs this after `make test`; FER+ must
# be at $(FERPLUS)).
verify-model: $(VENV)/.dev
	$(PY) -m training.measure.verify --valid $(FERPLUS)/FER2013Valid $(MODEL) $(DEVICE_MODEL)

# An int8-compute copy of the float export, kept only within 0.5 accuracy points (serve it
# with EMOTION_MODEL).
quantize: $(VENV)/.dev
	$(PY) -m training.ship.int8_compute --model $(FLOAT) --train $(FERPLUS)/FER2013Train \
		--valid $(FERPLUS)/FER2013Valid --out $(MODEL:.onnx=-int8.onnx)

# What training/gpu/train.sh needs on a lent GPU machine, which has no network: FER+ and
# fastai's wheels for its Python 3.12 (fastprogress 1.0.3: later ones pull in fasthtml).
GPU_WHEELS := fastai==2.8.12 fastcore==2.2.41 fastdownload==0.0.8 fastprogress==1.0.3 \
	fasttransform==0.0.5 plum-dispatch==2.9.0 beartype==0.23.1
gpu-pack: $(VENV)/.dev
	mkdir -p .gpu/wheels
	tar cf - -C $(FERPLUS) FER2013Train FER2013Valid | xz -9 -T0 > .gpu/ferplus.tar.xz
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux2014_x86_64 -d .gpu/wheels $(GPU_WHEELS)

# --- deploy --------------------------------------------------------------------------------
synth: $(CDK_VENV)/.installed node_modules/.installed site
	npx cdk synth --quiet

# BUILDX_NO_DEFAULT_ATTESTATIONS=1: Docker (buildx, containerd image store) otherwise adds
# provenance attestations, the pushed tag becomes an image index, and Lambda refuses its media
# type ("The image manifest, config or layer media type ... is not supported", aws/aws-cdk#31548).
deploy: $(CDK_VENV)/.installed node_modules/.installed site
	BUILDX_NO_DEFAULT_ATTESTATIONS=1 npx cdk deploy $(CDK_ARGS)

# The same for CI: no prompt for IAM or security-group changes (nobody is there to answer).
deploy-ci: $(CDK_VENV)/.installed node_modules/.installed site
	BUILDX_NO_DEFAULT_ATTESTATIONS=1 npx cdk deploy --require-approval never $(CDK_ARGS)

# make smoke's two extra packages (boto3, Pillow), in the same light venv.
$(CDK_VENV)/.smoke: infra/requirements-smoke.txt $(CDK_VENV)/.installed
	$(CDK_VENV)/bin/python -m pip install -q -r infra/requirements-smoke.txt
	touch $@

smoke: $(CDK_VENV)/.smoke
	$(if $(STACK),,$(error usage: make smoke STACK=<stack name>))
	$(CDK_VENV)/bin/python -m infra.smoke --stack $(STACK)

destroy: $(CDK_VENV)/.installed node_modules/.installed site
	npx cdk destroy $(CDK_ARGS)

# function/requirements.lock (every transitive pin, with hashes) from function/requirements.txt,
# for the Dockerfile's base image, arm64 and x86_64 (asks PyPI). Re-run after editing either.
lock: | $(VENV)/bin/python
	$(PY) -m infra.image lock

# --- benchmarks ----------------------------------------------------------------------------
bench: $(VENV)/.dev site
	$(PY) -m bench.run
	$(PY) -m bench.faces_load  # /faces, /face's face check; 64 clients x 60 s mixed, /health p99
	$(PY) -m bench.handler_timing > /dev/null  # /face, /faces through the Lambda handler
	$(PY) -m bench.detect_sides  # the detector's time and recall per EMOTION_DETECT_SIDE
	$(PY) -m bench.ondevice_live  # the live view on the device, every crop checked

clean:
	rm -rf build cdk.out .pytest_cache
