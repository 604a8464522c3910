"""Matplotlib for figures written to files.

Imported where a figure is drawn rather than at module top, so that commands which draw
nothing do not pay matplotlib's import; the Agg backend needs no display.
"""


def pyplot():
  """matplotlib.pyplot on the file-only Agg backend."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt
