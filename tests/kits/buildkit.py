"""Constants and helpers for the builders tests."""

from __future__ import annotations

import struct
import sys

# numpy (binary, with console scripts) + six (pure Python): small, and already in uv's cache
# for the host because the dev venv has them.
NUMPY = "numpy==2.4.6"
SIX = "six==1.17.0"
HOST_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
EM_AARCH64 = 183
EM_X86_64 = 62


def elf_machine(data: bytes) -> int | None:
    """e_machine of an ELF header, None when *data* is not ELF."""
    if data[:4] != b"\x7fELF":
        return None
    endian = "<" if data[5] == 1 else ">"
    return int(struct.unpack(endian + "H", data[18:20])[0])
