"""The C extension only; everything else about the package is in pyproject.toml.

Optional: where no C compiler is found the install goes on without it and
services/gateway/metrics/rwscan.py uses its pure-Python twin.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "services.gateway.metrics._rwscan",
            sources=["services/gateway/metrics/_rwscan.c"],
            extra_compile_args=["-Wall"],
            optional=True,
        )
    ]
)
