"""Jupyter server settings for the galata UI tests (never use in production)."""

import os
from pathlib import Path
from tempfile import mkdtemp

from jupyterlab import galata

# Galata's test helpers extension, no token, a throwaway root dir.
galata.configure_jupyter_server(c)  # noqa: F821

c.ServerApp.ip = "127.0.0.1"  # noqa: F821
c.ServerApp.port = int(os.environ.get("PGMAGIC_UI_PORT", "8891"))  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
# Kernels inherit this: their embedded PostgreSQL must not touch the user's data.
os.environ.setdefault("PGMAGIC_DATA_DIR", mkdtemp(prefix="pgmagic-ui-tests-"))
# Notebook 7 pages (notebook7.spec.ts) are served by the same server: let
# the specs reach its app as galata reaches JupyterLab's.
c.JupyterNotebookApp.expose_app_in_browser = True  # noqa: F821
# The tests run offline: no update checks or news toasts.
c.LabApp.news_url = None  # noqa: F821
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # noqa: F821

# Serve the repository's build of the extension even when an older copy is
# installed in the environment: extra paths take precedence over installed ones.
_build = Path(__file__).resolve().parents[2] / "pgmagic" / "labextension"
if (_build / "package.json").exists():
    _links = Path(mkdtemp(prefix="pgmagic-labextensions-"))
    (_links / "pgmagic-labextension").symlink_to(_build)
    c.LabServerApp.extra_labextensions_path = [  # noqa: F821
        str(Path(galata.__file__).parent),
        str(_links),
    ]
