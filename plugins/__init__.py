"""nlpsuite's built-in task plugins, installed as ``nlpsuite_plugins`` and registered through the
``nlpsuite`` entry-point group exactly as a third-party package's plugins are."""
