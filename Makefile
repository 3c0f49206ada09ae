# Ampere — targets mirror the original C Ampere's Makefile.
#   make          release build (optimised, not stripped)  -> target/release/ampere
#   make debug    debug build that logs the parsed config and every AMI message
#                                                          -> target/debug/ampere
#   make nice     stripped, LTO, optimised for speed       -> target/nice/ampere
#   make test     the test suite (the one command CI runs)
#   make demo     build, then replay a real captured attack (no Asterisk, no root needed)
#   make bench    benchmarks (as root: restore and ban cost per firewall backend)
#   make install  PREFIX=/usr/local DESTDIR= : binary to $(PREFIX)/sbin, config to
#                 /etc/ampere/ (an existing config is never overwritten)

CARGO      ?= cargo
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=

.PHONY: all release debug nice test demo bench lint install clean

all: release

release:
	$(CARGO) build --release

debug:
	$(CARGO) build --features debug-log

nice:
	$(CARGO) build --profile nice

test:
	$(CARGO) test --all-targets

demo: release
	./target/release/ampere -c etc/ampere.cfg --replay etc/sample-attack.ami

bench:
	$(CARGO) bench --bench restore

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

install: release
	install -D -m 0755 target/release/ampere $(DESTDIR)$(PREFIX)/sbin/ampere
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/ampere
	test -e $(DESTDIR)$(SYSCONFDIR)/ampere/ampere.cfg || \
		install -m 0640 etc/ampere.cfg $(DESTDIR)$(SYSCONFDIR)/ampere/ampere.cfg
	install -d -m 0750 $(DESTDIR)/var/lib/ampere

clean:
	$(CARGO) clean
