# Setup and entry points. `make demo` and `make test` each do the whole setup on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := PIP_DISABLE_PIP_VERSION_CHECK=1 $(PY) -m pip
TORCH_VERSION ?= $(shell sed -n 's/^torch==//p' constraints.txt)
export MUJOCO_GL ?= egl
# pip's warnings go to .venv/install.log (this install only); its tail is printed when a step fails.
LOGGED  = >> $(VENV)/install.log 2>&1 || { tail -n 40 $(VENV)/install.log >&2; exit 1; }

.PHONY: install system-deps browser-deps slurm-up slurm-down demo test test-fast report clean

# Debian packages for headless MuJoCo rendering through EGL on Mesa (imageio-ffmpeg ships ffmpeg).
DEB_PACKAGES := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libgles2
system-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

NO_DEPS_PACKAGES := gym-aloha==0.1.5 rlinf-robotwin-runtime==0.1.3
$(VENV)/.installed: pyproject.toml constraints.txt Makefile | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	: > $(VENV)/install.log
	$(PIP) install -q --upgrade pip $(LOGGED)
	# The CPU build of the pinned torch first (an unpinned torch pulls CUDA wheels), unless one is there.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==$(TORCH_VERSION) $(LOGGED)
	# The pinned stack (constraints.txt), then sfbench itself.
	$(PIP) install -q -c constraints.txt -e '.[test]' $(LOGGED)
	# Data-only packages, without their pins (gym-aloha's mujoco<3.9 / dm-control would break LIBERO's
	# mujoco): the ALOHA scene files (envs/aloha.py) and RoboTwin's step limits and instructions.
	$(PIP) install -q --no-deps $(NO_DEPS_PACKAGES) $(LOGGED)
	touch $@

install: $(VENV)/.installed

# Debian's headless Chromium for the report's browser tests (driven by Playwright, which downloads no browser).
BROWSER_PACKAGES := chromium
browser-deps:
	@missing=$$(for p in $(BROWSER_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The static report site of the committed results: results/site/index.html (opens from file://).
report: install
	$(VENV)/bin/sfbench report

# Evaluate the scripted expert on three libero_spatial tasks, print the summary and the leaderboard path.
demo: install
	$(VENV)/bin/sfbench eval suite=libero_spatial policy=scripted eval.tasks=[0,1,2] eval.episodes_per_task=3 eval.videos_per_task=1
	$(VENV)/bin/sfbench leaderboard

# A real single-node SLURM (munge, MariaDB + slurmdbd for sacct, slurmctld, slurmd) on localhost.
slurm-up:
	@if [ "$$(id -u)" = 0 ]; then bash tests/slurm/start_slurm.sh; \
	else echo "not root: cannot start SLURM here; tests marked slurm will be skipped"; fi

slurm-down:
	bash tests/slurm/stop_slurm.sh

test: install browser-deps slurm-up
	$(PY) -m pytest -q

test-fast: install browser-deps
	$(PY) -m pytest -q -m "not sim and not slurm"

clean:
	rm -rf $(VENV) .pytest_cache
