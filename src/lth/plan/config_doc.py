"""The configuration reference (placeholder)."""


def markdown(site: bool = False) -> str:
    return "# Configuration\n\n(to be generated)\n"
