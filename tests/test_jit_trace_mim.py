"""JitTrace_MIM against Trace_MIM: the same values, gradients and random draws, and the compiler's own guarantees.

The pair is the linear-Gaussian model of ``test_trace_mim_linear_gaussian.py``
(whose closed forms check Trace_MIM itself), with its parameters in Pyro's
param store as the compiled path requires.
"""

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import NAMES, make_model_guide, make_params

from pyromim import JitTrace_MIM, Trace_MIM


def param_model_guide():
    """The same model and guide with parameters in Pyro's param store, as the
    compiled path requires (closure tensors would be baked in as constants)."""
    init = {n: v.detach() for n, v in make_params().items()}

    def params():
        return {n: pyro.param(n, init[n]) for n in NAMES}

    def model(x):
        return make_model_guide(params())[0](x)

    def guide(x):
        return make_model_guide(params())[1](x)

    return model, guide


def test_jit_gives_the_same_values_and_gradients_as_python():
    x = torch.randn(25)
    model, guide = param_model_guide()
    results = []
    for cls in (Trace_MIM, JitTrace_MIM):
        pyro.clear_param_store()
        loss_fn = cls(num_particles=3, vectorize_particles=True, max_plate_nesting=1)
        loss_fn.loss(model, guide, x)  # compiles (using extra random draws)
        out = []
        for step in range(3):
            pyro.set_rng_seed(10 + step)
            loss = loss_fn.differentiable_loss(model, guide, x)
            leaves = [pyro.param(n).unconstrained() for n in NAMES]
            grads = torch.autograd.grad(loss, leaves)
            out.append(torch.stack([loss.detach()] + list(grads)))
        results.append(torch.stack(out))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-5)


def test_jit_follows_beta_changes_without_recompiling():
    x = torch.randn(25)
    model, guide = param_model_guide()
    values = {}
    for cls in (Trace_MIM, JitTrace_MIM):
        loss_fn = cls(symmetric=False, q_x="data", max_plate_nesting=1)
        loss_fn.loss(model, guide, x)  # compiles (using extra random draws)
        out = []
        for beta in (0.2, 0.9):
            loss_fn.beta = beta
            pyro.set_rng_seed(3)
            out.append(loss_fn.loss(model, guide, x))
        values[cls] = out
    assert values[Trace_MIM][0] != pytest.approx(values[Trace_MIM][1])
    assert values[JitTrace_MIM] == pytest.approx(values[Trace_MIM], rel=1e-5)


def test_jit_warnings_are_kept_out_unless_asked_for():
    x = torch.randn(25)
    model, guide = param_model_guide()
    caught = {}
    for ignore in (True, False):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            JitTrace_MIM(ignore_jit_warnings=ignore, max_plate_nesting=1).loss(model, guide, x)
        caught[ignore] = [w for w in record if issubclass(w.category, (DeprecationWarning, torch.jit.TracerWarning))]
    assert JitTrace_MIM().ignore_jit_warnings  # the default keeps the console quiet
    assert not caught[True]
    assert caught[False]  # torch.jit.trace's own warnings reach a user who asks for them


def test_jit_draws_what_python_draws_from_the_first_call_and_compiles_each_batch_size():
    # compiling runs the programs with extra draws; the random state is reset
    # afterwards, and a smaller (last) batch gets its own graph instead of the
    # first one's plate size
    x = torch.randn(25)
    model, guide = param_model_guide()
    jit, python = JitTrace_MIM(max_plate_nesting=1), Trace_MIM(max_plate_nesting=1)
    for n in (25, 10, 25, 10):
        pyro.set_rng_seed(n)
        expected = python.loss(model, guide, x[:n])
        pyro.set_rng_seed(n)
        assert jit.loss(model, guide, x[:n]) == pytest.approx(expected, rel=1e-6)


def test_jit_traces_on_a_fresh_thread_except_under_thread_local_modes():
    # tracing records the Python call stack of every operation, so the programs are
    # traced on a new thread (whose stack starts empty); under inference mode, which a
    # new thread would not inherit, they are traced in place; same values either way
    import threading

    model, guide = param_model_guide()
    threads = []

    def recording_model(x):
        if torch.jit.is_tracing():
            threads.append(threading.current_thread())
        return model(x)

    x = torch.randn(25)
    pyro.set_rng_seed(1)
    expected = Trace_MIM(max_plate_nesting=1).loss(recording_model, guide, x)
    pyro.set_rng_seed(1)
    assert JitTrace_MIM(max_plate_nesting=1).loss(recording_model, guide, x) == pytest.approx(expected, rel=1e-6)
    assert threads and all(t is not threading.main_thread() for t in threads)
    threads.clear()
    pyro.set_rng_seed(1)
    with torch.inference_mode():
        assert JitTrace_MIM(max_plate_nesting=1).loss(recording_model, guide, x) == pytest.approx(expected, rel=1e-6)
    assert threads and all(t is threading.main_thread() for t in threads)


def test_jit_graphs_are_freed_with_the_loss():
    # a function traced by torch.jit.trace stays in torch's global compilation unit for the
    # life of the process; the compiled loss keeps its graphs in units of its own
    import gc
    import weakref

    model, guide = param_model_guide()
    before = len(torch.jit._state._python_cu.get_functions())
    loss_fn = JitTrace_MIM(max_plate_nesting=1)
    for n in (25, 10):
        loss_fn.differentiable_loss(model, guide, torch.randn(n)).backward()
    graphs = [weakref.ref(fn) for fn in loss_fn._compiled.compiled.values()]
    assert len(graphs) == 2
    del loss_fn
    gc.collect()
    assert all(ref() is None for ref in graphs)
    assert len(torch.jit._state._python_cu.get_functions()) == before


def test_jit_falls_back_to_pyros_tracing_without_torchs_private_entry_point(monkeypatch):
    """Where torch lacks the private tracing function the own compilation units use,
    graphs go to torch's global unit through Pyro's jit.trace, with the same values."""
    monkeypatch.delattr(torch._C, "_create_graph_by_tracing")
    x = torch.randn(25)
    model, guide = param_model_guide()
    values = []
    for cls in (Trace_MIM, JitTrace_MIM):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        loss_fn = cls(max_plate_nesting=1)
        values.append([loss_fn.loss(model, guide, x) for _ in range(2)])
    assert values[0] == values[1]
    assert type(loss_fn._compiled).__module__ == "pyro.ops.jit"


def test_jit_raises_compilation_error_and_runs_the_python_loss_when_told():
    from pyromim.infer import CompilationError

    model, guide = param_model_guide()

    def counted_model(x, n):  # a non-tensor positional argument cannot be traced
        return model(x)

    def counted_guide(x, n):
        return guide(x)

    x = torch.randn(25)
    jit = JitTrace_MIM.like(Trace_MIM(symmetric=False, beta=0.3, max_plate_nesting=1))
    assert (jit.symmetric, jit.beta, jit.max_plate_nesting) == (False, 0.3, 1)
    with pytest.raises(CompilationError, match="could not compile.*(cannot be traced|inputs to traced functions)"):
        jit.loss(counted_model, counted_guide, x, 25)
    jit.compile = False
    pyro.set_rng_seed(0)
    expected = Trace_MIM(symmetric=False, beta=0.3, max_plate_nesting=1).loss(counted_model, counted_guide, x, 25)
    pyro.set_rng_seed(0)
    assert jit.loss(counted_model, counted_guide, x, 25) == expected


def test_jit_graphs_drop_size_bookkeeping_and_keep_values_and_gradients_bit_for_bit():
    # each graph is specific to its input shapes, so the sizes Pyro's programs compute at
    # every step (plate sizes, expand shapes) are folded into constants; nothing on the
    # data is reordered, so values and gradients equal the Python loss's exactly
    from pyromim import build_model

    x = torch.randn(64, 2)
    results = {}
    for cls in (Trace_MIM, JitTrace_MIM):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        vae = build_model("toy4")
        loss_fn = cls()
        loss_fn.loss(vae.model, vae.guide, x)  # compiled without gradients (as validation does), then trained
        out = []
        for step in range(3):
            pyro.set_rng_seed(step)
            loss = loss_fn.differentiable_loss(vae.model, vae.guide, x)
            out.append([loss.detach(), *torch.autograd.grad(loss, list(vae.parameters()))])
        results[cls] = out
    graph = next(iter(loss_fn._compiled.compiled.values())).graph
    kinds = [node.kind() for node in graph.nodes()]
    assert "aten::linear" in kinds
    assert not {"aten::size", "aten::Int", "prim::NumToTensor"} & set(kinds)
    for python, compiled in zip(results[Trace_MIM], results[JitTrace_MIM]):
        assert all(torch.equal(a, b) for a, b in zip(python, compiled))


def test_jit_graphs_keep_sizes_that_depend_on_values():
    # a mask's count of True is not the traced one on other data: such a graph keeps its size
    # computations, and gives the eager result on data with another count
    from pyromim.ops.jit import simplified

    def masked(x):
        kept = x[x > 0]
        return kept.expand(3, kept.shape[0]).sum(0)

    def plain(x):
        return x.expand(3, x.shape[0]).sum(0)

    def sizes(graph):
        return sum(node.kind() == "aten::size" for node in graph.nodes())

    example = torch.tensor([1.0, -1.0, 2.0, -3.0, 0.5])
    for fn, kept in ((masked, 1), (plain, 0)):
        graph = torch.jit.trace(fn, example, check_trace=False).graph
        assert sizes(graph) == 1
        assert sizes(simplified(graph)) == kept
    other = torch.tensor([1.0, 2.0, -1.0, 3.0, 4.0, 5.0])
    compiled = torch._C.CompilationUnit().create_function(
        "masked", simplified(torch.jit.trace(masked, example, check_trace=False).graph)
    )
    assert torch.equal(compiled(other), masked(other))


def test_jit_graphs_take_their_own_parameters_and_the_first_call_is_the_python_loss():
    # a keyword argument switches a parameter on: each graph takes the parameters its
    # own programs use; each signature's first call runs the Python loss, and the graph
    # traced after it draws nothing the next call would see
    def model(x, shifted=False):
        shift = pyro.param("shift", torch.tensor(0.3)) if shifted else 0.0
        loc = pyro.param("loc", torch.tensor(0.1))
        with pyro.plate("data", x.shape[-1]):
            z = pyro.sample("z", dist.Normal(loc, 1.0))
            pyro.sample("x", dist.Normal(z + shift, 0.7), obs=x)

    def guide(x, shifted=False):
        a = pyro.param("a", torch.tensor(0.4))
        with pyro.plate("data", x.shape[-1]):
            pyro.sample("z", dist.Normal(a * x, 0.6))

    x = torch.randn(25)
    values = {}
    for cls in (Trace_MIM, JitTrace_MIM):
        pyro.clear_param_store()
        loss_fn = cls(max_plate_nesting=1)
        out = []
        for step, shifted in enumerate((False, True, False, True)):
            pyro.set_rng_seed(step)
            loss = loss_fn.differentiable_loss(model, guide, x, shifted=shifted)
            names = ["a", "loc", "shift"] if shifted else ["a", "loc"]
            grads = torch.autograd.grad(loss, [pyro.param(n).unconstrained() for n in names])
            out.append([loss.detach(), *grads, torch.rand(())])
        values[cls] = out
    assert sorted(map(len, loss_fn._compiled.param_names.values())) == [2, 3]
    for python, compiled in zip(values[Trace_MIM], values[JitTrace_MIM]):
        assert all(torch.equal(a, b) for a, b in zip(python, compiled))


def test_jit_graphs_create_the_tensors_they_mutate_at_every_run():
    # constant propagation leaves a tensor built from constants alone in the graph when
    # the graph writes to it: folded into a constant, it would carry one run's writes to the next
    from pyromim.ops.jit import simplified

    def accumulate(x):
        total = torch.zeros(3)
        total.add_(x)
        return total * 2

    graph = simplified(torch.jit.trace(accumulate, torch.ones(3), check_trace=False).graph)
    compiled = torch._C.CompilationUnit().create_function("accumulate", graph)
    x = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(compiled(x), accumulate(x)) and torch.equal(compiled(x), accumulate(x))


def test_jit_draws_an_autoregressive_decoders_samples_as_python_does():
    """The decoder side's ancestral draw of a MADE decoder (random noise drawn inside the
    compiled graph, a loop over the 64 pixels unrolled into it) gives the Python loss's values."""
    from pyromim import build_model

    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((32, 64), 0.3), generator=g)
    values = {}
    for cls in (Trace_MIM, JitTrace_MIM):
        pyro.clear_param_store()
        pyro.set_rng_seed(1)
        model = build_model("digits_made")
        loss_fn = cls()
        out = []
        for step in range(3):
            pyro.set_rng_seed(10 + step)
            out.append(loss_fn.differentiable_loss(model.model, model.guide, x).item())
        values[cls] = out
    assert values[JitTrace_MIM] == pytest.approx(values[Trace_MIM], rel=1e-5)
    assert len(set(values[Trace_MIM])) == 3  # each step draws anew
