"""From a Keras model to a ``.tflite`` file, and what is inside it (lessons 03, 04 and 10).

``converter`` (the TFLite converter's variants: float32, float16, dynamic range, full
int8, 16x8, QAT), ``litert_quantizer`` (the LiteRT Quantizer's recipes on a float file),
``tflite`` (running a file in LiteRT and reading its op table and weights),
``file_diff`` (two files of one model side by side), ``intsim`` (an integer-only
numpy interpreter, bit-exact with LiteRT), ``micro`` (an integer file on the
microcontroller runtime, TFLM: its agreement with LiteRT and the RAM it needs) and
``micro_boards`` (two published boards, and which files fit them and why not).
"""
