import numpy as np
import pytest

from skavc._head import Adam, infonce_loss_and_grads, init_head_params, project, train_epoch


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
