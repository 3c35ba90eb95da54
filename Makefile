# The two commands of README.md. Each sets everything up in .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test system-deps readme-check test-compiled compiled uncompile check bench clean

# tools/system-deps installs (as root on Debian or Ubuntu) or names, in one message, the
# system packages a command needs before anything else runs: `run` needs Python 3.11+
# with venv, `test` also every program the suite starts (README.md, top).
$(STAMP): setup.cfg pyproject.toml
	@PYTHON=$(PYTHON) tools/system-deps run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[fast,test]'
	touch $(STAMP)

# The URL is the one etc/dakia/dakia.yaml listens on (tests/integration/test_readme.py
# opens it after `make run`, so a changed port in that file fails there).
# The sample's admin API (the dashboard) reads its token from etc/dakia/admin.token: a new
# random one is written the first time it is needed, and kept after (it is not in git).
etc/dakia/admin.token: | $(STAMP)
	$(BIN)/dakia-master init-token $@

run: $(STAMP) etc/dakia/admin.token
	@echo "dakia-prefork: open http://127.0.0.1:8080/ (Ctrl-C stops it)"
	@echo "dakia-prefork: the dashboard is http://127.0.0.1:9901/ (its token: etc/dakia/admin.token)"
	$(BIN)/dakia-master start -c etc/dakia/dakia.yaml

# mypy, the whole suite on the pure-Python modules (the reference), then the request-path
# tests again on the mypyc build: both builds must give the same results.
test: system-deps $(STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest
	$(MAKE) test-compiled

system-deps:
	@PYTHON=$(PYTHON) tools/system-deps test

# The README's blocks against real gateways (part of `make test`; this runs it alone).
readme-check: system-deps $(STAMP)
	$(BIN)/python -m pytest tests/integration/test_readme.py

# The compiled build of the request path (setup.py lists the modules), made in build/mypyc
# from a copy of the package. test-compiled puts its extensions beside the modules for the
# length of the run and always takes them out again: Python imports an extension before a
# .py of the same name, and tests/conftest.py refuses a run whose build is not the one asked
# for (DAKIA_EXPECT_COMPILED), so a leftover extension cannot pass for the pure modules.
COMPILED := build/mypyc/.built
$(COMPILED): $(STAMP) setup.py $(shell find dakia_prefork -name '*.py')
	rm -rf build/mypyc
	mkdir -p build/mypyc
	cp -r dakia_prefork setup.py build/mypyc/
	cd build/mypyc && DAKIA_MYPYC=1 ../../$(BIN)/python setup.py -q build_ext --inplace >build.log 2>&1 || (tail -30 build.log; exit 1)
	touch $(COMPILED)

compiled: $(COMPILED)

COMPILED_TESTS := tests/unit tests/integration/test_proxy.py tests/integration/test_hostile_input.py \
	tests/integration/test_interceptors.py tests/integration/test_traffic.py \
	tests/integration/test_vhosts.py tests/integration/test_interceptors_access.py \
	tests/integration/test_client_timeouts.py tests/integration/test_chunked_framing.py \
	tests/integration/test_regex_dos.py tests/integration/test_fuzz.py \
	tests/integration/test_targets.py tests/integration/test_path_normalization.py \
	tests/integration/test_header_smuggling.py tests/integration/test_replay.py \
	tests/integration/test_drain.py tests/integration/test_slow_clients.py \
	tests/integration/test_real_ip.py tests/integration/test_proxy_protocol.py \
	tests/integration/test_metrics.py tests/integration/test_access_log.py \
	tests/integration/test_acme.py tests/integration/test_tls_listeners.py \
	tests/integration/test_websocket.py

# Three tests observe the pure modules' insides (they replace a module function, or import a
# module afresh); compiled code calls its functions directly, so there they would either fail
# for that reason alone or pass without testing anything.
COMPILED_SKIP := --deselect tests/unit/test_parser_engines.py::test_without_httptools \
	--deselect tests/unit/test_parser_engines.py::test_fast_engine_keeps_typical_traffic_off_the_reference \
	--deselect tests/unit/test_parser_differential.py::test_fast_path_agrees_with_the_reference

# UNCOMPILE, not $(MAKE) uncompile, inside the recipe: make runs a line that names $(MAKE)
# even under `make -n`, so `make -n test` would have run the compiled tests for real.
UNCOMPILE := find dakia_prefork -name '*.so' -delete; rm -f ./*__mypyc*.so

test-compiled: $(COMPILED)
	@$(UNCOMPILE)
	(cd build/mypyc && find . -name '*.so' -exec cp --parents {} ../.. \;) && \
	DAKIA_EXPECT_COMPILED=1 $(BIN)/python -m pytest -p no:cacheprovider $(COMPILED_SKIP) $(COMPILED_TESTS); \
	status=$$?; $(UNCOMPILE); exit $$status

# Remove the compiled extensions from the source tree (test-compiled does it itself).
uncompile:
	$(UNCOMPILE)

check: $(STAMP) etc/dakia/admin.token
	$(BIN)/dakia-master check -c etc/dakia/dakia.yaml

bench: $(STAMP)
	$(BIN)/python tools/bench/run.py

clean: uncompile
	rm -rf $(VENV) var build *.egg-info .mypy_cache
