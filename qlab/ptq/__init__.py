"""Post-training quantization techniques (lessons 04, 05 and 08).

``representative`` (calibration data and how it goes wrong), ``ranges`` (activation
ranges from data: min-max, percentile, MSE), ``weight_bits`` (weights at 8 to 2 bits,
per tensor or per channel), ``batch_norm_folding``, ``equalize`` (cross-layer
equalization), ``bias_correction``, ``adaround`` (learned rounding), ``debug`` (the
quantization debugger, layers kept in float) and ``depth_error`` (error by depth).
"""
