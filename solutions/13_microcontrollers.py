"""Solutions to 13_microcontrollers, for instructors: each section fills the blank of the exercise it names.

`qlab solutions` writes the lesson with these filled in (artifacts/solutions/13_microcontrollers.ipynb).
"""

# %% 13.smallest_arena
fails, works = 0, 1024
while not micro.allocates(exercise_file, works)[0]:  # double until a size works
    fails, works = works, 2 * works
while works - fails > 1:
    middle = (fails + works) // 2
    if micro.allocates(exercise_file, middle)[0]:
        works = middle
    else:
        fails = middle
my_arena = works

# %% 13.fits
ran = runs[runs["refusal"].isna()]
within = ran[(ran["arena bytes"] <= board.arena_budget) & (ran["flash bytes"] <= board.model_budget)]
best = within.loc[within["micro accuracy"].idxmax()]
my_choice = (best["model"], best["variant"])

# %% question 1
# Per-tensor weights store one scale per tensor instead of one per output channel; scales live in flash, so the
# arena hardly moves. The QAT 4-bit file packs two weights to a byte, and TFLM unpacks each packed weight tensor
# into an int8 buffer in the arena before the kernels run: its arena grows by the unpacked weights.
print(runs[runs["variant"].isin(["int8_per_channel", "int8_per_tensor", "qat_4bit"])].pivot_table(
    index="model", columns="variant", values="arena bytes", sort=False))

# %% question 2
# 64 KiB more for the program leaves 160 KiB for the arena on the nRF52840: the files whose arena is between 160
# and 224 KiB no longer fit; the flash side is unchanged.
import dataclasses

busy = dataclasses.replace(NRF52840, name="nRF52840 with 96 KiB reserved", ram_reserve_bytes=96 * 1024)
both = zoo_fit_table(STUDY_MODELS, SIZE, SEED, boards=(NRF52840, busy))
print(both.pivot_table(index=["model", "variant"], columns="board", values="fits", sort=False).astype(bool))

# %% question 3
# Per-tensor weights: a slightly smaller file (fewer scales), the same arena; on MobileNets per-channel weights are
# the safer choice (lesson 05), so read the paired interval between the two files before choosing.
print(fit_table({"per tensor": exercise_file}, (NRF52840,)))
tensor_correct = qlab.predict_tflite(exercise_file, v2_test).argmax(1) == v2_labels
print(qlab.paired_accuracy_difference(narrow_correct, tensor_correct))

# %% question 4
# The LiteRT Quantizer writes a model's weights after the FlatBuffer when the file is large (buffer offsets, a
# schema feature for files over 2 GB); MobileNet v2's weights are large enough, the CNN's are not. LiteRT reads such
# buffers, this TFLM does not, so qlab refuses the file instead of letting TFLM compute with garbage.
from qlab.workbook.pipeline import zoo_tflite_dir

for model in ("mnist_cnn", "mobilenet_v2"):
    path = zoo_tflite_dir(model, SIZE, SEED) / "aeq_int8_per_channel.tflite"
    if path.exists():
        print(model, micro.outside_buffers(path.read_bytes()))
