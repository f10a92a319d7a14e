"""Where qlab looks for MNIST, artifacts and the repository, in a checkout and installed from a wheel.

Installed from a wheel, qlab's package sits in site-packages: the tests stand that in
by pointing ``_PACKAGE_PARENT`` (the folder holding ``qlab/``) at a temporary folder.
"""

import pytest

from qlab.files import paths


def _fake_checkout(root):
    """The markers of a qlab repository: its pyproject, the package and the notebooks."""
    (root / "qlab").mkdir(parents=True)
    (root / "qlab" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'qlab'\n")
    (root / "notebooks").mkdir()
    return root


@pytest.fixture
def in_checkout(tmp_path, monkeypatch):
    """qlab imported from a checkout at tmp_path/repo (an editable install or the source tree)."""
    root = _fake_checkout(tmp_path / "repo")
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", root)
    return root


@pytest.fixture
def from_wheel(tmp_path, monkeypatch):
    """qlab installed from a wheel into tmp_path/site-packages, run from tmp_path/work."""
    site_packages = tmp_path / "site-packages"
    (site_packages / "qlab").mkdir(parents=True)
    (site_packages / "qlab" / "__init__.py").write_text("")
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", site_packages)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.delenv(paths.ARTIFACTS_ENV, raising=False)
    return work


def test_this_checkout_is_found():
    root = paths.checkout_root()
    assert root is not None and (root / "data" / "mnist.npz").is_file()
    assert paths.repository_root() == root


def test_data_dir_comes_from_the_environment_first(in_checkout, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "elsewhere"))
    assert paths.data_dir() == tmp_path / "elsewhere"


def test_data_dir_falls_back_to_the_checkout(in_checkout, monkeypatch):
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    assert paths.data_dir() == in_checkout / "data"
    monkeypatch.setenv(paths.DATA_ENV, "")  # an empty setting counts as unset
    assert paths.data_dir() == in_checkout / "data"


def test_data_dir_from_the_environment_works_from_a_wheel(from_wheel, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "mnist-folder"))
    assert paths.data_dir() == tmp_path / "mnist-folder"


def test_data_dir_outside_a_checkout_says_what_to_set(from_wheel):
    with pytest.raises(FileNotFoundError) as caught:
        paths.data_dir()
    message = str(caught.value)
    assert "QLAB_DATA_DIR" in message and "mnist.npz" in message
    assert str(paths._PACKAGE_PARENT) in message  # where qlab is installed


def test_a_checkout_in_the_current_folder_does_not_supply_data(from_wheel, monkeypatch):
    # Data comes from a setting or from the checkout qlab was imported from, never from
    # wherever the user happens to stand.
    _fake_checkout(from_wheel / "other-repo")
    monkeypatch.chdir(from_wheel / "other-repo")
    with pytest.raises(FileNotFoundError, match="QLAB_DATA_DIR"):
        paths.data_dir()


def test_artifacts_come_from_the_environment_first(in_checkout, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ARTIFACTS_ENV, str(tmp_path / "my-artifacts"))
    assert paths.artifacts_dir() == tmp_path / "my-artifacts"
    assert (tmp_path / "my-artifacts").is_dir()


def test_artifacts_default_to_the_checkouts_folder(in_checkout, tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ARTIFACTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.artifacts_dir() == in_checkout / "artifacts"
    assert (in_checkout / "artifacts").is_dir() and not (tmp_path / "artifacts").exists()


def test_artifacts_outside_a_checkout_go_to_the_current_folder(from_wheel):
    assert paths.artifacts_dir() == from_wheel / "artifacts"
    assert (from_wheel / "artifacts").is_dir()
    assert not (paths._PACKAGE_PARENT / "artifacts").exists()  # never into site-packages


def test_repository_root_is_the_checkout_qlab_came_from(in_checkout, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.repository_root() == in_checkout


def test_repository_root_from_a_wheel_is_the_current_checkout(from_wheel, monkeypatch):
    repo = _fake_checkout(from_wheel / "clone")
    monkeypatch.chdir(repo)
    assert paths.repository_root() == repo


def test_repository_root_outside_a_checkout_says_why(from_wheel):
    with pytest.raises(FileNotFoundError) as caught:
        paths.repository_root()
    message = str(caught.value)
    assert "qlab repository" in message and "notebooks/" in message
    assert str(from_wheel) in message and str(paths._PACKAGE_PARENT) in message


@pytest.mark.parametrize("missing", ["pyproject.toml", "qlab/__init__.py", "notebooks"])
def test_a_checkout_needs_all_its_markers(tmp_path, missing):
    root = _fake_checkout(tmp_path / "repo")
    assert paths._is_checkout(root)
    target = root / missing
    if target.is_dir():
        target.rmdir()
    else:
        target.unlink()
    assert not paths._is_checkout(root)


def test_environment_variable_is_set_inside_and_restored_after_even_on_error(monkeypatch):
    import os

    from qlab.files.paths import environment_variable

    monkeypatch.delenv("QLAB_TEST_VAR", raising=False)
    with environment_variable("QLAB_TEST_VAR", "1"):
        assert os.environ["QLAB_TEST_VAR"] == "1"
    assert "QLAB_TEST_VAR" not in os.environ
    monkeypatch.setenv("QLAB_TEST_VAR", "before")
    with pytest.raises(RuntimeError), environment_variable("QLAB_TEST_VAR", "inside"):
        assert os.environ["QLAB_TEST_VAR"] == "inside"
        raise RuntimeError("boom")
    assert os.environ["QLAB_TEST_VAR"] == "before"
