"""The presets page of the documentation site, from config/presets/*.yaml (placeholder)."""

from pathlib import Path


def markdown(folder: Path) -> str:
    return "# Presets\n\n" + "\n".join(f"- `{p.stem}`" for p in sorted(Path(folder).glob("*.yaml"))) + "\n"
