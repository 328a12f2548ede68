# boards/armhf.mk — a 32-bit Arm gateway: BeagleBone Black class (AM335x,
# Cortex-A8, NEON, hard float), Debian 12 armhf.
BOARD_NAME := BeagleBone Black class (32-bit Arm, armhf, Cortex-A8)
BOARD_TRIPLE := arm-linux-gnueabihf
CROSS_COMPILE := $(BOARD_TRIPLE)-
BOARD_CFLAGS := -mcpu=cortex-a8 -mfpu=neon -mfloat-abi=hard
BOARD_CPPFLAGS := -DCITYHUB_BOARD='"armhf"'
BOARD_DEB_ARCH := armhf
BOARD_ELF_MACHINE := ARM
BOARD_QEMU := qemu-arm-static
# UART1 (P9.24/P9.26) and UART4 (P9.11/P9.13) of the cape header, UART2,
# and USB adapters.
BOARD_SERIAL_PORTS := /dev/ttyS1 /dev/ttyS4 /dev/ttyS2 /dev/ttyUSB0
# RS-485 capes on UART1/UART4 switch the transceiver with RTS: the kernel's
# RS-485 mode (rs485: on).
BOARD_RS485 := on
BOARD_DEFAULT_CONFIG := boards/armhf.yaml
