"""Stop conditions (``from raylite.tune.stopper import MaximumIterationStopper``)."""

from raylite.tune._stopper import (CombinedStopper, FunctionStopper, MaximumIterationStopper,
                                   NoopStopper, Stopper, TimeoutStopper, TrialPlateauStopper)

__all__ = ["Stopper", "MaximumIterationStopper", "FunctionStopper", "CombinedStopper",
           "TimeoutStopper", "TrialPlateauStopper", "NoopStopper"]
