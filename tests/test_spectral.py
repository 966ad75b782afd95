import numpy as np
import pytest

from cryodiffseg.benchmark.operators import reference_samples, region_attention
from cryodiffseg.features.attention import LayerAttention
from cryodiffseg.spectral import (
    DirectSolverConfig,
    PaperSolverConfig,
    direct_eigenmaps,
    paper_eigenmaps,
    pooled_operator,
    subspace_agreement,
)
from cryodiffseg.spectral.direct import leading_eigenvectors


def samples(count=3):
    return reference_samples("regions", 16, count)


def explicit_layer_term(data, name, finest=16):
    """s^2 A^T Psym A of one layer, P averaged over heads and samples, written out with the pooling matrix A."""
    g = data[0][name].grid
    s = finest // g
    A = np.zeros((g * g, finest * finest))
    for i in range(finest):
        for j in range(finest):
            A[(i // s) * g + j // s, i * finest + j] = 1 / s**2
    P = np.mean([d[name].probs.double().mean(0).numpy() for d in data], axis=0)
    return s**2 * A.T @ ((P + P.T) / 2) @ A


def test_operator_is_the_pooled_layer_mean():
    data = samples()
    op = pooled_operator(data)
    M = op.dense()
    np.testing.assert_allclose(M, M.T, atol=1e-12)
    expected = sum(explicit_layer_term(data, name) for name in data[0]) / len(data[0])
    np.testing.assert_allclose(M, expected, atol=1e-10)


def test_layer_weights_reproduce_the_reference_objectives_reuse_of_mid_and_up_attention():
    from types import SimpleNamespace

    from cryodiffseg.spectral.operator import layer_weights

    # Stable Diffusion v1's 16 self-attention layers: 6 on the down path, 1 mid, 9 up
    sd = [{f"down{i}": SimpleNamespace(in_down_path=True) for i in range(6)}
          | {f"other{i}": SimpleNamespace(in_down_path=False) for i in range(10)}]
    equal = layer_weights(sd)
    assert set(equal.values()) == {1 / 16}
    paper = layer_weights(sd, reuse_probability=0.9)
    assert sum(paper.values()) == pytest.approx(1.0)
    assert sum(w for name, w in paper.items() if name.startswith("down")) == pytest.approx(0.0375)  # 3.75 %
    assert paper["other0"] == pytest.approx(0.1 / 16 + 0.9 / 10)

    data = samples()
    weights = layer_weights(data, reuse_probability=0.9)
    assert len(set(round(w, 12) for w in weights.values())) == 2  # the sample set has both kinds of layer
    expected = sum(weights[name] * explicit_layer_term(data, name) for name in data[0])
    np.testing.assert_allclose(pooled_operator(data, reuse_probability=0.9).dense(), expected, atol=1e-10)
    assert not np.allclose(pooled_operator(data).dense(), expected)


def test_direct_maps_are_orthonormal_eigenvectors():
    data = samples()
    maps = direct_eigenmaps(data)
    assert maps.shape == (12, 16, 16)
    v = maps.reshape(12, -1).T.astype(np.float64)
    np.testing.assert_allclose(v.T @ v, np.eye(12), atol=1e-5)
    op = pooled_operator(data)
    values, vectors = leading_eigenvectors(op, DirectSolverConfig())
    residual = np.linalg.norm(op.matmat(vectors) - vectors * values, axis=0)
    assert residual.max() < 1e-6
    dense_values = np.linalg.eigvalsh(op.dense())[::-1][:12]
    np.testing.assert_allclose(values, dense_values, atol=1e-8)
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_array_equal(maps, direct_eigenmaps(data))  # deterministic, signs fixed


def test_direct_spans_the_paper_solvers_subspace():
    data = samples()
    direct = direct_eigenmaps(data)
    paper = paper_eigenmaps(data, PaperSolverConfig(iterations=600, hidden_channels=32))
    assert paper.shape == direct.shape
    v = paper.reshape(12, -1)
    np.testing.assert_allclose(v @ v.T, np.eye(12), atol=1e-4)  # read-out is orthonormal
    assert subspace_agreement(direct, paper) >= 0.8
    # and unrelated maps do not agree
    random_maps = np.random.default_rng(0).standard_normal((12, 16, 16))
    assert subspace_agreement(direct, random_maps) < 0.5


def test_paper_solver_reuses_buffer_of_mid_and_up_layers():
    calls = []
    data = samples(1)

    def draw():
        calls.append(1)
        return data[0]

    paper_eigenmaps(data, PaperSolverConfig(iterations=200, hidden_channels=8), draw=draw)
    # with reuse probability 0.9 about 10% of 201 iterations draw fresh attention
    assert 5 <= len(calls) <= 45


def test_too_many_maps_for_the_grid():
    with pytest.raises(ValueError, match="finer attention grid"):
        direct_eigenmaps([{"a": LayerAttention("a", region_attention(8)[:, :9, :9] / 1.0)}], DirectSolverConfig(num_maps=12))
