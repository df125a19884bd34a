"""The root's options (`--backend`, `--device`, any the root callback declares) after the command too.

`bigram train --backend numpy` is `bigram --backend numpy train`. Every
command gets a copy of each root option, listed in its `--help`. A value typed
after the command goes into the root context, and the root callback runs
again, so a command reads one State wherever the option was given. Given on
both sides, the one after the command counts, as the last of a repeated
option does. A command's own option with the same name or flag keeps it.

Eager options (`--version`) and the completion options stay on the root.
"""

from __future__ import annotations

import copy


def share_root_options(root) -> None:
    """Give every command under the click group `root` a copy of each root option it does not have."""
    shared = [p for p in root.params if _shareable(p)]
    for cmd in _commands(root):
        taken = {p.name for p in cmd.params} | {o for p in cmd.params for o in _flags(p)}
        for p in shared:
            if p.name not in taken and not taken & set(_flags(p)):
                cmd.params.append(_copy_to_root(p))


def _shareable(p) -> bool:
    """An option the root callback takes: not eager, not --install-completion's (which has no value)."""
    return getattr(p, "param_type_name", "") == "option" and p.expose_value and not p.is_eager


def _flags(p) -> list[str]:
    return [*p.opts, *p.secondary_opts]


def _commands(group):
    """Every command below `group`, however deep (`data prepare`), not the groups themselves."""
    for cmd in getattr(group, "commands", {}).values():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd)
        else:
            yield cmd


def _copy_to_root(p):
    """The root option `p`, as an option of a command: its value is the root's, never the command's."""
    c = copy.copy(p)
    c.expose_value = False  # the command's own function never sees it
    c.callback = _to_root
    return c


def _to_root(ctx, param, value):
    """A root option typed after the command: set it on the root and run the root callback again."""
    source = ctx.get_parameter_source(param.name)
    if ctx.resilient_parsing or source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
        return value
    root = ctx.find_root()
    root.params[param.name] = value
    root.set_parameter_source(param.name, source)
    root.invoke(root.command.callback, **root.params)
    return value
