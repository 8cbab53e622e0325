"""Fail early, with a fix, when the installed TVM wheels are not the pair cdmpp-tvm is built on.

For apache-tvm 0.27.0.post1 with apache-tvm-ffi 0.1.14.post1.

Why: apache-tvm 0.27.0.post1 declares ``apache-tvm-ffi>=0.1.14.post0``, so a plain
``pip install apache-tvm==0.27.0.post1`` pulls the newest apache-tvm-ffi. Version 0.1.15.post2
segfaults in ``ToJSONGraph`` during MetaSchedule tuning (the process dies without a Python
traceback), and other TVM versions rename the modules this package uses (``tvm.s_tir``,
``tvm.tirx``). The check reads package metadata only, so it runs before ``import tvm`` can crash
or fail with a confusing ImportError.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping

REQUIRED_VERSIONS: dict[str, str] = {
    "apache-tvm": "0.27.0.post1",
    "apache-tvm-ffi": "0.1.14.post1",
}

# Versions seen to fail here, with the symptom, so the error says more than "wrong version".
KNOWN_BAD_VERSIONS: dict[tuple[str, str], str] = {
    ("apache-tvm-ffi", "0.1.15.post2"): "segfaults in ToJSONGraph while tuning",
}

PIP_FIX_COMMAND = "pip install " + " ".join(
    f'"{name}=={version}"' for name, version in REQUIRED_VERSIONS.items()
)


def installed_tvm_versions() -> dict[str, str | None]:
    """Installed version of each required distribution, or None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in REQUIRED_VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_tvm_versions(
    installed: Mapping[str, str | None] | None = None,
) -> dict[str, str | None]:
    """Raise RuntimeError unless apache-tvm and apache-tvm-ffi are exactly the required versions.

    ``installed`` maps distribution name to version (None = not installed); it defaults to what
    importlib.metadata finds, and is a parameter so tests can check the verdict on other versions.
    Returns the versions that were checked.
    """
    versions = dict(installed_tvm_versions() if installed is None else installed)
    problems = []
    for name, required in REQUIRED_VERSIONS.items():
        found = versions.get(name)
        if found == required:
            continue
        if found is None:
            problems.append(f"{name} is not installed (required: {required})")
            continue
        problem = f"{name} {found} is installed (required: {required})"
        known_bad = KNOWN_BAD_VERSIONS.get((name, found))
        if known_bad:
            problem += f"; {name} {found} is known to be broken: it {known_bad}"
        problems.append(problem)
    if problems:
        raise RuntimeError(
            "cdmpp-tvm needs apache-tvm 0.27.0.post1 with apache-tvm-ffi 0.1.14.post1:\n  - "
            + "\n  - ".join(problems)
            + f"\nFix with: {PIP_FIX_COMMAND}"
        )
    return versions
