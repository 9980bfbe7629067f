"""Models the app offers: bundled presets, fine-tuned adapters in the runs folder, any path.

The runs folder is the caller's: each function takes the data folder of the user whose event
it is (``root``, app.users.UserSpace.root, as the tab passes it), so with sign-in each user
trains and sees their own runs and adapters."""

from __future__ import annotations

from pathlib import Path

from engine.models import read_adapter_meta
from engine.presets import PRESETS

ADAPTER_PREFIX = "adapter: "


def runs_dir(root: Path) -> Path:
    """The training runs of the user whose data folder is ``root``."""
    return root / "runs"


def adapters(root: Path) -> dict[str, Path]:
    """Finished adapters (``<run>/adapter`` with adapter_config.json), newest first."""
    found = sorted(
        runs_dir(root).glob("*/adapter/adapter_config.json"), key=lambda p: -p.stat().st_mtime
    )
    return {f"{ADAPTER_PREFIX}{p.parent.parent.name}": p.parent for p in found}


def model_choices(root: Path) -> list[str]:
    return [*PRESETS, *adapters(root)]


def resolve(choice: str | None, root: Path) -> tuple[str | None, str | None]:
    """A dropdown value -> (model, adapter). Adapters name their own base model; an adapter
    label is looked up in ``root``'s runs."""
    choice = (choice or "").strip()
    if choice.startswith(ADAPTER_PREFIX):
        folder = adapters(root).get(choice)
        if folder is None:
            raise ValueError(f"Adapter {choice[len(ADAPTER_PREFIX) :]} is not in {runs_dir(root)}")
        return read_adapter_meta(folder).get("base_model"), str(folder)
    if choice and (Path(choice) / "adapter_config.json").is_file():
        return read_adapter_meta(choice).get("base_model"), choice
    return choice or None, None
