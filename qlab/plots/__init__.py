"""One module per picture: a pure compute function and a draw function on a matplotlib Figure.

Nothing here imports pyplot (figures are made with ``matplotlib.figure.Figure``, so a
widget redraw never touches global state) or TensorFlow."""
