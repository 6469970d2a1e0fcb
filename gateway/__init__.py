"""Balance Gateway: one GraphQL endpoint in front of African payment providers.

`__all__` names the shared leaves: the modules (and the one subpackage) every layer may
use — pure values, the error tree, the clock, who is calling, the capped body reader, the
provider list, and observability. `tests/app/test_architecture.py` reads it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("balance-gateway")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "access",
    "bodies",
    "clock",
    "domain",
    "errors",
    "observability",
    "registry",
]
