"""The default options of TTFS fine-tuning, chosen from the weight bits and the steps K.

Every option left at ``None`` ("auto") is chosen by this rule; a value the user gives wins.
:func:`resolve_options` returns the options and the names it chose, which the log records.

Rule (measured on MNIST-5k 784-340-10, loihi2, fxsim; docs/finetune.md):

* ``scale_policy``: MSE scales at <= 4 weight bits, max-abs above
  (:func:`snncompile.quantize.scale_rule.auto_scale_policy`);
* low precision (weights <= 3 bits or K <= 4 steps) needs larger steps and a longer schedule:
  QAT ``lr`` 1e-3, ``epochs`` 20, learned weight scales and windows (``learn_scales``,
  ``learn_windows``); otherwise lr 1e-4, 5 epochs, fixed scales and windows;
* a spike penalty moves many neurons below their thresholds: QAT ``lr`` 1e-3 whenever it is on;
* ``schedule``: cosine decay of the learning rate to 0 over the run (QAT and HIL);
* HIL (every forward on the target) starts from a QAT result: ``lr`` a tenth of QAT's, so that it
  refines what QAT found instead of undoing it, and ``epochs`` 2.
"""

from __future__ import annotations

from ..errors import InvalidModel
from ..quantize.scale_rule import auto_scale_policy

SCHEDULES = ("constant", "cosine")
LOW_BITS = 3   # weights with this many bits or fewer are "low precision"
LOW_STEPS = 4  # K with this many steps or fewer is "low precision"


def low_precision(bits: int, steps: int) -> bool:
    return bits <= LOW_BITS or steps <= LOW_STEPS


def resolve_options(bits: int, steps: int, mode: str, *, scale_policy=None, lr=None, epochs=None, schedule=None,
                    learn_scales=None, learn_windows=None, spike_penalty: float = 0.0) -> tuple[dict, list]:
    """(options, names chosen automatically) for fine-tuning at ``bits`` weight bits and K = ``steps``."""
    low = low_precision(bits, steps)
    qat_lr = 1e-3 if low or spike_penalty > 0 else 1e-4
    auto = {
        "scale_policy": auto_scale_policy(None, bits),
        "lr": qat_lr if mode == "qat" else qat_lr / 10,
        "epochs": (20 if low else 5) if mode == "qat" else 2,
        "schedule": "cosine",
        "learn_scales": low and mode == "qat",
        "learn_windows": low and mode == "qat",
    }
    given = {"scale_policy": scale_policy, "lr": lr, "epochs": epochs, "schedule": schedule,
             "learn_scales": learn_scales, "learn_windows": learn_windows}
    if scale_policy is not None:
        given["scale_policy"] = auto_scale_policy(scale_policy, bits)
    if schedule is not None and schedule not in SCHEDULES:
        raise InvalidModel(f"--schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if lr is not None and not lr > 0:
        raise InvalidModel(f"--lr must be > 0, got {lr}")
    if epochs is not None and epochs < 0:
        raise InvalidModel(f"--epochs must be >= 0, got {epochs}")
    if mode == "hil" and (learn_scales or learn_windows):
        raise InvalidModel("--learn-scales/--learn-windows apply to QAT; HIL keeps the scales and windows it is given")
    chosen = [k for k, v in given.items() if v is None]
    return {k: (auto[k] if v is None else v) for k, v in given.items()}, chosen
