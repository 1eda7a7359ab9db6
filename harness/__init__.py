"""ent: measure how fine-tuning reshapes the concept geometry of code language models.

The core (this package) knows the hook specifications and its own public types; built-in plugins live in
``ent_plugins`` and register through the same hooks as third-party packages.
"""

__version__ = "0.1.0"
