"""Input validation, run before any pass: one module per input kind.

* :mod:`.options` — command-line / :class:`~snncompile.passes.build.CompileOptions` ranges and output paths;
* :mod:`.nir_graph` — the structure and values of any NIR graph we read (edges, shapes, finiteness,
  the ``metadata["snncompile"]`` schema);
* :mod:`.quantized` — a ``model.q.nir`` checked against its hardware profile (every field on its grid
  and in range) before any target runs it;
* :mod:`.timeconst` — foreign NIR time constants (seconds) against the time step ``dt``.

Every check raises one of :mod:`snncompile.errors` with one line naming the file, node, field,
value and the rule.  This package imports numpy, nir and :mod:`snncompile.errors` /
:mod:`snncompile.ir` / :mod:`snncompile.profile` only (no passes), so anything may call it.
"""
