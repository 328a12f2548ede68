# firmware/firmware.mk — included by the Makefile: boards, install, the
# board's firmware image (a Debian package), and the emulated check of a
# cross-built board.
#
#   make boards                        the boards in boards/, one line each
#   make install DESTDIR=D PREFIX=P    the program, profiles, docs, man page,
#                                      systemd unit, default config, state dir
#   make firmware BOARD=NAME [FIRMWARE_KEY=key.pem]
#                                      build/firmware/cityhub_VERSION_ARCH.deb,
#                                      SHA256SUMS (and SHA256SUMS.sig)
#   make check BOARD=NAME              (Arm boards) unit tests and an
#                                      end-to-end test under qemu-user-static
#   make check-firmware                every board's image built, then
#                                      tests/integration/test_firmware.sh on all

PREFIX ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
BINDIR := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/cityhub
DOCDIR := $(PREFIX)/share/doc/cityhub
MANDIR := $(PREFIX)/share/man
# Debian 12 packages keep their units in /lib/systemd/system.
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)

FIRMWARE_DIR := build/firmware
FIRMWARE_DEB := $(FIRMWARE_DIR)/cityhub_$(VERSION)_$(BOARD_DEB_ARCH).deb
UNIT := $(O)/gen/cityhub.service

.PHONY: boards board-info install firmware check-emulated check-firmware FORCE

# ---- boards ------------------------------------------------------------------
boards:
	@printf '%-8s %-6s %-24s %s\n' BOARD ARCH COMPILER NAME
	@for f in boards/*.mk; do b=$$(basename $$f .mk); \
	  $(MAKE) -s --no-print-directory BOARD=$$b board-info | \
	  awk -F= '{ v[$$1] = substr($$0, length($$1) + 2) } END { \
	    printf "%-8s %-6s %-24s %s\n         serial: %s; RS-485 mode %s; config %s\n", \
	      v["BOARD"], v["BOARD_DEB_ARCH"], \
	      (v["BOARD_TRIPLE"] == "" ? "native gcc" : v["BOARD_TRIPLE"] "-gcc"), v["BOARD_NAME"], \
	      v["BOARD_SERIAL_PORTS"], v["BOARD_RS485"], v["BOARD_DEFAULT_CONFIG"] }'; \
	done

# One NAME=value line per board setting (make boards, tests/integration/test_firmware.sh).
board-info:
	@echo 'BOARD=$(BOARD)'
	@echo 'BOARD_NAME=$(BOARD_NAME)'
	@echo 'BOARD_TRIPLE=$(BOARD_TRIPLE)'
	@echo 'BOARD_CFLAGS=$(BOARD_CFLAGS)'
	@echo 'BOARD_DEB_ARCH=$(BOARD_DEB_ARCH)'
	@echo 'BOARD_ELF_MACHINE=$(BOARD_ELF_MACHINE)'
	@echo 'BOARD_QEMU=$(BOARD_QEMU)'
	@echo 'BOARD_SERIAL_PORTS=$(BOARD_SERIAL_PORTS)'
	@echo 'BOARD_RS485=$(BOARD_RS485)'
	@echo 'BOARD_DEFAULT_CONFIG=$(BOARD_DEFAULT_CONFIG)'
	@echo 'FIRMWARE_DEB=$(FIRMWARE_DEB)'

# ---- where the program says its docs are -------------------------------------
# `cityhub --help` names DOCDIR; main.o is rebuilt when PREFIX changes.
$(O)/gen/prefix: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' >$@
$(O)/firmware/main.o: $(O)/gen/prefix
$(O)/firmware/main.o: CPPFLAGS += -DCITYHUB_DOCDIR='"$(DOCDIR)"'

# ---- the systemd unit ----------------------------------------------------------
# Paths from PREFIX and SYSCONFDIR; one DeviceAllow= per serial port of the board.
$(UNIT): firmware/cityhub.service.in $(O)/gen/prefix boards/$(BOARD).mk
	@mkdir -p $(dir $@)
	@awk -v ports='$(BOARD_SERIAL_PORTS)' '/^@DEVICE_ALLOW@$$/ { \
	    n = split(ports, p, " "); for (i = 1; i <= n; i++) print "DeviceAllow=" p[i] " rw"; next } \
	  { gsub("@BINDIR@", "$(BINDIR)"); gsub("@SYSCONFDIR@", "$(SYSCONFDIR)"); \
	    gsub("@DOCDIR@", "$(DOCDIR)"); print }' $< >$@.tmp && mv $@.tmp $@
	@echo "GEN $@"

# ---- install -----------------------------------------------------------------
# The configuration is the board's default (BOARD_DEFAULT_CONFIG) and is never
# overwritten: an installed cityhub.yaml is the site's.
install: $(CITYHUB) $(UNIT)
	install -D -m 0755 $(CITYHUB) $(DESTDIR)$(BINDIR)/cityhub
	install -d $(DESTDIR)$(DATADIR)/profiles $(DESTDIR)$(DOCDIR)/profiles $(DESTDIR)$(MANDIR)/man8
	install -m 0644 $(MB_PROFILES) $(DESTDIR)$(DATADIR)/profiles/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/profiles/*.md $(DESTDIR)$(DOCDIR)/profiles/
	install -m 0644 firmware/cityhub.8 $(DESTDIR)$(MANDIR)/man8/cityhub.8
	install -D -m 0644 $(UNIT) $(DESTDIR)$(UNITDIR)/cityhub.service
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/cityhub $(DESTDIR)$(SYSCONFDIR)/cityhub/profiles
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/cityhub/credentials
	[ -e $(DESTDIR)$(SYSCONFDIR)/cityhub/cityhub.yaml ] || \
	  install -m 0644 $(BOARD_DEFAULT_CONFIG) $(DESTDIR)$(SYSCONFDIR)/cityhub/cityhub.yaml
	install -d -m 0700 $(DESTDIR)$(LOCALSTATEDIR)/lib/cityhub

# ---- the firmware image --------------------------------------------------------
# A release build installed under /usr into a staging root, packaged by
# firmware/mkdeb.sh (maintainer scripts in firmware/deb/), then summed and,
# with FIRMWARE_KEY=PRIVATE.pem, signed (firmware/sign.sh).
FIRMWARE_O := build/$(BOARD)-release
FIRMWARE_STAGE := $(FIRMWARE_O)/firmware-root

firmware:
	@$(MAKE) --no-print-directory -j$(JOBS) MODE=release PREFIX=/usr $(FIRMWARE_O)/cityhub
	@rm -rf $(FIRMWARE_STAGE)
	@$(MAKE) --no-print-directory MODE=release PREFIX=/usr DESTDIR=$(CURDIR)/$(FIRMWARE_STAGE) \
	  install >/dev/null
	@firmware/mkdeb.sh $(FIRMWARE_STAGE) $(FIRMWARE_DIR) $(BOARD_DEB_ARCH) $(VERSION) $(BOARD) \
	  $(CROSS_COMPILE)strip
	@firmware/sign.sh $(FIRMWARE_DIR) $(FIRMWARE_KEY)

# ---- check on an Arm board: under emulation ------------------------------------
# The board's unit tests under qemu-user-static -L SYSROOT, then
# tests/board/test_*.sh: the board's cityhub (under qemu) polling the host's
# simulator and writing to the host's InfluxDB. The simulator and freeport
# are the host's (build/x86_64-release).
check-emulated: deps
	@command -v $(BOARD_QEMU) >/dev/null || { echo "check: $(BOARD_QEMU) missing (make deps installs qemu-user-static)"; exit 1; }
	@mkdir -p build
	@{ $(MAKE) --no-print-directory -j$(JOBS) MODE=release $(FIRMWARE_O)/cityhub \
	    $(patsubst $(O)/%,$(FIRMWARE_O)/%,$(UNIT_BIN)) && \
	  $(MAKE) --no-print-directory -j$(JOBS) BOARD=x86_64 MODE=release \
	    build/x86_64-release/cityhub-sim build/x86_64-release/tests/lib/freeport; } \
	  >build/check-$(BOARD).log 2>&1 || \
	  { tail -30 build/check-$(BOARD).log; echo "check: the $(BOARD) build failed (build/check-$(BOARD).log)"; exit 1; }
	@TEST_RUNNER='$(TEST_RUNNER)' tests/run.sh --emulated $(FIRMWARE_O) build/x86_64-release

# ---- every board's image, inspected ---------------------------------------------
# make check builds and inspects the images of the lab board and CHECK_BOARDS
# (with its other tests); this builds every board's image (or
# FIRMWARE_BOARDS') and runs that test alone over them.
FIRMWARE_BOARDS ?= $(patsubst boards/%.mk,%,$(wildcard boards/*.mk))
HOST_O := build/x86_64-release

check-firmware: deps
	@for b in $(FIRMWARE_BOARDS); do $(MAKE) --no-print-directory firmware BOARD=$$b || exit 1; done
	@$(MAKE) --no-print-directory -j$(JOBS) BOARD=x86_64 MODE=release $(HOST_O)/cityhub \
	  $(HOST_O)/cityhub-sim $(HOST_O)/tests/lib/freeport
	@mkdir -p build
	@CITYHUB=$(CURDIR)/$(HOST_O)/cityhub SIM=$(CURDIR)/$(HOST_O)/cityhub-sim \
	  FREEPORT=$(CURDIR)/$(HOST_O)/tests/lib/freeport FIRMWARE_BOARDS='$(FIRMWARE_BOARDS)' \
	  bash tests/integration/test_firmware.sh >build/test-logs-firmware.log 2>&1 && \
	  { grep -E '^(== |($(subst $(eval) ,|,$(strip $(FIRMWARE_BOARDS)))): )' build/test-logs-firmware.log; echo "check-firmware: $(FIRMWARE_BOARDS): ok"; } || \
	  { tail -30 build/test-logs-firmware.log; echo "check-firmware: FAILED (build/test-logs-firmware.log)"; exit 1; }
