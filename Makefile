# Ampere — targets mirror the original C Ampere's Makefile.
#   make          release build (optimised, not stripped)  -> target/release/ampere
#   make debug    debug build that logs the parsed config and every AMI message
#                                                          -> target/debug/ampere
#   make nice     stripped, LTO, optimised for speed       -> target/nice/ampere
#   make test     the test suite (the one command CI runs); as root it first installs the
#                 system packages the tests need when they are missing (tests/install-deps.sh);
#                 every test binary runs even when one fails
#   make demo     build, then replay a real captured attack (no Asterisk, no root needed)
#   make docs     rewrite the documents' generated blocks from the tables (event kinds,
#                 config keys); `make test` fails while one differs
#   make bench    every benchmark, tables to target/bench-results.md (as root; installs fail2ban)
#   make bench-fail2ban | bench-latency | bench-cpu | bench-memory | bench-restore   one of them
#   make cross TARGET=<triple>   static, stripped musl build -> target/<triple>/size/ampere
#   make cross-all               all six targets of cross/targets
#   make cross-test TARGET=<triple>  unit and AMI/replay tests under qemu-user
#   make cross-tools             install zig, cargo-zigbuild, nightly rust-src, qemu (pinned)
#   make size-check              sizes of the cross builds against the budget
#   make deb [TARGET=<triple>]   target/ampere_<version>_<arch>.deb (host build, or a cross one)
#   make ipk TARGET=<triple>     target/ampere_<version>-1_<arch>.ipk from a cross build
#   make test-deb                as root: install, run via init.d in a netns, purge (CI)
#   make fuzz [FUZZ_SECONDS=60]  each cargo-fuzz target for that long (nightly, cargo-fuzz)
#   make install  PREFIX=/usr/local DESTDIR= : binary to $(PREFIX)/sbin, config to
#                 /etc/ampere/ (an existing config is never overwritten)

CARGO      ?= cargo
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=

.PHONY: all release debug nice test test-load demo docs bench bench-restore bench-memory bench-latency \
	bench-fail2ban bench-cpu lint install clean \
	cross cross-all cross-test cross-tools size-check deb ipk test-deb fuzz

all: release

release:
	$(CARGO) build --release

debug:
	$(CARGO) build --features debug-log

nice:
	$(CARGO) build --profile nice

test:
	sh tests/install-deps.sh
	$(CARGO) test --all-targets --no-fail-fast

# The namespace and liveness suites with every core kept busy (CI runs it after `make test`).
test-load:
	sh tests/install-deps.sh
	sh tests/under-load.sh

demo: release
	./target/release/ampere -c etc/ampere.cfg --replay etc/sample-attack.ami

docs:
	AMPERE_WRITE_DOCS=1 $(CARGO) test --test docs

bench:
	benches/run-all.sh

bench-fail2ban:
	benches/install-fail2ban.sh
	$(CARGO) bench --bench fail2ban

bench-latency:
	$(CARGO) bench --bench latency

bench-cpu:
	$(CARGO) bench --bench cpu

bench-restore:
	$(CARGO) bench --bench restore

bench-memory:
	$(CARGO) bench --bench memory

cross:
	@test -n "$(TARGET)" || { echo "usage: make cross TARGET=<triple>, one of:"; grep -Ev '^#' cross/targets | awk '{print "  " $$1}'; exit 2; }
	cross/build.sh $(TARGET)

cross-all:
	for t in $$(grep -Ev '^#' cross/targets | awk '{print $$1}'); do cross/build.sh $$t || exit 1; done

cross-test:
	@test -n "$(TARGET)" || { echo "usage: make cross-test TARGET=<triple>"; exit 2; }
	cross/build.sh $(TARGET) test --lib --test cli --test daemon

cross-tools:
	cross/install-tools.sh

size-check:
	cross/size-check.sh

deb:
	pkg/build-deb.sh $(TARGET)

ipk:
	@test -n "$(TARGET)" || { echo "usage: make ipk TARGET=<triple>"; exit 2; }
	cross/build.sh $(TARGET)
	pkg/build-ipk.sh $(TARGET)

test-deb: deb
	pkg/lintian.sh target/ampere_*_$$(dpkg --print-architecture).deb
	pkg/test-deb.sh target/ampere_*_$$(dpkg --print-architecture).deb

FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

install: release
	install -D -m 0755 target/release/ampere $(DESTDIR)$(PREFIX)/sbin/ampere
	install -D -m 0644 doc/ampere.8 $(DESTDIR)$(PREFIX)/share/man/man8/ampere.8
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/ampere
	test -e $(DESTDIR)$(SYSCONFDIR)/ampere/ampere.cfg || \
		install -m 0640 etc/ampere.cfg $(DESTDIR)$(SYSCONFDIR)/ampere/ampere.cfg
	install -d -m 0750 $(DESTDIR)/var/lib/ampere

clean:
	$(CARGO) clean
