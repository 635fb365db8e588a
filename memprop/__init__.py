"""memprop: memristive recurrent networks, EqProp and RBP, from model to FPGA."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memprop")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
