# cityhub — build, test, demo.
#
#   make              build build/release/cityhub for BOARD (default x86_64)
#   make demo         install what is needed, run simulated sensors -> cityhub -> InfluxDB
#   make check        install what is needed, build with ASan+UBSan, run every test
#   make fault        the fault suite's long runs (kill -9, power cuts, corruption, failing disks)
#   make bench        print the benchmark figures
#   make BOARD=name   cross build for boards/name.mk (make boards lists them)
#   make firmware BOARD=name   build/firmware/cityhub_VERSION_ARCH.deb + SHA256SUMS
#   make check BOARD=name      (an Arm board) its unit tests and an end-to-end
#                     test under qemu-user-static
#   make check-firmware        every board's image built and inspected
#   make install DESTDIR=D PREFIX=P   what an image holds, under P (/usr/local)
#   make clean        build/ but the cross sysroots; make distclean all of build/

BOARD ?= x86_64
ifeq ($(wildcard boards/$(BOARD).mk),)
$(error BOARD=$(BOARD): no boards/$(BOARD).mk (boards: $(patsubst boards/%.mk,%,$(wildcard boards/*.mk))))
endif
include boards/$(BOARD).mk

MODE ?= release
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
O := build/$(BOARD)-$(MODE)

CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
PKG_CONFIG ?= pkg-config
MODBUS_INC := /usr/include/modbus
ifneq ($(BOARD_TRIPLE),)
# A cross build: Debian's cross compiler against the board's sysroot, which
# boards/sysroot.sh assembles from Debian's packages for BOARD_DEB_ARCH (kept
# in build/sysroot/ between builds; `make clean` keeps it, distclean not).
SYSROOT ?= $(CURDIR)/build/sysroot/$(BOARD_DEB_ARCH)
SYSROOT_STAMP := $(SYSROOT)/.stamp
CC := $(CROSS_COMPILE)gcc --sysroot=$(SYSROOT)
PKG_CONFIG := PKG_CONFIG_SYSROOT_DIR=$(SYSROOT) \
  PKG_CONFIG_LIBDIR=$(SYSROOT)/usr/lib/$(BOARD_TRIPLE)/pkgconfig:$(SYSROOT)/usr/share/pkgconfig pkg-config
MODBUS_INC := $(SYSROOT)/usr/include/modbus
LDFLAGS += -Wl,-rpath-link,$(SYSROOT)/lib/$(BOARD_TRIPLE):$(SYSROOT)/usr/lib/$(BOARD_TRIPLE)
# Programs built for the board run here under qemu-user-static, with the
# sysroot as their root for the dynamic loader and libraries.
TEST_RUNNER := $(BOARD_QEMU) -L $(SYSROOT)
endif

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
# The build date a board's clock is compared with (hub/clocktrust.c): a
# clock older than the source cannot be right. Reproducible: SOURCE_DATE_EPOCH
# when set, else the date of the last commit.
BUILD_EPOCH := $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),0)
# _FILE_OFFSET_BITS=64: on a 32-bit board (armhf) too, file offsets and the
# inode numbers readdir() returns are 64-bit (a 32-bit readdir fails with
# EOVERFLOW on a file system with 64-bit inode numbers or directory offsets).
CPPFLAGS += -I. -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DCITYHUB_VERSION='"$(VERSION)"' $(BOARD_CPPFLAGS)
$(O)/hub/clocktrust.o: CPPFLAGS += -DCITYHUB_BUILD_EPOCH=$(BUILD_EPOCH)
CFLAGS += -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -g $(BOARD_CFLAGS)
LDFLAGS += $(BOARD_LDFLAGS)
ifeq ($(MODE),asan)
# Test hooks (hub/journal_priv.h: CITYHUB_TEST_CRASH_AT, the fault suite's I/O
# hooks) exist in the test build only, never in the program built for release.
CPPFLAGS += -DCITYHUB_TEST_HOOKS
CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
# Functions and data nothing calls are left out of the program (the size of
# a board's binary: make bench).
CFLAGS += -O2 -ffunction-sections -fdata-sections
LDFLAGS += -Wl,--gc-sections
endif

LIBS_NET := $(shell $(PKG_CONFIG) --libs libmodbus libcurl zlib jansson libssl 2>/dev/null || echo -lmodbus -lcurl -lz -ljansson -lssl -lcrypto)
LIBS_YAML := $(shell $(PKG_CONFIG) --libs yaml-0.1 2>/dev/null || echo -lyaml)
CPPFLAGS += $(shell $(PKG_CONFIG) --cflags libmodbus 2>/dev/null || echo -I$(MODBUS_INC))
# Eclipse Paho MQTT C (asynchronous, with TLS) ships no pkg-config file.
LIBS_MQTT := -lpaho-mqtt3as
# The status server (firmware/status.c): libmicrohttpd.
LIBS_HTTPD := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
# sd_notify (firmware/notify.c): libsystemd.
LIBS_SYSTEMD := $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null || echo -lsystemd)
LIBS := $(LIBS_NET) $(LIBS_MQTT) $(LIBS_YAML) $(LIBS_HTTPD) $(LIBS_SYSTEMD) -lpthread -lm
LIBS_CMOCKA := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

HUB_SRC := $(sort $(wildcard hub/*.c))
DRV_SRC := $(sort $(wildcard drivers/*.c drivers/*/*.c))
FW_SRC := $(filter-out firmware/main.c,$(sort $(wildcard firmware/*.c)))
SIM_SRC := $(sort $(wildcard tests/sim/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))
FAULT_SRC := $(sort $(wildcard tests/fault/*.c))

obj = $(patsubst %.c,$(O)/%.o,$(1))

HUB_LIB := $(O)/libhub.a
DRV_LIB := $(O)/libdrivers.a
FW_LIB := $(O)/libfirmware.a
CITYHUB := $(O)/cityhub
SIM := $(O)/cityhub-sim
UNIT_BIN := $(patsubst tests/unit/%.c,$(O)/tests/unit/%,$(UNIT_SRC))
BENCH_BIN := $(patsubst tests/bench/%.c,$(O)/tests/bench/%,$(BENCH_SRC))
FAULT_BIN := $(patsubst tests/fault/%.c,$(O)/tests/fault/%,$(FAULT_SRC))
# Kept after linking (make would delete them as intermediates and recompile
# every test program at the next check: slow for a cross build).
.SECONDARY: $(addsuffix .o,$(UNIT_BIN) $(BENCH_BIN) $(FAULT_BIN))

.PHONY: all deps demo check check-build fault unit bench install clean distclean format format-check

all: $(CITYHUB) $(SIM) $(O)/tests/lib/freeport

# Every object and generated file waits for the sysroot (cross builds).
$(O)/%.o: %.c | $(SYSROOT_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(HUB_LIB): $(call obj,$(HUB_SRC))
	@rm -f $@
	$(AR) rcs $@ $^
$(DRV_LIB): $(call obj,$(DRV_SRC))
	@rm -f $@
	$(AR) rcs $@ $^
$(FW_LIB): $(call obj,$(FW_SRC))
	@rm -f $@
	$(AR) rcs $@ $^

$(CITYHUB): $(O)/firmware/main.o $(FW_LIB) $(DRV_LIB) $(HUB_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(SIM): $(call obj,$(SIM_SRC)) $(HUB_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests of hub/ link libhub.a alone: the core needs no network library.
$(O)/tests/unit/test_hub_%: $(O)/tests/unit/test_hub_%.o $(HUB_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) -lpthread -lm
$(O)/tests/unit/test_%: $(O)/tests/unit/test_%.o $(FW_LIB) $(DRV_LIB) $(HUB_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS)

# The fault suite's programs link libhub.a alone, like the hub's unit tests.
$(O)/tests/fault/%: $(O)/tests/fault/%.o $(HUB_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread -lm

$(O)/tests/bench/%: $(O)/tests/bench/%.o $(FW_LIB) $(DRV_LIB) $(HUB_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(O)/tests/lib/freeport: $(O)/tests/lib/freeport.o
	$(CC) $(LDFLAGS) -o $@ $^

deps:
	@scripts/install-deps.sh

# ---- tests ---------------------------------------------------------------
# check also builds the firmware image of the lab board and of each board in
# CHECK_BOARDS (the Arm boards; cross builds), inspected by
# tests/integration/test_firmware.sh, and then runs each CHECK_BOARDS board's
# unit tests and end-to-end test under emulation (check-emulated,
# firmware/firmware.mk). `make check CHECK_BOARDS=` checks the lab board alone.
# On an Arm board's BOARD, check is that board's check-emulated.
CHECK_BOARDS ?= aarch64 armhf
ifeq ($(BOARD_TRIPLE),)
check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) MODE=asan check-build
	@$(MAKE) --no-print-directory -j$(JOBS) -C tests/fuzz regress
	@for b in $(BOARD) $(CHECK_BOARDS); do \
	  $(MAKE) --no-print-directory -j$(JOBS) firmware BOARD=$$b >build/firmware-$$b.log 2>&1 || \
	  { tail -20 build/firmware-$$b.log; echo "check: make firmware BOARD=$$b failed"; exit 1; }; \
	  tail -1 build/firmware-$$b.log | grep -v SHA256SUMS || true; \
	done
	@FIRMWARE_BOARDS='$(BOARD) $(CHECK_BOARDS)' tests/run.sh build/$(BOARD)-asan
	@for b in $(CHECK_BOARDS); do \
	  echo "== $$b: unit tests and end-to-end test under emulation"; \
	  $(MAKE) --no-print-directory check-emulated BOARD=$$b || exit 1; \
	done
else
check: check-emulated
endif

check-build: $(CITYHUB) $(SIM) $(UNIT_BIN) $(FAULT_BIN) $(O)/tests/lib/freeport

# The fault suite's long runs (its fast subset is in check; docs/testing.md).
fault: deps
	@$(MAKE) --no-print-directory -j$(JOBS) MODE=asan check-build
	@tests/run.sh --fault-only --long build/$(BOARD)-asan

unit: check-build
	@tests/run.sh --unit-only $(O)

# ---- demo and benchmarks -------------------------------------------------
demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/demo.sh $(O)

bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all $(BENCH_BIN)
	@tests/bench/run.sh $(O)

ifneq ($(SYSROOT_STAMP),)
$(SYSROOT_STAMP): boards/sysroot.sh
	boards/sysroot.sh $(BOARD_DEB_ARCH) $(SYSROOT)
	@touch $@
endif

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h') && echo "format: ok"

# clean keeps the cross sysroots (build/sysroot/: downloaded once); distclean not.
clean:
	rm -rf $(filter-out build/sysroot,$(wildcard build/*))

distclean:
	rm -rf build

# Dependency files of this build only (a sysroot holds directories named *.d).
-include $(shell find $(O) -type f -name '*.d' 2>/dev/null)

# ---- Modbus device profiles (drivers/modbus/profiles/*.yaml) ----------------
# Built into the program: each file becomes a string in
# $(O)/gen/modbus_profiles.c, compiled into libdrivers.a and read by
# drivers/modbus/profile.c (built with DRV_MB_EMBEDDED_PROFILES; without it,
# e.g. in tests/fuzz, only site profiles exist). `make install` also copies
# them, and their pages, for reference (firmware/firmware.mk).
MB_PROFILES := $(sort $(wildcard drivers/modbus/profiles/*.yaml))

$(O)/gen/modbus_profiles.c: $(MB_PROFILES) drivers/modbus/profiles | $(SYSROOT_STAMP)
	@mkdir -p $(dir $@)
	@{ echo '/* generated from the files in drivers/modbus/profiles by the Makefile: do not edit */'; \
	  echo '#include <stddef.h>'; \
	  echo '#include "drivers/modbus/profile.h"'; \
	  echo 'const struct drv_mb_embedded_profile drv_mb_embedded_profiles[] = {'; \
	  for f in $(MB_PROFILES); do \
	    echo "    {\"$$f\","; \
	    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/\r$$//' \
	        -e 's/^/     "/' -e 's/$$/\\n"/' "$$f"; \
	    echo '     ""},'; \
	  done; \
	  echo '    {NULL, NULL},'; \
	  echo '};'; } >$@.tmp && mv $@.tmp $@
	@echo "GEN $@ ($(words $(MB_PROFILES)) profiles)"

$(O)/gen/modbus_profiles.o: $(O)/gen/modbus_profiles.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(O)/drivers/modbus/profile.o: CPPFLAGS += -DDRV_MB_EMBEDDED_PROFILES
$(DRV_LIB): $(O)/gen/modbus_profiles.o

# ---- the status server's live page (firmware/status/*) ----------------------
# Built into the program as one string in $(O)/gen/status_page.c: the HTML
# file with its style and script inline (nothing is fetched from elsewhere).
STATUS_PAGE := firmware/status/index.html

$(O)/gen/status_page.c: $(STATUS_PAGE) | $(SYSROOT_STAMP)
	@mkdir -p $(dir $@)
	@{ echo '/* generated from $(STATUS_PAGE) by the Makefile: do not edit */'; \
	  echo '#include <stddef.h>'; \
	  echo 'extern const char ch_status_page[];'; \
	  echo 'extern const size_t ch_status_page_len;'; \
	  echo 'const char ch_status_page[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/\r$$//' \
	      -e 's/^/    "/' -e 's/$$/\\n"/' $(STATUS_PAGE); \
	  echo '    "";'; \
	  echo 'const size_t ch_status_page_len = sizeof(ch_status_page) - 1;'; } >$@.tmp && mv $@.tmp $@
	@echo "GEN $@"

$(O)/gen/status_page.o: $(O)/gen/status_page.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(O)/firmware/status.o: CPPFLAGS += -DCH_STATUS_EMBEDDED_PAGE
$(FW_LIB): $(O)/gen/status_page.o

# ---- boards, install, firmware images (firmware/firmware.mk) ---------------
include firmware/firmware.mk
