"""Quantization-aware training with TFMOT (lessons 06 and 07).

``quantize`` (the whole model, annotated layers, n-bit schemes, where the quantizers
sit), ``quantize_configs`` (qlab's QuantizeConfigs), ``training`` (fine-tuning and the
zoo's cached QAT variants), ``ranges`` (activation ranges at the start of and during
QAT), ``placement`` (FakeQuant in the wrong place) and ``mixed_precision`` (layers kept
at 8 bits by measured sensitivity).
"""
