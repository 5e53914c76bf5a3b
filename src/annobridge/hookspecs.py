"""Plugin hooks. An adapter package implements ``register_adapters`` and exposes
its module under the ``annobridge`` entry-point group::

    [project.entry-points.annobridge]
    mytool = "annobridge_mytool"

and in ``annobridge_mytool/__init__.py``::

    import annobridge

    @annobridge.hookimpl
    def register_adapters(register):
        register(MyToolAdapter)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("annobridge")
hookimpl = pluggy.HookimplMarker("annobridge")


@hookspec
def register_adapters(register: Callable[[type[Any]], None]) -> None:
    """Call ``register(AdapterClass)`` for each adapter this plugin provides."""
