# jitrun: build, test, lint, demo, install.
#
#   make deps     install what the tests need (Debian packages via apt-get when root; Python modules via pip)
#   make build    cargo build --workspace
#   make lint     cargo fmt --check + clippy -D warnings
#   make test     deps, build, lint, cargo test, then the end-to-end tests (root only)
#   make demo     a narrated run of jitrun as a throwaway user (root only)
#   make install  PREFIX/DESTDIR-aware install of jitrun (setuid root), jitctl and /etc/jitrun
#   make bench    jitrun against sudo, sudo-rs and doas, policy scale, peak RSS -> docs/benchmarks.md
#                 (root only; installs sudo, opendoas, hyperfine and sudo-rs; takes minutes; not in make test)
#   make fuzz     cargo fuzz on the policy parser, argv patterns, tokens and settings (FUZZ_SECONDS each)
#   make defence-check  remove each security defence once from a scratch copy and check that its
#                 end-to-end tests then fail (root only; rebuilds jitrun per defence; not in make test)
#   make clean

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

CARGO   ?= cargo
PYTHON  ?= python3
PYTEST_ARGS ?= -q

PREFIX        ?= /usr
DESTDIR       ?=
BINDIR        ?= $(PREFIX)/bin
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var/lib

IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

# Debian packages the end-to-end tests and the demo use: unshare/setpriv/setsid/findmnt
# (util-linux), mount, useradd/userdel (passwd), gcc + libc headers for the C helpers,
# capsh/setcap/getcap (libcap2-bin), procps, pip, and rsyslog (the audit round trip through a
# real rsyslogd, started privately by the tests; the package starts no daemon without an init).
DEB_PACKAGES := util-linux mount passwd gcc libc6-dev libcap2-bin procps python3 python3-pip rsyslog libpam0g-dev libpam-modules libpam-runtime pamtester
# python module name = pip package name
PY_MODULES := pytest=pytest pyseto=pyseto syslog_rfc5424_parser=syslog-rfc5424-parser yaml=PyYAML sigma.cli=sigma-cli sigma.backends.elasticsearch=pysigma-backend-elasticsearch jsonschema=jsonschema

.PHONY: all deps build release lint unit e2e test demo bench fuzz defence-check install clean

all: build

deps:
ifeq ($(IS_ROOT),yes)
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing Debian packages:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
else
	@echo "deps: not root: not installing Debian packages ($(DEB_PACKAGES)); the end-to-end tests need root anyway"
endif
	@missing=""; \
	for pair in $(PY_MODULES); do \
	  mod=$${pair%%=*}; pkg=$${pair#*=}; \
	  $(PYTHON) -c "import $$mod" 2>/dev/null || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing Python packages:$$missing"; \
	  user=""; [ "$$(id -u)" = 0 ] || user="--user"; \
	  $(PYTHON) -m pip install -q $$user $$missing 2>/dev/null \
	    || $(PYTHON) -m pip install -q $$user --break-system-packages $$missing; \
	fi

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

# The harness self-tests need nothing; the end-to-end tests need root (they create users,
# install a setuid copy of jitrun and bind-mount its configuration in private mount namespaces).
e2e:
ifeq ($(IS_ROOT),yes)
	$(PYTHON) -m pytest $(PYTEST_ARGS) tests/
else
	@echo "*** The end-to-end tests (tests/e2e) need root: they create throwaway users and install a"
	@echo "*** setuid-root copy of jitrun. Running only the harness self-tests now; run 'sudo make test' for all."
	$(PYTHON) -m pytest $(PYTEST_ARGS) tests/harness
endif

test: deps build lint unit e2e

demo: build
ifeq ($(IS_ROOT),yes)
	$(PYTHON) scripts/demo.py
else
	@echo "make demo needs root (it creates a throwaway user and installs a setuid copy of jitrun)"; exit 1
endif

# Benchmarks (never part of `make test`): installs its tools, runs as a throwaway user against the
# release build, writes docs/benchmarks.md. Knobs: BENCH_RUNS, BENCH_SCALE_RUNS, BENCH_MICRO=0 (scripts/bench.py).
bench: release
ifeq ($(IS_ROOT),yes)
	CARGO="$(CARGO)" $(PYTHON) scripts/bench.py
else
	@echo "make bench needs root (it installs packages, creates a throwaway user and setuid copies)"; exit 1
endif

# Fuzzing (never part of `make test`): cargo-fuzz needs nightly-only flags (-Zsanitizer); this
# machine has one stable toolchain, so RUSTC_BOOTSTRAP=1 lets it use them. Corpora are committed
# under fuzz/corpus/; findings land in fuzz/artifacts/.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := policy pattern token settings
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

# Issue 4's "every attack has a test that fails if the defence is removed": each defence in
# scripts/defence_check.py is removed once from a scratch copy under target/defence-check/ (own
# CARGO_TARGET_DIR, incremental), jitrun rebuilt, and its tests must then fail (never in make test).
DEFENCE_CHECK_ARGS ?=
defence-check:
ifeq ($(IS_ROOT),yes)
	CARGO="$(CARGO)" $(PYTHON) scripts/defence_check.py $(DEFENCE_CHECK_ARGS)
else
	@echo "make defence-check needs root (the end-to-end tests create users and install setuid copies)"; exit 1
endif

INSTALL_OWNER := $(if $(IS_ROOT),-o root -g root,)

install: release
	install -d -m 0755 $(DESTDIR)$(BINDIR)
	install -m 4755 $(INSTALL_OWNER) target/release/jitrun $(DESTDIR)$(BINDIR)/jitrun
	install -m 0755 $(INSTALL_OWNER) target/release/jitctl $(DESTDIR)$(BINDIR)/jitctl
	install -d -m 0755 $(INSTALL_OWNER) $(DESTDIR)$(SYSCONFDIR)/jitrun
	install -d -m 0755 $(INSTALL_OWNER) $(DESTDIR)$(SYSCONFDIR)/jitrun/policy.d
	install -d -m 0755 $(INSTALL_OWNER) $(DESTDIR)$(SYSCONFDIR)/jitrun/keys.d
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/jitrun/jitrun.toml ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/jitrun/jitrun.toml"; \
	else \
	  install -m 0644 $(INSTALL_OWNER) packaging/jitrun.toml $(DESTDIR)$(SYSCONFDIR)/jitrun/jitrun.toml; \
	fi
	install -d -m 0700 $(INSTALL_OWNER) $(DESTDIR)$(LOCALSTATEDIR)/jitrun
ifneq ($(IS_ROOT),yes)
	@echo "note: not root: files are not owned by root, so the installed jitrun is not usable setuid"
endif

clean:
	$(CARGO) clean
	rm -rf .pytest_cache tests/.pytest_cache
	find tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +
