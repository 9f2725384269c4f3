"""The registry stands alone: importing the pipeline loads nothing from the layers above
it, Casbin included (the import-linter contract in pyproject.toml checks the rest)."""

import json
import subprocess
import sys

ABOVE_REGISTRY = ("policy", "audit", "transports", "specops", "handlers", "specs", "storage")


def modules_loaded_by(module: str) -> list[str]:
    script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_importing_the_pipeline_loads_no_casbin() -> None:
    loaded = modules_loaded_by("registry.pipeline")
    assert "registry.pipeline" in loaded
    assert not [name for name in loaded if name.split(".")[0] == "casbin"]


def test_importing_the_pipeline_loads_no_layer_above_the_registry() -> None:
    loaded = modules_loaded_by("registry.pipeline")
    assert not [name for name in loaded if name.split(".")[0] in ABOVE_REGISTRY]
