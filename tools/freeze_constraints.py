"""Write constraints.txt from the environment it runs in: fintune[dev] and everything it pulls,
each at its installed version, with the header kept. Run it with the venv's python after the
suite (and the slow tests) passed on a newer stack: `make constraints`."""

import importlib.metadata as metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"


def needed(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """Name -> version of every installed distribution `root[extras]` requires, transitively."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    found: dict[str, set[str]] = {}
    pending = [(root, extras)]
    while pending:
        name, wanted = pending.pop()
        key = canonicalize_name(name)
        if key not in installed or (key in found and set(wanted) <= found[key]):
            continue
        found.setdefault(key, set()).update(wanted)
        for line in installed[key].requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *wanted)):
                pending.append((requirement.name, tuple(requirement.extras)))
    found.pop(canonicalize_name(root))
    return {installed[k].metadata["Name"]: installed[k].version for k in found}


def main() -> None:
    header = [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]
    # The CPU wheel is "2.13.0+cpu"; a pin without the local part matches it.
    pins = [
        f"{name}=={version.split('+')[0]}" for name, version in needed("fintune", ("dev",)).items()
    ]
    CONSTRAINTS.write_text("\n".join([*header, *sorted(pins, key=str.lower)]) + "\n")
    print(f"{CONSTRAINTS}: {len(pins)} pins")


if __name__ == "__main__":
    main()
