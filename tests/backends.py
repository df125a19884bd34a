"""Which backends the shared tests run against, and what each one can do.

The cross-backend tests (properties, oracles, the spine, the CLI, resume, the
fast paths, the schedule, `bigram check`) are parametrized over every
installed backend, the way array-api-tests runs one suite over many array
libraries:

    BIGRAM_TEST_BACKENDS=numpy,torch,jax pytest     # these three
    pytest                                          # every installed backend that has a device here

A name that is not installed (or whose framework is missing) is a usage
error, not a silent skip. A backend that lacks an optional feature declares
it through its `capabilities` (bigram.core.backend.CAPABILITY_DOCS); every
test that needs that feature is then skipped for it, with the reason shown by
`pytest -ra`.
"""

from __future__ import annotations

import os

import pytest

from bigram.core.backend import CAPABILITY_DOCS, backend_capabilities
from bigram.core.plugins import load_backends

ENV = "BIGRAM_TEST_BACKENDS"
REGISTRY = load_backends()
REFERENCE = "numpy"


def _usable() -> list[str]:
    return sorted(n for n, info in REGISTRY.backends.items() if info.cls.devices())


def selected() -> list[str]:
    """The backends named by $BIGRAM_TEST_BACKENDS, else every usable installed one."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return _usable()
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    missing = [n for n in names if n not in _usable()]
    if missing:
        raise pytest.UsageError(f"{ENV}={spec}: {', '.join(missing)} not installed or without a device here; "
                                f"usable: {', '.join(_usable())}")
    return names


BACKENDS = selected()
CANDIDATES = [n for n in BACKENDS if n != REFERENCE]  # compared with the NumPy reference


def backend(name: str):
    return REGISTRY.get(name).cls


def capabilities(name: str) -> frozenset[str]:
    return backend_capabilities(backend(name))


def _missing(name: str, needs) -> list[str]:
    return [c for c in needs if c not in capabilities(name)]


def skip_reason(name: str, needs) -> str:
    missing = _missing(name, needs)
    return "; ".join(f"{name} does not declare capability {c!r} ({CAPABILITY_DOCS[c]})" for c in missing)


def params(names, *needs: str) -> list:
    """pytest params for `names`; those lacking a needed capability are marked skip, with the reason."""
    return [pytest.param(n, id=n, marks=[pytest.mark.skip(reason=skip_reason(n, needs))] if _missing(n, needs) else [])
            for n in names]


def require(name: str, *needs: str) -> None:
    """Skip the running test, visibly, if `name` lacks one of `needs` (for needs known only at run time)."""
    if _missing(name, needs):
        pytest.skip(skip_reason(name, needs))


def require_dtype(name: str, dtype: str) -> None:
    if dtype == "float64":
        require(name, "float64")


def dtypes(name: str) -> list[str]:
    return ["float32", "float64"] if "float64" in capabilities(name) else ["float32"]


# Hypothesis examples per backend, as a fraction of each test's count. A backend
# that compiles a program for every new shape (jax: an XLA compile of 0.2-0.7 s
# of CPU per shape and function, against well under a millisecond for a NumPy
# example) spends nearly all of an example compiling, so it gets a third of them:
# the whole suite then stays near three minutes on two cores. The other
# backends run every example. BIGRAM_TEST_FULL_EXAMPLES=1 gives every backend all.
EXAMPLE_SHARE = {"jax": 1 / 3}


def examples(name: str, n: int) -> int:
    if os.environ.get("BIGRAM_TEST_FULL_EXAMPLES"):
        return n
    return max(3, round(n * EXAMPLE_SHARE.get(name, 1.0)))
