"""Attribute every frame of a capture to the process that sent or received it.

Inputs are the three tables of :mod:`etwtools.parsers.schema`: network events with PIDs (EVENTS),
frames (FRAMES) and processes (PROCESSES). The steps, all bulk polars joins, each in its module:

1. :mod:`.prepare`: local addresses of the traced host (given, NIC events, or inferred from the events),
   hence the direction of each frame and its (local, remote) 5-tuple; later IP fragments and their first;
2. :mod:`.offset`: the clock offset capture - trace, voted from candidate matches (:mod:`etwtools.clock_offset`);
3. :mod:`.matchers`: UDP: datagram = Send/Recv event with the same 5-tuple and size, nearest in time within
   the tolerance; TCP: frame = owner of its 4-tuple at that time (the PID of the events around it), so a
   4-tuple reused by another process changes owner at that process's first event; then weaker evidence
   (same local port; same addresses) at low confidence; the best candidate per frame;
4. :mod:`.reasons`: one sentence per frame, one renderer per method;
5. :mod:`.answer`: later IP fragments follow their first fragment; PID -> process name and services
   (:mod:`etwtools.processes`); the output table and the summary;
6. :mod:`.result`: :class:`Attribution`, with the :class:`Evidence` that ``--frame N`` explains.

:func:`attribute` joins tables; :func:`attribute_files` reads the files first (what the CLI calls).
"""

from __future__ import annotations

from .constants import DEFAULT_TOLERANCE_S, OUT_COLUMNS
from .engine import attribute
from .files import attribute_files
from .result import Attribution, Evidence

__all__ = ["DEFAULT_TOLERANCE_S", "OUT_COLUMNS", "Attribution", "Evidence", "attribute", "attribute_files"]
