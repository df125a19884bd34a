"""The hooks a bigram plugin can implement. Each is prefixed `bigram_`.

A plugin is any module or object registered under the `bigram.backends`
entry-point group; the built-in torch and NumPy backends are plugins too.
"""

import pluggy

hookspec = pluggy.HookspecMarker("bigram")
hookimpl = pluggy.HookimplMarker("bigram")


@hookspec
def bigram_backends():
    """Return a list of backend classes (see bigram.core.backend.Backend) this plugin provides."""
