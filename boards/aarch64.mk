# boards/aarch64.mk — a 64-bit Arm gateway: Raspberry Pi 4/5 class (Cortex-A72
# or A76), Debian 12 / Raspberry Pi OS arm64.
BOARD_NAME := Raspberry Pi 4/5 class (64-bit Arm, aarch64)
BOARD_TRIPLE := aarch64-linux-gnu
CROSS_COMPILE := $(BOARD_TRIPLE)-
# ARMv8-A, tuned for the Pi 4's Cortex-A72; runs on the Pi 5's A76 as well.
BOARD_CFLAGS := -march=armv8-a -mtune=cortex-a72
BOARD_CPPFLAGS := -DCITYHUB_BOARD='"aarch64"'
# Segments aligned to 16 KiB, not the linker's default 64 KiB: the program
# loads on kernels with 4 KiB pages (Debian, Raspberry Pi OS on the Pi 4) and
# 16 KiB pages (Raspberry Pi OS on the Pi 5), and its file is 48 KiB smaller
# (padding). A kernel with 64 KiB pages would refuse it.
BOARD_LDFLAGS := -Wl,-z,max-page-size=16384
BOARD_DEB_ARCH := arm64
BOARD_ELF_MACHINE := AArch64
BOARD_QEMU := qemu-aarch64-static
# The PL011 UART on GPIO 14/15 (an RS-485 HAT), the mini UART, USB adapters.
BOARD_SERIAL_PORTS := /dev/ttyAMA0 /dev/ttyS0 /dev/ttyUSB0 /dev/ttyUSB1
# RS-485 HATs on the PL011 drive the transceiver's DE/RE from RTS: the
# kernel's RS-485 mode (rs485: on; dtoverlay=uart0,ctsrts in config.txt).
BOARD_RS485 := on
BOARD_DEFAULT_CONFIG := boards/aarch64.yaml
