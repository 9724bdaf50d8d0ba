"""Three disjoint sets of starts, so that nothing reported was chosen on the starts it is reported on.

- **Training**: the demos' starts (the demo run's seed) and GRPO's own draws (the run seed, offset per rank and
  round): fresh random starts, never a bank's.
- **Validation bank** (:data:`VALIDATION`, 256 starts): every choice (the SFT checkpoint and band, recipes,
  ablations, GRPO's periodic evaluation, ``agent.eval_seed``'s default).
- **Test bank** (:data:`TEST`, 1024 starts, its own seed): touched once, by the final report of a run
  (``scripts/evaluate.py --bank test``, the pipeline's ``test`` stage); a trainer refuses to validate on it.

A bank's start k is drawn by the task's own reset events from the bank's seed (:mod:`openarm_vla.eval.bank`); box
poses are continuous draws, so starts of different seeds coincide with probability 0. Two evaluations of one bank
with the same env count see the very same starts, so two policies' episodes pair up by ``bank_index`` (McNemar).
"""

from __future__ import annotations

from dataclasses import dataclass

from openarm_vla.errors import ConfigError


@dataclass(frozen=True)
class Bank:
    name: str
    seed: int
    episodes: int


VALIDATION = Bank("validation", 10_000, 256)
TEST = Bank("test", 20_000, 1024)
BANKS = {b.name: b for b in (VALIDATION, TEST)}


def bank(name: str) -> Bank:
    if name not in BANKS:
        raise ConfigError(f"--bank {name!r}: expected one of {', '.join(BANKS)}")
    return BANKS[name]


def refuse_test_bank(seed: int, key: str = "agent.eval_seed") -> None:
    """A trainer validates (and so chooses) on what it evaluates: never on the test bank."""
    if seed == TEST.seed:
        raise ConfigError(f"{key}={seed}: that is the test bank's seed, which only the final report may use "
                          f"(validate on the validation bank, seed {VALIDATION.seed}, or another)")
