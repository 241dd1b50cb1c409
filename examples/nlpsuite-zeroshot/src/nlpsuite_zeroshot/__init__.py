"""nlpsuite-zeroshot: an example third-party nlpsuite plugin adding a zero-shot task.

The plugin itself is :mod:`nlpsuite_zeroshot.plugin`, named by the ``nlpsuite`` entry point in
this package's ``pyproject.toml``.
"""

__version__ = "0.1.0"
