"""Strategies that ship with Seamless. Each is declared as a ``seamless.strategies`` entry
point in pyproject.toml (``sma_crossover``/``sma``, ``zscore``/``zscore_reversion``), the same
way a plugin's strategies are; a dotted path ``package.module.Class`` also works."""

from engine.strategies.sma_crossover import SmaCrossover
from engine.strategies.zscore import ZScoreReversion

__all__ = ["SmaCrossover", "ZScoreReversion"]
