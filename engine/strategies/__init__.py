"""Strategies that ship with Seamless, loadable by short name or dotted path."""

from engine.strategies.sma_crossover import SmaCrossover
from engine.strategies.zscore import ZScoreReversion

BUILTIN = {
    "sma_crossover": "engine.strategies.sma_crossover.SmaCrossover",
    "sma": "engine.strategies.sma_crossover.SmaCrossover",
    "zscore": "engine.strategies.zscore.ZScoreReversion",
    "zscore_reversion": "engine.strategies.zscore.ZScoreReversion",
}

__all__ = ["BUILTIN", "SmaCrossover", "ZScoreReversion"]
