"""CLI: regenerate the checked-in catalog schemas (``python -m catalog.schemas``)."""

from catalog.schemas import export

if __name__ == "__main__":
    for path in export():
        print(path)  # noqa: T201 - CLI output
