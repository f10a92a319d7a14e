"""Deliberately wrong answers to 13_microcontrollers' exercises, each with the hint it must get."""

# %% 13.smallest_arena
# expect: so does one byte less
my_arena = 1_000_000  # a megabyte: it works, and so does a byte less

# %% 13.fits
# expect: does not run
my_choice = ("mnist_cnn", "dynamic_int8")  # the smallest file of the converter's int8 weights
