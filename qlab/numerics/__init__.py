"""Quantization math in numpy: no TensorFlow, matplotlib or ipywidgets here."""
