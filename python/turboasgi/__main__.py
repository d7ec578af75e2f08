"""``python -m turboasgi`` and the ``turboasgi`` console script."""

from turboasgi.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
