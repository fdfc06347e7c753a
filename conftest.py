"""Test environment for tests/ and the nbval runs of examples/.

The server is the embedded one, in a fresh temporary data folder so a user's own
embedded database (and query history) is never touched, or the one ``PGMAGIC_TEST_DSN`` names.  The
environment is set at import time so kernels that tests and nbval start inherit it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_DATA_DIR = tempfile.mkdtemp(prefix="pgmagic-test-")
# Registered before the embedded server's own exit hook, so it runs after the
# server has stopped (atexit is last-in, first-out).
atexit.register(shutil.rmtree, _DATA_DIR, True)
for _name in (
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGSERVICE",
):
    os.environ.pop(_name, None)
os.environ["PGMAGIC_DATA_DIR"] = os.path.join(_DATA_DIR, "pgdata")
# The query history too: never the user's own.
os.environ["PGMAGIC_HISTORY_FILE"] = os.path.join(_DATA_DIR, "history.sqlite3")
if os.environ.get("PGMAGIC_TEST_DSN"):
    os.environ["PGMAGIC_DSN"] = os.environ["PGMAGIC_TEST_DSN"]
else:
    os.environ.pop("PGMAGIC_DSN", None)
# Kernels started by tests must not pick up a user's IPython profile or startup files.
os.environ["IPYTHONDIR"] = os.path.join(_DATA_DIR, "ipython")
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
