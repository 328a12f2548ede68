# boards/x86_64.mk — the lab: a PC or VM running Debian 12 (amd64).
BOARD_NAME := Lab PC (x86-64)
CROSS_COMPILE :=
BOARD_CFLAGS :=
BOARD_CPPFLAGS := -DCITYHUB_BOARD='"x86_64"'
# Serial ports a technician will find on this board (for docs and defaults).
BOARD_SERIAL_PORTS := /dev/ttyUSB0 /dev/ttyS0
BOARD_DEFAULT_CONFIG := boards/x86_64.yaml
