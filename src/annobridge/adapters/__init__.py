"""Built-in adapters. Each module registers itself through the ``annobridge``
entry-point group, exactly as a third-party adapter package would, and imports
its tool's SDK (if any) only when used."""
