"""Print `name installed (pinned X)` for every installed distribution whose version differs from a
constraints file; used by .ci/latest to name the suspects when an upstream release breaks a test."""

import sys
from importlib.metadata import distributions


def main(path: str) -> None:
    pins = {}
    for line in open(path):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = ver.strip()
    seen = set()
    for d in sorted(distributions(), key=lambda d: d.metadata["Name"].lower()):
        name = d.metadata["Name"].lower().replace("_", "-")
        if name in seen or name in ("audioflamingo", "pip", "setuptools", "wheel"):
            continue
        seen.add(name)
        ver = d.version.split("+")[0]
        if name not in pins:
            print(f"  {name} {ver} (not pinned)")
        elif pins[name] != ver:
            print(f"  {name} {ver} (pinned {pins[name]})")


if __name__ == "__main__":
    main(sys.argv[1])
