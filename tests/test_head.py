import numpy as np
import pytest

from skavc._head import infonce_loss_and_grads, init_head_params, project
from skavc._training import Adam, train_epoch


@pytest.mark.parametrize("hidden_units", [None, 7])
def test_infonce_gradients_match_finite_differences(hidden_units):
    rng = np.random.RandomState(0)
    A, V = rng.normal(size=(6, 5)), rng.normal(size=(6, 4))
    params = init_head_params(5, 4, 3, hidden_units, 0.2, rng)
    _, grads = infonce_loss_and_grads(params, A, V, learn_temperature=True, alpha=0.01)
    eps = 1e-6
    for key, value in params.items():
        flat = value.reshape(-1)
        for j in range(min(flat.size, 5)):
            orig = flat[j]
            flat[j] = orig + eps
            up, _ = infonce_loss_and_grads(params, A, V, True, 0.01)
            flat[j] = orig - eps
            down, _ = infonce_loss_and_grads(params, A, V, True, 0.01)
            flat[j] = orig
            numeric = (up - down) / (2 * eps)
            assert np.isclose(grads[key].reshape(-1)[j], numeric, rtol=1e-4, atol=1e-7), key


def test_fixed_temperature_gets_no_gradient():
    rng = np.random.RandomState(0)
    params = init_head_params(5, 4, 3, None, 0.1, rng)
    _, grads = infonce_loss_and_grads(params, rng.normal(size=(4, 5)), rng.normal(size=(4, 4)), False)
    assert grads["log_temperature"] == 0.0


def test_training_aligns_paired_rows():
    rng = np.random.RandomState(0)
    latent = rng.normal(size=(64, 8))
    A = latent @ rng.normal(size=(8, 20)) + 0.05 * rng.normal(size=(64, 20))
    V = latent @ rng.normal(size=(8, 30)) + 0.05 * rng.normal(size=(64, 30))
    params = init_head_params(20, 30, 8, None, 0.1, rng)
    opt = Adam(params, learning_rate=1e-2)
    first = train_epoch(params, opt, A, V, 16, rng)
    for _ in range(100):
        last = train_epoch(params, opt, A, V, 16, rng)
    assert last < first / 2
    sim = project(params, A, "audio") @ project(params, V, "visual").T
    assert np.mean(sim.argmax(axis=1) == np.arange(64)) > 0.9


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("learn_temperature", [True, False])
@pytest.mark.parametrize("hidden_units", [None, 7])
def test_torch_reference_takes_the_same_steps(hidden_units, learn_temperature, dtype, benchmark_module):
    """The benchmark's PyTorch reference is the same computation: same losses, same parameters
    after each Adam step on the same minibatches (float64 to rounding, float32 to its precision)."""
    torch = pytest.importorskip("torch")
    bench = benchmark_module("bench_head")
    rng = np.random.RandomState(0)
    A, V = rng.normal(size=(40, 6)), rng.normal(size=(40, 5))
    init = init_head_params(6, 5, 4, hidden_units, 0.2, rng)
    params = bench.as_dtype(init, dtype)
    opt = Adam(params, learning_rate=1e-2)
    ref = bench.TorchHead(init, learning_rate=1e-2, learn_temperature=learn_temperature, alpha=1e-3,
                          dtype=getattr(torch, dtype))
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (2e-4, 2e-5)
    for idx in bench.minibatches(40, 16, np.random.RandomState(1)) * 2:  # a few steps: Adam's t matters
        loss, grads = infonce_loss_and_grads(params, A[idx], V[idx], learn_temperature, alpha=1e-3)
        opt.step(params, grads)
        ref_loss = ref.step(ref.as_tensor(A[idx]), ref.as_tensor(V[idx]))
        assert loss == pytest.approx(ref_loss, rel=rtol)
        ref_params = ref.numpy_params()
        for key in params:
            assert np.asarray(params[key]).dtype == (np.float64 if key == "log_temperature" else dtype)
            np.testing.assert_allclose(params[key], ref_params[key], rtol=rtol, atol=atol, err_msg=key)
    assert (params["log_temperature"] != init["log_temperature"]) == learn_temperature


def test_float32_parameters_train_in_float32_like_float64():
    rng = np.random.RandomState(0)
    latent = rng.normal(size=(96, 8))
    A = latent @ rng.normal(size=(8, 20)) + 0.05 * rng.normal(size=(96, 20))
    V = latent @ rng.normal(size=(8, 30)) + 0.05 * rng.normal(size=(96, 30))
    init = init_head_params(20, 30, 8, 16, 0.1, rng)
    p64 = {k: v.copy() for k, v in init.items()}
    p32 = {k: v.astype(np.float32) if v.ndim else v.copy() for k, v in init.items()}
    loss64, g64 = infonce_loss_and_grads(p64, A, V, True, 1e-3)
    loss32, g32 = infonce_loss_and_grads(p32, A, V, True, 1e-3)  # float64 features, cast by the head
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for key in g64:
        assert g32[key].dtype == np.asarray(p32[key]).dtype
        np.testing.assert_allclose(g32[key], g64[key], rtol=1e-3, atol=1e-5 * np.abs(g64[key]).max(), err_msg=key)
    opt64, opt32 = Adam(p64, learning_rate=1e-2), Adam(p32, learning_rate=1e-2)
    curves = [[train_epoch(p, opt, A, V, 32, np.random.RandomState(e)) for e in range(20)]
              for p, opt in ((p64, opt64), (p32, opt32))]
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-3)
    assert all(p32[k].dtype == np.float32 for k in p32 if k != "log_temperature")
    E32, E64 = project(p32, A, "audio"), project(p64, A, "audio")
    assert E32.dtype == np.float32
    assert np.min(np.sum(E32 * E64, axis=1)) > 0.9999


def test_adam_in_place_update_is_the_textbook_update():
    """Large arrays take the in-place path, small ones (and read-only or 0-d ones) the expression;
    both give the same bits, and the optimiser pickles without its scratch space."""
    import pickle

    rng = np.random.RandomState(0)
    params = {"W": rng.normal(size=(100, 120)), "b": rng.normal(size=30), "log_temperature": np.array(-1.0)}
    params["R"] = rng.normal(size=(90, 100))
    params["R"].flags.writeable = False
    expected = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    opt = Adam(params, learning_rate=1e-2)
    W = params["W"]
    for t in range(1, 4):
        grads = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
        if t == 2:
            opt = pickle.loads(pickle.dumps(opt))
            assert "_scratch" not in opt.__dict__
        opt.step(params, grads)
        lr_t = 1e-2 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + (1 - 0.9) * g
            v2[k] = 0.999 * v2[k] + (1 - 0.999) * g * g
            expected[k] = expected[k] - lr_t * m[k] / (np.sqrt(v2[k]) + 1e-8)
        for k in params:
            np.testing.assert_array_equal(params[k], expected[k], err_msg=k)
    assert params["W"] is W  # updated in place
