"""The Canton Tower mesh has the tower's published shape, not a box."""
import numpy as np
import pytest

from twin_assets.tower import TowerSpec, lattice, shell_mesh, width_profile


def test_base_top_and_waist():
    prof = width_profile()
    assert prof[0][1] == pytest.approx(60, abs=0.5)      # base short axis
    assert prof[-1][1] == pytest.approx(40.5, abs=0.5)   # top short axis
    h, w = min(prof, key=lambda p: p[1])
    assert 150 < h < 400 and w < 30                      # a narrow waist between base and top


def test_lattice_has_the_columns_rings_and_mast():
    spec = TowerSpec()
    parts = lattice(spec)
    assert len(parts) == spec.columns + spec.rings + 1
    top = max(p[:, 2].max() for p in parts)
    assert top == pytest.approx(600)


def test_shell_mesh_is_closed_around_and_indexed():
    pos, nor, idx = shell_mesh()
    assert pos.dtype == np.float32 and idx.dtype == np.uint32
    assert idx.max() < len(pos) and len(idx) % 3 == 0
    assert np.allclose(np.linalg.norm(nor, axis=1), 1, atol=1e-3)
