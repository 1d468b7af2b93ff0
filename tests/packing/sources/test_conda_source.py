"""The installer's prefix substitution undone (pack) and redone (node): conda's rules, byte for
byte, on the cases a real library holds."""

from __future__ import annotations

import pytest

from envship.node.conda import relocate
from envship.packing.sources.conda import unprefix

PH = "/opt/conda-bld/_h_env_placehold" + "_placehold" * 5


@pytest.mark.parametrize("prefix", ["/e", "/tmp/envs/a", "/x" * 30])
def test_binary_round_trip_holds_for_every_string_shape(prefix: str) -> None:
    package = (
        b"\x7fELF\0\0" + PH.encode() + b"\0"  # the prefix alone
        + b"pad" + PH.encode() + b"/lib:" + PH.encode() + b"/lib64\0"  # twice in one string
        + b"-L" + PH.encode() + b"/lib\0\0\0\0tail"  # in the middle of a string
    )
    installed = relocate(package, PH, prefix, "binary", "lib/x.so")
    assert len(installed) == len(package)
    assert PH.encode() not in installed
    assert f"{prefix}/lib:{prefix}/lib64\0".encode() in installed
    assert unprefix(installed, prefix, PH, "binary") == package


def test_binary_string_not_padded_as_installed_is_left_alone() -> None:
    # the prefix appears, but without the NULs the installer pads with: not a relocated string
    data = b"\0/tmp/envs/a/lib\0X"
    assert unprefix(data, "/tmp/envs/a", PH, "binary") == data
    # a prefix longer than the placeholder cannot have been written by the installer
    assert unprefix(b"/" + b"y" * 200 + b"\0", "/" + "y" * 200, PH, "binary").startswith(b"/y")


def test_text_round_trip_and_other_paths_untouched() -> None:
    package = f"prefix={PH}\nlibdir={PH}/lib\nother=/usr/lib\n".encode()
    installed = relocate(package, PH, "/srv/env", "text", "lib/pkgconfig/x.pc")
    assert installed == b"prefix=/srv/env\nlibdir=/srv/env/lib\nother=/usr/lib\n"
    assert unprefix(installed, "/srv/env", PH, "text") == package
