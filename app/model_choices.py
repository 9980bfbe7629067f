"""Models the app offers: bundled presets, fine-tuned adapters in the runs folder, any path.

The runs folder is the caller's (app.users): with sign-in, each user trains and sees their own
runs and adapters."""

from __future__ import annotations

from pathlib import Path

from app.users import current_user, user_root
from engine.models import PRESETS, read_adapter_meta

ADAPTER_PREFIX = "adapter: "


def runs_dir() -> Path:
    """The training runs of the user whose event is being handled (the data folder's without
    sign-in)."""
    return user_root(current_user()) / "runs"


def adapters() -> dict[str, Path]:
    """Finished adapters (``<run>/adapter`` with adapter_config.json), newest first."""
    found = sorted(
        runs_dir().glob("*/adapter/adapter_config.json"), key=lambda p: -p.stat().st_mtime
    )
    return {f"{ADAPTER_PREFIX}{p.parent.parent.name}": p.parent for p in found}


def model_choices() -> list[str]:
    return [*PRESETS, *adapters()]


def resolve(choice: str | None) -> tuple[str | None, str | None]:
    """A dropdown value -> (model, adapter). Adapters name their own base model."""
    choice = (choice or "").strip()
    if choice.startswith(ADAPTER_PREFIX):
        folder = adapters().get(choice)
        if folder is None:
            raise ValueError(f"Adapter {choice[len(ADAPTER_PREFIX) :]} is not in {runs_dir()}")
        return read_adapter_meta(folder).get("base_model"), str(folder)
    if choice and (Path(choice) / "adapter_config.json").is_file():
        return read_adapter_meta(choice).get("base_model"), choice
    return choice or None, None
