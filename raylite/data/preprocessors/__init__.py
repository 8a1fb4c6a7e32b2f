"""raylite.data.preprocessors: fit statistics on a Dataset, transform Datasets and batches
(Ray 2.2's ``ray.data.preprocessors``).

    from raylite.data.preprocessors import Chain, OneHotEncoder, StandardScaler

    preprocessor = Chain(StandardScaler(columns=["age"]), OneHotEncoder(columns=["city"]))
    train = preprocessor.fit_transform(train_ds)      # statistics from Data aggregations
    valid = preprocessor.transform(valid_ds)
    preprocessor.stats_                                 # what fit found
    preprocessor.transform_batch(pandas_df)             # one batch, as the predictors do

Given to a trainer (``XGBoostTrainer(..., preprocessor=p)``) a preprocessor is fitted on the
``"train"`` dataset, applied to all of them, and saved in every checkpoint.
"""

from raylite.data.preprocessors._base import (BatchMapper, Chain, Preprocessor,
                                              PreprocessorNotFittedException)
from raylite.data.preprocessors._concatenator import Concatenator
from raylite.data.preprocessors._encoders import (Categorizer, LabelEncoder, OneHotEncoder,
                                                  OrdinalEncoder, SimpleImputer)
from raylite.data.preprocessors._scalers import (MaxAbsScaler, MinMaxScaler, Normalizer,
                                                 RobustScaler, StandardScaler)

__all__ = ["Preprocessor", "PreprocessorNotFittedException", "Chain", "BatchMapper",
           "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "Normalizer",
           "SimpleImputer", "OneHotEncoder", "OrdinalEncoder", "LabelEncoder", "Categorizer",
           "Concatenator"]
