"""qlab.zoo.progress without TensorFlow: the switch, the bar, the loop helper, the plain lines."""

import io

import pytest

from qlab.zoo import progress


@pytest.fixture
def lines(monkeypatch):
    """Progress lines as ``qlab run``'s kernels print them, written to a StringIO."""
    terminal = io.StringIO()
    monkeypatch.setenv(progress.LINES_ENV, "1")
    monkeypatch.setattr(progress, "_kernel_terminal", lambda: terminal)
    return terminal


@pytest.mark.parametrize("value, expected", [(None, True), ("1", True), ("0", False), ("false", False),
                                             ("OFF", False), ("no", False), ("yes", True)])
def test_qlab_progress_environment_variable_turns_the_bars_off(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(progress.PROGRESS_ENV, value)
    assert progress.progress_enabled() is expected


def test_an_explicit_progress_argument_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    assert progress.progress_enabled(True) is True
    monkeypatch.setenv(progress.PROGRESS_ENV, "1")
    assert progress.progress_enabled(False) is False


@pytest.mark.parametrize("bad", ["no", 0, 1, "False"])
def test_progress_must_be_a_bool(bad):
    with pytest.raises(TypeError, match=f"progress must be True or False, got {bad!r}"):
        progress.progress_enabled(bad)


def test_progress_iter_yields_every_item_in_order_and_the_bar_counts_them(monkeypatch, capsys):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    assert list(progress.progress_iter(["a", "b", "c"], "three things", unit="thing")) == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert "three things" in err and "3/3" in err
    assert "thing/s" in err or "s/thing" in err  # the rate, from which tqdm derives the ETA


def test_a_disabled_bar_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    assert list(progress.progress_iter(range(4), "quiet loop")) == [0, 1, 2, 3]
    bar = progress.ProgressBar(10, "quiet bar")
    bar.update(3)
    bar.show("x")
    bar.close()
    assert bar.bars == [] and repr(bar) == "ProgressBar(off)"
    assert capsys.readouterr().err == ""


def test_progress_iter_closes_its_bar_when_the_loop_stops_early(lines, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    for item in progress.progress_iter(range(5), "stops early"):
        if item == 1:
            break
    last = lines.getvalue().splitlines()[-1]
    assert "stops early" in last and "1/5" in last


def test_under_qlab_run_a_bar_also_prints_whole_plain_lines(lines, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    with progress.ProgressBar(4, "training demo (smoke)", unit="step") as bar:
        bar.show("epoch 1/2")
        bar.update(4)
    text = lines.getvalue()
    assert "\r" not in text and text.endswith("\n")
    printed = text.splitlines()
    assert all(line.startswith("training demo (smoke):") for line in printed)
    assert "0/4" in printed[0]  # at once, not after the first interval
    assert any("0/4" in line and "epoch 1/2" in line for line in printed)  # show() prints at once too
    assert "100%" in printed[-1] and "4/4" in printed[-1] and "epoch 1/2" in printed[-1]


def test_no_plain_lines_without_the_runner_variable(monkeypatch):
    terminal = io.StringIO()
    monkeypatch.delenv(progress.LINES_ENV, raising=False)
    monkeypatch.setattr(progress, "_kernel_terminal", lambda: terminal)
    with progress.ProgressBar(2, "no lines", progress=True) as bar:
        bar.update(2)
    assert terminal.getvalue() == ""


def test_outside_a_jupyter_kernel_there_is_no_kernel_terminal():
    progress._kernel_terminal.cache_clear()
    assert progress._kernel_terminal() is None


def test_line_writer_turns_tqdm_redraws_into_lines():
    out = io.StringIO()
    writer = progress._LineWriter(out)
    assert writer.write("\rfirst state   \rsecond state\n\x1b[A") == len("\rfirst state   \rsecond state\n\x1b[A")
    writer.write("\r    \r")  # tqdm clearing a bar: no empty line
    assert out.getvalue() == "first state\nsecond state\n"


def test_fit_progress_needs_a_text_description():
    with pytest.raises(TypeError, match="description must be a string, got 3"):
        progress.fit_progress(3)


def test_fit_progress_is_empty_when_progress_is_off(monkeypatch):
    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    assert progress.fit_progress("training x") == []


def test_line_writer_leaves_out_a_line_that_only_repeats_the_last_with_a_later_time():
    out = io.StringIO()
    writer = progress._LineWriter(out)
    writer.write("\rtrain:  50%|#####     | 4/8 [00:01<00:01,  4.00step/s, epoch 1/1]")
    writer.write("\rtrain:  50%|#####     | 4/8 [00:02<00:02,  2.00step/s, epoch 1/1]\n")
    writer.write("\rtrain:  50%|#####     | 4/8 [00:02<00:02,  2.00step/s, epoch 1/1, loss 2.1]")
    writer.write("\rtrain: 100%|##########| 8/8 [00:03<00:00,  2.60step/s, epoch 1/1, loss 2.1]")
    assert [line.split("|")[-1] for line in out.getvalue().splitlines()] == [
        " 4/8 [00:01<00:01,  4.00step/s, epoch 1/1]", " 4/8 [00:02<00:02,  2.00step/s, epoch 1/1, loss 2.1]",
        " 8/8 [00:03<00:00,  2.60step/s, epoch 1/1, loss 2.1]"]
