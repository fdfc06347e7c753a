"""The IPython and Jupyter front: magics, tables, the feed widget, the panel, progress.

The only package that imports IPython, traitlets, ipywidgets/anywidget, comm
or tqdm.  :mod:`~pgmagic.frontend.magics` parses and dispatches (options in
:mod:`~pgmagic.frontend.options`, traits in :mod:`~pgmagic.frontend.config`,
subcommands in :mod:`~pgmagic.frontend.commands`);
:mod:`~pgmagic.frontend.extension` loads and unloads; :mod:`~pgmagic.frontend.tables`
draws results, :mod:`~pgmagic.frontend.feed` is the feed widget and the
panel's kernel side.

May import: errors, runtime, sql, results, bulk, live, catalog
"""
