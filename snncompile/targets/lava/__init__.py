"""The Lava target: quantized graphs run on Intel's Lava simulator, compared bit for bit with fxsim.

:meth:`LavaTarget.run` takes the request's family: ``"snncompile-ttfs"`` (a TTFS graph:
stock connection processes plus our TTFS neuron, this first part) or ``"snncompile-lif-q"`` (a
quantized LIF graph: stock processes only, the second part, "Quantized LIF graphs").

TTFS graphs
===========

Network.  One ``io.source.RingBuffer`` holds the input spikes of all samples back to back;
each population is one or more stock connection processes carrying its integer matrix
(:func:`snncompile.nirops.composite_matrix`): ``Dense`` when the population's linear nodes are
Affine/Flatten only, ``Sparse`` when they contain a convolution or a pool (its bit-accurate
model, ``PySparseModelBitAcc``, applies the same clip / truncate / weight_exp rules as
``PyDenseModelBitAcc``), all with ``num_weight_bits`` = the graph's weight_bits and
``sign_mode=SignMode.MIXED``; then a :class:`~snncompile.targets.lava.ttfs_runtime.TtfsNeuron` that
runs the integer program of :mod:`snncompile.neurons.ttfs`.  Run with
``Loihi2SimCfg(select_tag="fixed_pt")`` (TtfsNeuron mapped to ``PyTtfsModelFixed`` explicitly).

Weights.  Lava zeroes the low ``k = 8 - num_weight_bits + 1`` bits of MIXED weights and clips
them to [-256, 255]; fxsim uses the graph's integers as they are.  :func:`lava_parts` writes
each matrix M with exponent e exactly in Lava's terms: as one part M / 2**s with exponent
e + s when that is on Lava's grid (the usual case: s = 0; max-pool matrices of ones become
2s with e - 1), because shift_exp(2**s * acc, e - s) == shift_exp(acc, e) for every integer
acc; otherwise as a sum of parts (signed base-2**(9-k) digits) whose higher parts are exact
integers, so that only the lowest one rounds and floor(int + x) = int + floor(x).

Timing (Lava steps vs fxsim steps).  Lava numbers its steps 1, 2, ... and sample k (0-based)
occupies global steps k*P + 1 .. k*P + P, P = the sample period (= T, the readout's t_in_end,
unless a margin is asked for).  Local step t = global step - k*P is fxsim's step t:

* a pixel with count c > 0 is sent by the RingBuffer at local step K - c + 1 (column
  k*P + K - c, :func:`~snncompile.targets.lava.ttfs_runtime.input_raster`);
* a Dense/Sparse process, at step t, first sends what it computed at step t - 1, then
  receives this step's spikes: a spike emitted at step t reaches the next neuron at t + 1.
  So the count-K pixel (step 1) arrives at step 2 = the first population's ``arrival`` A, a
  count-c pixel at A + K - c, as fxsim assumes; a hidden neuron firing at step
  t_in_end + f (count K + 1 - f) reaches the next population at t_in_end + 1 + f = A' + K - c;
  a max-pool fires on the step its first input arrives and its successor's A is one step
  later, as in the quantizer's schedule;
* each TtfsNeuron counts the steps of its sample itself (``t`` = local step, restarted every
  P steps) and, at local step 1, resets u = 0, v = bias, fired = False.

Why nothing leaks from one sample into the next: the last message of sample k that could
carry anything is sent by a connection at the first step of sample k + 1 and was computed
from spikes of local step P.  No population spikes at local step P = T: hidden layer n fires
at most at t_in_end(n) + K = t_in_end(n+1) - 1 <= T - 1, a max-pool at most at its own
t_in_end < T, the input at most at step K < T, and the readout never fires.  So that
message is zero, and the reset at local step 1 sees no input (fxsim's step 1 has none
either: every arrival is >= 2).  Extra margin steps (``period_margin``) keep all of this true:
they only append silent steps, which are dropped from the traces.

Recording.  Each TtfsNeuron model writes its own v and spikes after every step into numpy
files (``recorder="file"``, the default: no extra OS processes, one write per step).  Lava's
Monitor (``recorder="monitor"``) adds one OS process per probed Var and hands its data back
one element per message; both give the same arrays (tests/test_lava.py checks this).

Quantized LIF graphs
====================

The specification is :mod:`snncompile.lif.fixed` (``read_qlif`` / ``simulate_fixed``): Lava's
PyLifModelBitAcc and PyDenseModelBitAcc rules, fresh state per sample, one step of delay per
connection plus the graph's extra delays, an always-on "bias" input, raster column t - 1
emitted at step t.

Network (stock Lava processes only, :func:`run_lif_chunk`).  One ``lif.process.LIFReset`` per
population: its ``PyLifResetModelBitAcc`` is the integer step of LIF's ``PyLifModelBitAcc``
(same ``subthr_dynamics``, threshold and reset) preceded by a periodic zeroing of u and v (the
per-sample reset below).  du, dv and vth = vth_mant come from the graph (non-spiking readouts
get the largest mantissa, 2**17 - 1, as the quantizer assumes); the integer bias beta is split
with ``bias_split`` (the profile's bias mantissa and exponent widths) into bias_mant / bias_exp.  One connection process per graph
connection, carrying the graph's integer weights *as they are*: Lava's own clip_weights +
truncate_weights on the first step do what fxsim's ``clip_truncate`` does (so no
:func:`lava_parts` splitting here: the specification keeps Lava's truncation), with
``weight_exp``, ``num_weight_bits`` = the graph's weight_bits and the graph's sign mode
(``SignMode.MIXED``): ``Dense`` (``Sparse`` for a large, mostly-zero matrix; both bit-accurate
models apply the same rules) for delay 1; ``DelayDense(delays=d - 1)`` for delay d > 1.
DelayDense's bit-accurate model clips and truncates like Dense, computes W s per delay value,
shifts that sum by weight_exp and adds it to a buffer column that reaches the neuron d - 1
steps after Dense's would: with one delay per connection this is exactly Dense's rule, d steps
after the spike (``delays`` <= 63, so d <= 64).  ``io.source.RingBuffer`` sources: the input
raster, the always-on bias input and the quench input (below).

Timing.  Sample k (0-based) occupies global Lava steps kP + 1 .. kP + P, P = T + G (T =
T_in + depth, fxsim's t_total; G = the gap).  Local step t = global step - kP is fxsim's step t
for t <= T; steps T + 1 .. P are the silent gap, recorded but not compared.

* The input RingBuffer sends raster column t - 1 at local step t <= T_in (nothing after): a
  connection of delay d delivers it at t + d, as fxsim reads column t - d - 1 at step t.
* The bias RingBuffer spikes at local steps 1 .. T - d_b (d_b = the smallest bias delay), so a
  bias connection of delay d delivers at 1 + d .. T, as fxsim's ``t - d >= 1``.
* A Dense/Sparse process first sends what it computed on the previous step, then reads this
  step's spikes: a spike of step t reaches the neuron at t + 1; DelayDense at t + d.
* LIFReset(reset_interval=P, reset_offset=1) zeroes u and v when ``time_step % P == 1``, i.e.
  at local step 1 of every sample, *before* the step's input: u = 0 + (a << 6), v = 0 + u +
  bias.  fxsim's step 1 starts from u = v = 0 and has a = 0 (every arrival is at step >= 2), so
  local step 1 is fxsim's step 1 exactly when nothing arrives on it.

Exactness of back-to-back samples.  What crosses a sample boundary is u and v (zeroed by the
reset) and the messages in flight inside the connection processes: at step kP + 1 a Dense sends
what it computed from the spikes of step kP; a DelayDense holds what it computed from the last
d steps.  So sample k + 1 starts exactly as fxsim's fresh state iff no source of a connection of
delay d spiked in the last d steps of sample k's period.  The RingBuffers are silent there by
construction (the input stops at T_in, the bias at T - d_b, the quench at P - 1, and G >= every
delay).  The populations are not: stock processes cannot force a neuron to be silent whatever
its state (a positive bias, a slowly decaying current or recurrent excitation keep it firing,
and any inhibition added to u wraps modulo 2**24 for some u).  So silence is *checked*: every
population's spikes are recorded at every step, and a sample whose preceding boundary was not
silent (:func:`lif_dirty_starts`) is run again in a network of its own (a fresh build is a
fresh state).  The result is exact by construction; ``info["rerun_samples"]`` counts the
samples that needed a build of their own.  ``reset="rebuild"`` skips all of this: plain stock
``LIF`` neurons (``PyLifModelBitAcc``), one network build per sample (about 0.5 s each), no reset
involved; tests/test_lava_lif.py checks that both modes give the same arrays.

Quench.  To make silent boundaries the rule, every population with outgoing connections gets
an inhibitory Dense (weights -256, an exponent per population such that the accumulated
inhibition stays below 2**22 whatever du) from a quench RingBuffer that spikes at local steps
T + 1 .. P - 1, arriving at T + 2 .. P; then G = max delay + 1.  ``quench="auto"`` (default)
leaves it out, with G = max delay, when the network falls silent by itself once its inputs
stop: no recurrence, and every population with outgoing connections has du = 4095 (u keeps no
memory) and no bias (then v only decays).  ``gap`` adds silent steps to G.

Recording.  ``recorder="file"`` (default): the LIFReset model is the stock
``PyLifResetModelBitAcc`` subclassed only to write v and the spikes into numpy files after
each step (:func:`lif_recording_model`; the integer step is the stock one, untouched).
``recorder="monitor"``: the stock model with Lava Monitors on v and s_out (slower; one OS
process per probe); both give the same arrays (tests/test_lava_lif.py).

The functions from :func:`lif_schedule` to :func:`run_lif_network` use only numpy and Lava:
the standalone export (:mod:`.export`) copies those modules whole.
"""

from .target import LavaTarget

__all__ = ["LavaTarget"]
