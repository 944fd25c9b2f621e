"""Named analyst queries (`<name>.sql`, `{db}` for the database): docs, the report and Grafana share them."""

from __future__ import annotations

from importlib import resources

__all__ = ["load", "names"]


def names() -> list[str]:
    """Every query name, sorted."""
    return sorted(p.name[:-4] for p in resources.files(__name__).iterdir() if p.name.endswith(".sql"))


def load(name: str, database: str = "cx") -> str:
    """The SQL of one query with `{db}` filled in, its leading comment kept."""
    path = resources.files(__name__) / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no analyst query {name!r}; known: {', '.join(names())}")
    return path.read_text().replace("{db}", database).strip()
