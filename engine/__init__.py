"""In-process text-to-SQL runtime: models, prompt format, SQL checking and safe execution.

Importing this package is cheap: torch, transformers and friends are imported inside the
functions that need them.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
