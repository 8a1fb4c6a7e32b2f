"""Trial schedulers (``from raylite.tune.schedulers import ASHAScheduler``)."""

from raylite.tune._hyperband import HyperBandScheduler
from raylite.tune._pbt import PopulationBasedTraining
from raylite.tune._scheduler import (ASHAScheduler, AsyncHyperBandScheduler, FIFOScheduler,
                                     MedianStoppingRule, TrialScheduler)

__all__ = ["TrialScheduler", "FIFOScheduler", "AsyncHyperBandScheduler", "ASHAScheduler",
           "MedianStoppingRule", "HyperBandScheduler", "PopulationBasedTraining"]
