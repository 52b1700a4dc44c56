"""Resuming training: stopping after epoch 2 and continuing to 4 gives the weights and the
history of an uninterrupted 4-epoch run, bit for bit."""

import dlx
import numpy as np
import pytest
from dlx.checkpoint import load_training

TIMINGS = ("train_seconds", "seconds")


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((260, 1, 8, 8)).astype(np.float32)
    t = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[:, 0, 4:].mean(axis=(1, 2)) > 0)
    return x[:200], t[:200], x[200:], t[200:]


def network():
    L = dlx.layers
    return dlx.Sequential(
        [
            L.Conv2d(1, 4, 3),
            L.BatchNorm(4),
            L.ReLU(),
            L.Flatten(),
            L.Affine(144, 16),
            L.ReLU(),
            L.Dropout(0.3),
            L.Affine(16, 3),
        ]
    )


def without_timings(history):
    return {k: v for k, v in history.items() if k not in TIMINGS}


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
@pytest.mark.parametrize("early_stopping", [None, 1])
def test_stopping_and_resuming_matches_an_uninterrupted_run(tmp_path, optimizer, early_stopping):
    x, t, xv, tv = data()

    def trainer(net, epochs):
        return dlx.Trainer(
            net,
            optimizer,
            epochs=epochs,
            batch_size=40,
            progress=False,
            early_stopping=early_stopping,
        )

    dlx.seed(0)
    whole = network()
    history = trainer(whole, 4).fit(x, t, xv, tv)

    dlx.seed(0)
    first = network()
    half = trainer(first, 2)
    half.fit(x, t, xv, tv)
    dlx.save(first, tmp_path / "run.npz", training=half.state_dict())

    dlx.seed(99)  # the generator's state comes from the checkpoint, not from here
    resumed_net, state = load_training(tmp_path / "run.npz")
    resumed = trainer(resumed_net, 4)
    resumed.load_state_dict(state)
    resumed_history = resumed.fit(x, t, xv, tv, resume=True)

    assert without_timings(resumed_history) == without_timings(history)
    for key, value in whole.state_dict().items():
        np.testing.assert_array_equal(resumed_net.state_dict()[key], value, err_msg=key)


def test_a_checkpoint_with_training_state_still_loads_as_a_model(tmp_path):
    x, t, xv, tv = data()
    net = network()
    trainer = dlx.Trainer(net, "adam", epochs=1, batch_size=50, progress=False)
    trainer.fit(x, t)
    dlx.save(net, tmp_path / "run.npz", training=trainer.state_dict())
    loaded = dlx.load(tmp_path / "run.npz")
    np.testing.assert_array_equal(loaded.predict(xv), net.predict(xv))
    _, state = load_training(dlx.save(net, tmp_path / "model.npz"))
    assert state is None


def test_optimizer_state_round_trip_and_checks():
    opt = dlx.optim.Adam(0.01)
    params = {"w": np.ones(3, np.float32)}
    opt.update(params, {"w": np.full(3, 0.5, np.float32)})
    state = opt.state_dict()
    assert state["settings"]["t"] == 1 and set(state["slots"]["w"]) == {"m", "v"}
    other = dlx.optim.Adam()
    other.load_state_dict(state)
    assert other.t == 1 and other.lr == 0.01
    np.testing.assert_array_equal(other.state["w"]["m"], opt.state["w"]["m"])
    with pytest.raises(ValueError, match="the state is of a Adam optimizer, not of SGD"):
        dlx.optim.SGD().load_state_dict(state)
    with pytest.raises(TypeError, match="the setting 'lr' must be a number"):
        other.load_state_dict({**state, "settings": {**state["settings"], "lr": "fast"}})


def test_resume_states_are_checked(tmp_path):
    opt = dlx.optim.Adam()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="beta1 must lie in"):
        dlx.optim.Adam().load_state_dict({**state, "settings": {**state["settings"], "beta1": 1}})
    with pytest.raises(ValueError, match="step count t must be an int"):
        dlx.optim.Adam().load_state_dict({**state, "settings": {**state["settings"], "t": -1}})

    x, t, _, _ = data()
    net = network()
    trainer = dlx.Trainer(net, "adam", epochs=1, batch_size=50, progress=False)
    trainer.fit(x, t)
    saved = trainer.state_dict()
    other = dlx.Trainer(dlx.models.mlp(64, [8], 3), "adam", epochs=2, progress=False)
    with pytest.raises(ValueError, match="do not fit this network's parameters"):
        other.load_state_dict(saved)

    mt = dlx.Trainer(
        net,
        "adam",
        epochs=1,
        batch_size=50,
        progress=False,
        rng=np.random.Generator(np.random.MT19937(0)),
    )
    mt.fit(x, t)
    with pytest.raises(TypeError, match="numpy.random.default_rng"):
        dlx.save(net, tmp_path / "m.npz", training=mt.state_dict())
