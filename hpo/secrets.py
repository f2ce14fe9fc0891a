"""Secrets in one place: passwords masked wherever a URL is shown, and kept from Hydra.

Every message, log line or tag that may hold a URL goes through ``mask``.
Passwords typed on the command line never reach Hydra.

Hydra keeps the raw overrides and writes them out: ``.hydra/overrides.yaml``,
``.hydra/hydra.yaml`` (``hydra.overrides.task``, ``hydra.job.override_dirname``),
``.hydra/config.yaml``, a multirun's ``multirun.yaml``, the launcher's
"#0 : storage.url=..." log line, argparse's usage errors, and whatever a
launcher plugin pickles for remote jobs (submitit). Masking those files
afterwards (a Hydra callback) would chase each of them, leave them readable
until the callback runs, and miss what plugins write. So the password is
taken out before Hydra parses the command line: an override whose value is
a URL with a password, such as ``storage.url=postgresql://u:PW@host/db``,
becomes ``storage.url=${oc.env:HPO_STORAGE_URL}`` and the URL goes into this
process's environment, which child processes (workers, launchers) inherit.
Hydra only ever sees, saves and logs the interpolation; the value is resolved
where it is used.

What this cannot do: hide the password from the process list (``ps``) of the
command the user typed, or from the shell's history. Hence the README's
advice: pass it in HPO_STORAGE_URL, PGPASSWORD or ~/.pgpass.
"""

from __future__ import annotations

import os
import re

_OVERRIDE = re.compile(r"^(?P<prefix>~|\+\+|\+)?(?P<key>[A-Za-z_][\w.]*)=(?P<value>.*)$", re.S)


_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)", re.I)


def mask(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", text)


def env_name(key: str) -> str:
    """``storage.url`` -> ``HPO_STORAGE_URL``: the documented variable for the usual keys."""
    return "HPO_" + re.sub(r"\W", "_", key).upper()


def hide_secrets(argv: list[str]) -> list[str]:
    """``argv`` with every override that holds a password moved into the environment."""
    hidden = []
    for arg in argv:
        match = _OVERRIDE.match(arg)
        value = match and _unquote(match["value"])
        if not match or not value or mask(value) == value or match["prefix"] == "~":
            hidden.append(arg)
            continue
        name = env_name(match["key"])
        os.environ[name] = value
        hidden.append(f"{match['prefix'] or ''}{match['key']}=${{oc.env:{name}}}")
    return hidden


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
