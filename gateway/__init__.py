"""Balance Gateway: one GraphQL endpoint in front of African payment providers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("balance-gateway")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
