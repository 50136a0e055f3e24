# jitrun: build, test, lint, demo, install.
#
#   make deps     install what the tests need (Debian packages via apt-get when root; Python modules via pip)
#   make build    cargo build --workspace (first installs the Debian packages the build needs, when root;
#                 every target that builds does: see "What the machine needs" below)
#   make lint     cargo fmt --check + clippy -D warnings + no import circles (scripts/module_cycles.py)
#   make test     deps, build, lint, audit, cargo test, policy-test, packages, then the end-to-end tests (root only)
#   make audit    cargo-deny: banned crates, licences, sources (offline); make audit-advisories: RustSec (needs GitHub)
#   make policy-test  jitctl policy check --strict and policy test on policy-examples/
#   make demo     the whole just-in-time flow, narrated, with a real jitbroker on loopback and throwaway
#                 users: request, two approvals, the run, revocation, expiry (root only; about a minute)
#   make install  PREFIX/DESTDIR-aware install of jitrun (setuid root), jitctl and /etc/jitrun
#   make deb      target/debian/jitrun_*.deb (jitrun 4755, jitctl, config, PAM, units, man pages,
#                 completions) and jitbroker_*.deb, from one release build (installs cargo-deb)
#   make rpm      the same as target/generate-rpm/*.rpm (installs cargo-generate-rpm)
#   make bench    jitrun against sudo, sudo-rs and doas, issue 17's A/B builds, policy scale, peak RSS,
#                 session recording (100 MiB recorded vs not, vs script and sudo log_output)
#                 -> docs/benchmarks.md (root only; installs sudo, opendoas, hyperfine and sudo-rs;
#                 takes minutes; not in make test; BENCH_ONLY=recording runs the recording step alone)
#   make bench-broker  grants/s and p50/p99 latency of a release jitbroker on loopback (wrk) at
#                 concurrency 1, 16, 64 on SQLite and on PostgreSQL with 1 and 2 replicas, CPU per
#                 grant, revocation-sync capacity, then p99 quiet vs under 2,000 idle + 1,100
#                 slowloris connections (scripts/bench_broker.py; BENCH_SECONDS per level,
#                 BENCH_ATTACK_REQUESTS; not in make test)
#   make bench-revocation  seconds from `jitctl revoke` to the end of the revoked command on 3 hosts
#                 in network namespaces running `jitctl revocations watch` against a TLS replica
#                 on PostgreSQL (scripts/bench_revocation.py; root only; not in make test)
#   make fuzz     cargo fuzz on the policy parser, argv patterns, tokens, settings and the policy
#                 snapshot decoder (FUZZ_SECONDS each)
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
LOGDIR        ?= /var/log
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

# ---- What the machine needs: the Debian/Ubuntu package lists, all here ---------------------------
# scripts/need-deb-packages installs what is missing (root: apt-get, saying what it installs) or
# says in one line what is missing and how to install it (not root), before the target runs.
# The Rust toolchain (rust-version in Cargo.toml, with rustfmt and clippy) is not a Debian package.
#
# DEB_BUILD_PACKAGES: what every target that builds needs: gcc + libc headers (ring's C code, the
# bundled SQLite, cargo install). No PAM headers or link library: jitrun loads libpam (libpam0g)
# with dlopen, only when a rule authenticates (crates/jitrun/src/system/pam.rs).
DEB_BUILD_PACKAGES := gcc libc6-dev
# DEB_DEMO_PACKAGES: what `make demo` (scripts/demo.py, tests/harness/jitlab.py) runs, besides the
# build: unshare/setpriv/findmnt (util-linux), mount, useradd/userdel (passwd), capsh (libcap2-bin).
DEB_DEMO_PACKAGES := util-linux mount passwd libcap2-bin
# DEB_PKG_PACKAGES: what `make deb` and `make rpm` run besides the build: dpkg-shlibdeps (dpkg-dev,
# the .deb's Depends), strip (binutils; tests/deps reads jitrun's symbols with its nm).
DEB_PKG_PACKAGES := dpkg-dev binutils
# DEB_PACKAGES: what the tests need on top of those (`make deps` installs them all): setcap/getcap
# (libcap2-bin, above), procps, pip, rsyslog (the audit round trip through a real rsyslogd, started
# privately by the tests; the package starts no daemon without an init); for tests/packaging: man-db
# (the tests render the installed man pages), rpm (the tests read and install the .rpm), lintian
# (Debian's checks on the .debs) and mandoc (`mandoc -T lint` on every man page shipped);
# for PAM: libpam0g (the library jitrun loads for rules with authenticate = true), the PAM modules,
# pamtester (tests/e2e/test_pam.py); sudo: import-sudoers is tested against
# Debian's default /etc/sudoers, sudo's examples file and `sudo -l -U` (tests/policy_tools);
# systemd: tests/e2e/test_audit_sender.py starts a private systemd-journald (its own namespaces;
# systemd need not be running) to check the audit sender check on hosts where journald owns /dev/log;
# strace: tests/broker counts the broker's fsync calls (a grant is on disk before it is answered);
# zbar-tools: tests/e2e_broker decodes the QR codes of sealed break-glass grants with zbarimg;
# iproute2: tests/e2e_broker puts hosts in network namespaces (ip netns, veth pairs);
# busybox: a multi-call program (tests/e2e/test_attacks.py: a command's argv[0] is the path its rule matched);
# asciinema: session recordings must play in Debian's own player (tests/session: `asciinema cat`
# prints exactly what the recorded command wrote); tmux and less: the pty relay is tested on a
# real terminal (tests/e2e/test_session_terminal.py: tmux send-keys, capture-pane, resize-window,
# and less as the full-screen program that follows a resize);
# chromium, chromium-driver: tests/e2e_web drives the broker's web pages in Debian's Chromium,
# headless, through Selenium and Debian's chromedriver (no browser is downloaded at test time).
# postgresql: the broker tests run every test on a throwaway PostgreSQL cluster too (initdb and
# pg_ctl as an unprivileged user, a private port and socket: tests/harness/pgcluster.py; never
# the package's own cluster, which is not started here); libpq5 (psycopg's client library).
DEB_PACKAGES := procps python3 python3-pip rsyslog man-db rpm lintian mandoc libpam0g libpam-modules libpam-runtime pamtester sudo systemd strace busybox asciinema tmux less chromium chromium-driver zbar-tools iproute2 postgresql libpq5
NEED_DEB := scripts/need-deb-packages
# python module name = pip package name. selenium drives Chromium (tests/e2e_web);
# oidc_provider_mock is the OpenID Connect provider the web tests sign in with (tests/harness/oidc_provider.py).
PY_MODULES := pytest=pytest hypothesis=hypothesis pyseto=pyseto syslog_rfc5424_parser=syslog-rfc5424-parser yaml=PyYAML sigma.cli=sigma-cli sigma.backends.elasticsearch=pysigma-backend-elasticsearch jsonschema=jsonschema schemathesis=schemathesis cryptography=cryptography psycopg=psycopg selenium=selenium oidc_provider_mock=oidc-provider-mock

.PHONY: all deps build-deps demo-deps deb-tools rpm-tools deny-tools pkg-assets build release lint audit audit-advisories unit policy-test e2e test demo bench bench-broker bench-revocation fuzz defence-check install deb rpm clean

all: build

deps: build-deps
	@$(NEED_DEB) --warn-if-not-root "make test (the end-to-end tests, root only)" $(DEB_DEMO_PACKAGES) $(DEB_PKG_PACKAGES) $(DEB_PACKAGES)
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
	@$(MAKE) --no-print-directory deb-tools rpm-tools

# cargo-deb and cargo-generate-rpm build the agent's packages; installed once (skipped when present).
# Supply-chain checks with cargo-deny (deny.toml): banned crates (`users`, OpenSSL), licences,
# sources (crates.io only). These need no network. The RustSec advisory check needs the advisory
# database, which cargo-deny fetches from GitHub: `make audit-advisories` where that is reachable
# (this project's CI reaches only the package registries, so it is not part of `make test`).
deny-tools: build-deps
	@$(CARGO) deny --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deny

audit: deny-tools
	$(CARGO) deny check bans licenses sources

audit-advisories: deny-tools
	$(CARGO) deny check advisories

deb-tools: build-deps
	@$(CARGO) deb --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deb

# Every target that compiles depends on build-deps (cargo install included: the tools build from source).
build-deps:
	@$(NEED_DEB) "building jitrun" $(DEB_BUILD_PACKAGES)

demo-deps:
	@$(NEED_DEB) "make demo" $(DEB_DEMO_PACKAGES)

build: build-deps
	$(CARGO) build --workspace

release: build-deps
	$(CARGO) build --workspace --release

# module_cycles.py: no import circle between the modules of any crate (beyond the ones it lists).
# defence_check.py --list: every defence's snippet is still in its file exactly once (no build).
lint: build-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PYTHON) scripts/module_cycles.py
	@$(PYTHON) scripts/defence_check.py --list >/dev/null || { $(PYTHON) scripts/defence_check.py --list | tail -5; exit 1; }

unit: build-deps
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

# The example policies must pass the strict lint and their own [[test]] cases.
policy-test: build
	target/debug/jitctl policy check --strict policy-examples/
	target/debug/jitctl policy test policy-examples/

# tests/packaging installs the .deb packages (made by `deb`) on this machine with dpkg and purges them,
# and installs the .rpm packages into a throwaway root with Debian's rpm.
test: deps build lint audit unit policy-test deb rpm e2e

# DEMO_FAST=1: no pauses between the steps (tests/e2e/test_demo.py).
ifeq ($(IS_ROOT),yes)
demo: build demo-deps
	$(PYTHON) scripts/demo.py
else
demo:
	@echo "make demo needs root: it creates throwaway users, installs a setuid copy of jitrun and runs a broker (sudo make demo)"; exit 1
endif

# Benchmarks (never part of `make test`): installs its tools, runs as a throwaway user against the
# release build, writes docs/benchmarks.md (with the A/B builds of issue 17's steps, in target/bench-ab).
# Knobs: BENCH_RUNS, BENCH_SCALE_RUNS, BENCH_AB_RUNS, BENCH_AB=0, BENCH_MICRO=0 (scripts/bench.py).
bench: release
ifeq ($(IS_ROOT),yes)
	CARGO="$(CARGO)" $(PYTHON) scripts/bench.py
else
	@echo "make bench needs root (it installs packages, creates a throwaway user and setuid copies)"; exit 1
endif

# Broker benchmark (never part of `make test`): a release jitbroker on loopback with a fresh SQLite
# store under target/; grants issued per second end to end (auto-approved requests) at concurrency
# 1, 16, 64; then the latency of the same requests while idle and slowloris connections are held.
bench-broker: build-deps
	@$(NEED_DEB) "make bench-broker (wrk drives the load; PostgreSQL and taskset for the set-ups)" wrk postgresql libpq5 util-linux
	@$(PYTHON) -c "import psycopg, pyseto" 2>/dev/null || $(MAKE) --no-print-directory deps
	$(CARGO) build --release -p jit-broker
	JITBROKER=target/release/jitbroker $(PYTHON) scripts/bench_broker.py

bench-revocation: build demo-deps
ifeq ($(IS_ROOT),yes)
	@$(NEED_DEB) "make bench-revocation (two replicas on PostgreSQL, hosts in network namespaces)" postgresql libpq5 iproute2
	$(PYTHON) scripts/bench_revocation.py
else
	@echo "make bench-revocation needs root (throwaway users, a setuid jitrun, network namespaces)"; exit 1
endif

# Fuzzing (never part of `make test`): cargo-fuzz needs nightly-only flags (-Zsanitizer); this
# machine has one stable toolchain, so RUSTC_BOOTSTRAP=1 lets it use them. Corpora are committed
# under fuzz/corpus/ (for `snapshot`, the policy snapshot decoder of the setuid path, only its
# seeds: the snapshots of policy-examples/, from `cargo run --example snapshot_seeds --
# corpus/snapshot` in fuzz/); findings land in fuzz/artifacts/.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := policy pattern token settings snapshot
fuzz: build-deps
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

# Issue 4's "every attack has a test that fails if the defence is removed": each defence in
# scripts/defence_check.py is removed once from a scratch copy under target/defence-check/ (own
# CARGO_TARGET_DIR, incremental), jitrun rebuilt, and its tests must then fail (never in make test).
DEFENCE_CHECK_ARGS ?=
defence-check: build-deps
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
	install -m 0755 $(INSTALL_OWNER) target/release/jitbroker $(DESTDIR)$(BINDIR)/jitbroker
	install -d -m 0755 $(INSTALL_OWNER) $(DESTDIR)$(SYSCONFDIR)/jitrun
	install -d -m 0755 $(INSTALL_OWNER) $(DESTDIR)$(SYSCONFDIR)/jitrun/policy.d
	install -d -m 0755 $(INSTALL_OWNER) $(DESTDIR)$(SYSCONFDIR)/jitrun/keys.d
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/jitrun/jitrun.toml ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/jitrun/jitrun.toml"; \
	else \
	  install -m 0644 $(INSTALL_OWNER) packaging/jitrun.toml $(DESTDIR)$(SYSCONFDIR)/jitrun/jitrun.toml; \
	fi
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/jitrun/client.toml ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/jitrun/client.toml"; \
	else \
	  install -m 0644 $(INSTALL_OWNER) packaging/client.toml $(DESTDIR)$(SYSCONFDIR)/jitrun/client.toml; \
	fi
	install -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0644 packaging/systemd/jitrun-revocations-sync.service packaging/systemd/jitrun-revocations-sync.timer $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 0644 packaging/systemd/jitrun-sessions-prune.service packaging/systemd/jitrun-sessions-prune.timer $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -d -m 0700 $(INSTALL_OWNER) $(DESTDIR)$(LOCALSTATEDIR)/jitrun
	install -d -m 0700 $(INSTALL_OWNER) $(DESTDIR)$(LOGDIR)/jitrun/sessions
ifneq ($(IS_ROOT),yes)
	@echo "note: not root: files are not owned by root, so the installed jitrun is not usable setuid"
endif

# The packages: one release build of the binaries and of jit-docgen (which writes the man pages
# of jitctl and jitbroker and the completions), the copyright files from `cargo metadata`, the
# hand-written man pages (all into PKG_DIR); then cargo-deb / cargo-generate-rpm with the
# metadata in crates/jitrun and crates/jit-broker. The generated man pages are dated
# SOURCE_DATE_EPOCH: by default the last commit's time, so the same commit gives the same pages.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
PKG_DIR := target/release/pkg
DEB_DIR := target/debian
RPM_DIR := target/generate-rpm
pkg-assets: build-deps
	@$(NEED_DEB) "make deb and make rpm" $(DEB_PKG_PACKAGES)
	$(CARGO) build --release --locked -p jitrun -p jitctl -p jit-broker -p jit-docgen
	rm -rf $(PKG_DIR)
	mkdir -p $(PKG_DIR)
	$(PYTHON) packaging/gen-copyright.py $(PKG_DIR)/copyright-jitrun jitrun jitctl
	$(PYTHON) packaging/gen-copyright.py $(PKG_DIR)/copyright-jitbroker jit-broker
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) target/release/jit-docgen $(PKG_DIR) >/dev/null
	cp packaging/man/*.1 packaging/man/*.5 $(PKG_DIR)/man/
	gzip -9nf $(PKG_DIR)/man/*.1 $(PKG_DIR)/man/*.5 $(PKG_DIR)/broker-man/*.1

deb: deb-tools pkg-assets
	rm -rf $(DEB_DIR)
	$(CARGO) deb --locked -p jitrun --no-build -o $(DEB_DIR)
	$(CARGO) deb --locked -p jit-broker --no-build -o $(DEB_DIR)
	@ls -1 $(DEB_DIR)/*.deb

rpm-tools: build-deps
	@$(CARGO) generate-rpm --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-generate-rpm

# cargo-generate-rpm does not strip (cargo-deb strips its own copies): strip the release
# binaries in place, so that the .deb and the .rpm hold the same code.
rpm: rpm-tools pkg-assets
	rm -rf $(RPM_DIR) && mkdir -p $(RPM_DIR)
	strip target/release/jitrun target/release/jitctl target/release/jitbroker
	$(CARGO) generate-rpm -p crates/jitrun -o $(RPM_DIR)
	$(CARGO) generate-rpm -p crates/jit-broker -o $(RPM_DIR)
	@ls -1 $(RPM_DIR)/*.rpm

clean:
	$(CARGO) clean
	rm -rf .pytest_cache tests/.pytest_cache
	find tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +
