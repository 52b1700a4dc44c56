"""The layer registry: registration, lookup, configs, and entry-point discovery."""

import json
import textwrap

import dlx
import pytest
from dlx import registry


@pytest.fixture
def scratch_names():
    """Names registered by a test are removed afterwards."""
    before = set(registry._layers)
    yield
    for name in set(registry._layers) - before:
        del registry._layers[name], registry._providers[name]


def test_decorator_plain_named_and_call(scratch_names):
    @dlx.register_layer
    class Square(dlx.Layer):
        def forward(self, x, train=True):
            self.x = x
            return x**2

        def backward(self, dout):
            return 2 * self.x * dout

    @dlx.register_layer("Cube")
    class CubeLayer(dlx.Layer):
        pass

    class Half(dlx.Layer):
        pass

    assert dlx.register_layer(Half) is Half
    assert dlx.get_layer("Square") is Square
    assert dlx.get_layer("Cube") is CubeLayer
    assert dlx.get_layer("Half") is Half
    assert Square().to_config() == {"type": "Square"}


def test_duplicate_name_names_the_holder(scratch_names):
    class ReLU(dlx.Layer):
        pass

    with pytest.raises(
        ValueError,
        match=r"'ReLU' is already registered by dlx\.layers\.activation\.ReLU \(from dlx\)",
    ):
        dlx.register_layer(ReLU)
    assert dlx.get_layer("ReLU") is dlx.layers.ReLU  # a built-in is never shadowed silently


def test_override_replaces(scratch_names):
    @dlx.register_layer("Mine")
    class First(dlx.Layer):
        pass

    @dlx.register_layer("Mine", override=True)
    class Second(dlx.Layer):
        pass

    assert dlx.get_layer("Mine") is Second


@pytest.mark.parametrize(
    "thing", [int, lambda x: x, object()], ids=["class", "function", "instance"]
)
def test_only_layers_can_be_registered(thing):
    with pytest.raises(TypeError, match="only subclasses of dlx.Layer can be registered"):
        dlx.register_layer(thing)
    with pytest.raises(TypeError, match="only subclasses of dlx.Layer can be registered"):
        dlx.register_layer("Named")(thing)


def test_unknown_name_lists_close_matches():
    with pytest.raises(
        KeyError, match=r"no layer named 'Conv2D' is registered; did you mean 'Conv2d'"
    ):
        dlx.get_layer("Conv2D")


def test_list_layers_sorted_and_filtered():
    names = dlx.list_layers()
    assert names == sorted(names)
    assert {"Affine", "BatchNorm", "Conv2d", "Dropout", "MaxPool2d", "ReLU"} <= set(names)
    assert dlx.list_layers("*Pool*") == ["AvgPool2d", "GlobalAvgPool2d", "MaxPool2d"]


BUILT_INS = {
    "Add": {},
    "Affine": {"in_features": 3, "out_features": 2},
    "AvgPool2d": {"kernel_size": [2, 3], "stride": 1},
    "BatchNorm": {"num_features": 4, "momentum": 0.8},
    "Concat": {"axis": 2},
    "Conv2d": {"in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": "same"},
    "Dropout": {"p": 0.25},
    "Flatten": {},
    "GlobalAvgPool2d": {},
    "MaxPool2d": {"kernel_size": 3, "stride": 2, "padding": 1},
    "Mul": {},
    "ReLU": {},
    "Sigmoid": {},
    "Tanh": {},
}


def test_every_built_in_is_covered():
    assert set(BUILT_INS) == {n for n, p in registry.layer_providers().items() if p == "dlx"}


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_built_in_config_round_trip(name):
    layer = dlx.build_layer({"type": name, **BUILT_INS[name]})
    assert type(layer) is dlx.get_layer(name)
    config = layer.to_config()
    again = dlx.build_layer(json.loads(json.dumps(config)))
    assert again.to_config() == config


def test_build_layer_errors():
    with pytest.raises(ValueError, match="a dict with a 'type' key"):
        dlx.build_layer({"in_features": 3})
    with pytest.raises(TypeError, match=r"cannot build 'ReLU' from \{'slope': 2\}"):
        dlx.build_layer({"type": "ReLU", "slope": 2})


def test_sequential_config_round_trip():
    net = dlx.models.deep_conv_net(batchnorm=True, weight_decay=0.01)
    config = json.loads(json.dumps(net.to_config()))
    again = dlx.Sequential.from_config(config)
    assert again.to_config() == net.to_config()
    assert [type(a) for a in again] == [type(b) for b in net]
    assert {k: v.shape for k, v in again.params.items()} == {
        k: v.shape for k, v in net.params.items()
    }


def test_sequential_from_config_refuses_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown keys in network config: \['optimizer'\]"):
        dlx.Sequential.from_config({"layers": [], "optimizer": "sgd"})


def test_unregistered_layer_cannot_make_a_config():
    class Loose(dlx.Layer):
        pass

    with pytest.raises(ValueError, match="is not registered; decorate it with @dlx.register_layer"):
        Loose().to_config()


def _fake_distribution(root, name, entry_points):
    """A dist-info folder on sys.path, as an installed distribution would leave."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[dlx.layers]\n" + "\n".join(f"{k} = {v}" for k, v in entry_points.items()) + "\n"
    )


@pytest.fixture
def plugin_site(tmp_path, monkeypatch, scratch_names):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("DLX_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield tmp_path
    monkeypatch.undo()
    registry.refresh_plugins()


def test_entry_point_layer_is_discovered_lazily(plugin_site):
    (plugin_site / "swish_plugin.py").write_text(
        textwrap.dedent("""
        import dlx

        class Swish(dlx.Layer):
            def forward(self, x, train=True):
                return x
            def backward(self, dout):
                return dout
    """)
    )
    _fake_distribution(plugin_site, "swish-plugin", {"Swish": "swish_plugin:Swish"})
    registry.refresh_plugins()
    assert dlx.get_layer("Swish").__name__ == "Swish"
    assert registry.layer_providers()["Swish"] == "swish-plugin"


def test_broken_plugins_warn_and_the_rest_works(plugin_site):
    (plugin_site / "not_a_layer.py").write_text("class Thing:\n    pass\n")
    _fake_distribution(
        plugin_site,
        "broken-plugin",
        {"Missing": "no_such_module:Layer", "Thing": "not_a_layer:Thing"},
    )
    with pytest.warns(RuntimeWarning) as caught:
        registry.refresh_plugins()
    messages = [str(w.message) for w in caught]
    assert any(
        "'Missing'" in m and "'broken-plugin'" in m and "No module named 'no_such_module'" in m
        for m in messages
    )
    assert any("'Thing'" in m and "only subclasses of dlx.Layer" in m for m in messages)
    assert dlx.get_layer("Conv2d") is dlx.layers.Conv2d
    assert "Missing" not in dlx.list_layers()


def test_autoload_can_be_turned_off(plugin_site, monkeypatch):
    _fake_distribution(plugin_site, "off-plugin", {"Off": "no_such_module:Off"})
    monkeypatch.setenv("DLX_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry.refresh_plugins()  # no warning: nothing is imported
    assert "Off" not in dlx.list_layers()


def test_builtin_layers_pass_the_conformance_kit():
    from dlx.testing import check_layer

    check_layer(lambda d: dlx.layers.Affine(6, 3, dtype=d), (4, 6), bad_input_shapes=[(4, 5)])
    check_layer(
        lambda d: dlx.layers.Conv2d(2, 3, 3, padding=1, dtype=d),
        (2, 2, 5, 5),
        bad_input_shapes=[(2, 3, 5, 5)],
    )
    check_layer(
        lambda d: dlx.layers.BatchNorm(3, dtype=d), (4, 3, 2, 2), bad_input_shapes=[(4, 2, 2, 2)]
    )
    check_layer(lambda d: dlx.layers.MaxPool2d(2), (2, 2, 4, 4), bad_input_shapes=[(2, 4, 4)])
    check_layer(lambda d: dlx.layers.AvgPool2d(2), (2, 2, 4, 4))
    for cls in (dlx.layers.ReLU, dlx.layers.Sigmoid, dlx.layers.Tanh, dlx.layers.Flatten):
        check_layer(lambda d, cls=cls: cls(), (3, 4))


def test_conformance_kit_fails_a_wrong_layer(scratch_names):
    @dlx.register_layer
    class Doubler(dlx.Layer):
        def forward(self, x, train=True):
            return 2 * x

        def backward(self, dout):
            return dout  # wrong: should be 2 * dout

    from dlx.testing import check_layer

    with pytest.raises(AssertionError, match="gradient of 'x' is wrong"):
        check_layer(lambda d: Doubler(), (2, 3))


def test_conformance_kit_fails_false_inference_claims(scratch_names):
    from dlx.testing import check_layer

    @dlx.register_layer
    class Passthrough(dlx.Layer):
        fresh_inference_output = True  # false: it returns its input

        def forward(self, x, train=True):
            return x

        def backward(self, dout):
            return dout

    with pytest.raises(AssertionError, match="fresh_inference_output, but its output shares"):
        check_layer(lambda d: Passthrough(), (2, 3))

    @dlx.register_layer
    class Negate(dlx.Layer):
        fresh_inference_output = True
        infers_in_place = True  # false: it ignores inplace

        def forward(self, x, train=True, inplace=False):
            return -x

        def backward(self, dout):
            return -dout

    with pytest.raises(AssertionError, match="infers_in_place, but did not return its input"):
        check_layer(lambda d: Negate(), (2, 3))
