# boards/x86_64.mk — the lab: a PC or VM running Debian 12 (amd64).
BOARD_NAME := Lab PC (x86-64)
# Empty triple: the host's own compiler and libraries, no sysroot.
BOARD_TRIPLE :=
CROSS_COMPILE :=
BOARD_CFLAGS :=
BOARD_CPPFLAGS := -DCITYHUB_BOARD='"x86_64"'
BOARD_DEB_ARCH := amd64
# readelf -h "Machine:" of the board's binaries (checked by the package test).
BOARD_ELF_MACHINE := Advanced Micro Devices X86-64
BOARD_QEMU :=
# Serial ports a technician will find on this board: the systemd unit's
# DeviceAllow= and the docs.
BOARD_SERIAL_PORTS := /dev/ttyUSB0 /dev/ttyUSB1 /dev/ttyS0
# RS-485: a USB–RS-485 adapter switches direction by itself (rs485: off).
BOARD_RS485 := off
BOARD_DEFAULT_CONFIG := boards/x86_64.yaml
