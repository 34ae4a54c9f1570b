"""The private torch and Pyro entry points behind pyromim.ops.private: each still exists in the
installed versions (a failure names the one an upgrade removed), each wrapper does what the
caller relies on, and each fallback is taken when its entry point is missing."""

import importlib

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyromim.infer.enumeration import pack
from pyromim.ops import private
from pyromim.ops.jit import simplified

#: (module, attribute) of every private entry point pyromim.ops.private reaches
ENTRY_POINTS = [
    ("torch._C", "_create_graph_by_tracing"),
    ("torch._C", "CompilationUnit"),
    ("torch._C", "_jit_pass_peephole"),
    ("torch._C", "_jit_pass_constant_propagation"),
    ("torch._C", "_jit_pass_dce"),
    ("torch._C", "_get_graph_executor_optimize"),
    ("torch._C", "_len_torch_function_stack"),
    ("pyro.ops.jit", "_hashable_args_kwargs"),
    ("pyro.infer.traceenum_elbo", "_compute_model_factors"),
    ("pyro.nn.module", "_is_module_local_param_enabled"),
    ("lightning.pytorch.callbacks.ModelCheckpoint", "_save_checkpoint"),
    ("lightning.pytorch.strategies.launchers.subprocess_script._SubprocessScriptLauncher", "_call_children_scripts"),
]


def _import(dotted):
    """A module, or a class inside one (``lightning.pytorch.callbacks.ModelCheckpoint``)."""
    try:
        return importlib.import_module(dotted)
    except ImportError:
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("module", "name"), ENTRY_POINTS)
def test_every_private_entry_point_exists_in_the_installed_versions(module, name):
    assert hasattr(_import(module), name), (
        f"{module}.{name} is gone in this version (torch {torch.__version__}, pyro {pyro.__version__}): "
        f"update pyromim.ops.private and its fallback"
    )


def test_only_pyromim_ops_private_calls_private_torch_and_pyro_functions():
    import pathlib
    import re

    root = pathlib.Path(private.__file__).resolve().parents[1]
    pattern = re.compile(
        r"\b(torch\._C\._|torch\.jit\._|pyro(\.\w+)*\._\w|from pyro(\.\w+)* import _"
        r"|_logger_connector|_batches_that_stepped|epoch_loop\._results|_call_children_scripts)"
    )
    offenders = [
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if path.name != "private.py" and pattern.search(path.read_text())
    ]
    assert not offenders


def _traced(fn, example):
    return private.create_graph_by_tracing(fn, [example], True, False)


def test_tracing_compiles_into_a_unit_of_its_own_with_the_eager_values():
    def fn(x):
        return (x.exp() * 2).sum(0, keepdim=True).expand(3, 1)

    x = torch.randn(4, 1)
    compiled = private.compile_graph(simplified(_traced(fn, x)), "f")
    torch.testing.assert_close(compiled(x), fn(x), rtol=0, atol=0)
    assert private.tracing_supported()


def test_without_the_tracing_entry_point_tracing_is_not_supported(monkeypatch):
    monkeypatch.delattr(torch._C, "_create_graph_by_tracing")
    assert not private.tracing_supported()


def test_without_a_graph_pass_the_graph_stays_as_traced(monkeypatch):
    graph = _traced(lambda x: x.expand(3, x.shape[0]).sum(0), torch.ones(2))
    assert private.simplify_graph(graph, keep_sizes=False) is not graph
    monkeypatch.delattr(torch._C, "_jit_pass_dce")
    assert private.simplify_graph(graph, keep_sizes=False) is graph


def test_executor_and_function_mode_settings_fall_back_to_torchs_defaults(monkeypatch):
    with torch.jit.optimized_execution(False):
        assert private.graph_executor_optimize() is False
    assert private.torch_function_mode_depth() == 0
    monkeypatch.delattr(torch._C, "_get_graph_executor_optimize")
    monkeypatch.delattr(torch._C, "_len_torch_function_stack")
    assert private.graph_executor_optimize() is True
    assert private.torch_function_mode_depth() == 0


def test_the_compiled_cache_key_is_pyros_and_a_missing_one_is_named(monkeypatch):
    key = private.hashable_args_kwargs((torch.ones(2), torch.ones(3)), {"b": 1, "a": "x"})
    assert key == (2, (("a", "x"), ("b", 1)))
    monkeypatch.delattr(pyro.ops.jit, "_hashable_args_kwargs")
    with pytest.raises(RuntimeError, match=r"pyro\.ops\.jit\._hashable_args_kwargs"):
        private.hashable_args_kwargs((), {})


def test_model_factors_are_the_ones_traceenum_elbo_sums(monkeypatch):
    import pyro.infer.traceenum_elbo as traceenum_elbo
    from pyro.infer import config_enumerate
    from pyro.infer.enum import get_importance_trace

    def model():
        y = pyro.sample("y", dist.Categorical(torch.tensor([0.3, 0.7])), infer={"enumerate": "parallel"})
        pyro.sample("x", dist.Normal(y.float(), 1.0), obs=torch.tensor(0.5))

    def guide():
        pass

    model_trace, guide_trace = get_importance_trace(
        "flat", 0, pyro.poutine.enum(config_enumerate(model), first_available_dim=-1), guide, (), {}
    )
    pack(model_trace, guide_trace)
    costs, log_factors, ordering, sum_dims, scale = private.model_factors(model_trace, guide_trace)
    (terms,) = log_factors.values()
    exact = torch.tensor([0.3, 0.7]).log() + dist.Normal(torch.tensor([0.0, 1.0]), 1.0).log_prob(torch.tensor(0.5))
    torch.testing.assert_close(sum(terms).reshape(-1), exact)
    monkeypatch.delattr(traceenum_elbo, "_compute_model_factors")
    with pytest.raises(RuntimeError, match="_compute_model_factors"):
        private.model_factors(model_trace, guide_trace)


def test_module_local_params_follow_pyros_switch(monkeypatch):
    import pyro.nn.module

    assert private.module_local_params() is False
    with pyro.settings.context(module_local_params=True):
        assert private.module_local_params() is True
    monkeypatch.delattr(pyro.nn.module, "_is_module_local_param_enabled")
    assert private.module_local_params() is False


def test_pending_epoch_metrics_are_logged_at_the_fit_loops_epoch_step(tmp_path):
    """Through a real Lightning run: the checkpoint of an epoch's end carries that epoch's
    training metrics into the logger at the step Lightning logs epoch-end metrics at."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def training_step(self, batch, _):
            loss = (self.w * batch[0]).pow(2).mean()
            self.log("loss", loss, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)), batch_size=2)

    logged = []

    class Logger(CSVLogger):
        def log_metrics(self, metrics, step=None):
            logged.append((dict(metrics), step))

    class Hook(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            private.log_pending_epoch_metrics(trainer)

    trainer = pl.Trainer(
        max_epochs=1, logger=Logger(tmp_path), callbacks=[Hook()], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(Tiny())
    ours = [(metrics, step) for metrics, step in logged if "loss" in metrics]
    # logged by the hook, then once more by Lightning itself after the epoch (which fit's
    # writer skips), both at Lightning's epoch-end step: two batches stepped, 2 - 1
    assert [step for _, step in ours] == [1, 1]
    # w = 1, then 1 - 0.1 * 2 = 0.8: the epoch's mean loss is (1 + 0.64) / 2
    assert ours[0][0]["loss"] == pytest.approx(0.82)
