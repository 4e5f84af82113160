"""The compiled scorer against the pipeline it is compiled from: parity, encoding, saving, refusals."""

import json

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from apps.serving import runtime
from apps.training import pipeline as training
from apps.training.synthetic import (
    CATEGORICAL_FEATURES,
    FEATURES,
    LABEL,
    NUMERIC_FEATURES,
    generate_transactions,
)


@pytest.fixture(scope="module")
def trained():
    """The demo pipeline trained on synthetic data, its signature and its holdout."""
    frame = generate_transactions(12_000, seed=7)
    result = training.train(frame, seed=7, bootstrap=0)
    _, holdout = training.split(frame, seed=7)
    schema = [{"name": column["name"], "type": column["dtype"]} for column in result.schema]
    return result.pipeline, schema, holdout


@pytest.fixture(scope="module")
def scorer(trained):
    pipeline, schema, _ = trained
    return runtime.compile_pipeline(pipeline, schema)


def test_compiled_scorer_matches_the_pipeline_on_the_holdout(trained, scorer):
    pipeline, _, holdout = trained
    assert len(holdout) == 3_000
    assert runtime.parity(pipeline, scorer, holdout) <= runtime.PARITY_TOLERANCE


def test_features_are_in_signature_order_with_the_encoder_categories(trained, scorer):
    pipeline, schema, _ = trained
    assert [f.name for f in scorer.features] == [column["name"] for column in schema] == FEATURES
    encoder = pipeline.named_steps["preprocess"].named_transformers_["categorical"]
    for name, learnt in zip(CATEGORICAL_FEATURES, encoder.categories_, strict=True):
        feature = next(f for f in scorer.features if f.name == name)
        assert feature.kind == "categorical"
        assert feature.categories == tuple(learnt)
    assert {f.kind for f in scorer.features if f.name in NUMERIC_FEATURES} == {"numeric"}
    assert next(f for f in scorer.features if f.name == "hour").dtype == "long"


def test_rows_come_back_in_order_and_an_empty_batch_is_empty(trained, scorer):
    _pipeline, _, holdout = trained
    rows = runtime._request_rows(holdout[FEATURES].head(50))
    forward = scorer.predict_proba(rows)
    backward = scorer.predict_proba(rows[::-1])
    assert forward.shape == (50,)
    assert forward.dtype == np.float64
    np.testing.assert_array_equal(forward, backward[::-1])
    assert len(set(forward.round(12))) > 10  # not one constant answer
    assert scorer.predict_proba([]).shape == (0,)


def test_unknown_category_and_missing_values_score_as_the_pipeline_scores_them(trained, scorer):
    pipeline, _, holdout = trained
    frame = holdout[FEATURES].head(20).astype({name: object for name in CATEGORICAL_FEATURES})
    frame.loc[frame.index[:10], "merchant_category"] = "crypto_exchange"  # never seen in training
    frame.loc[frame.index[5:15], "channel"] = None
    frame.loc[frame.index[::3], "ip_risk_score"] = np.nan
    rows = runtime._request_rows(frame)
    assert rows[0]["merchant_category"] == "crypto_exchange"
    assert rows[5]["channel"] is None
    assert rows[0]["ip_risk_score"] is None
    expected = pipeline.predict_proba(frame)[:, 1]
    np.testing.assert_allclose(scorer.predict_proba(rows), expected, rtol=0, atol=runtime.PARITY_TOLERANCE)
    encoded = scorer.encode(rows)
    assert np.isnan(encoded[:10, FEATURES.index("merchant_category")]).all()
    # Batches are encoded column by column, small requests row by row: the same matrix.
    one_by_one = np.vstack([scorer.encode([row]) for row in rows])
    np.testing.assert_array_equal(one_by_one, encoded)
    np.testing.assert_array_equal(scorer.predict_proba(rows[:3]), scorer.predict_proba(rows)[:3])


def test_predict_matrix_takes_encoded_rows_in_signature_order(trained, scorer):
    _, _, holdout = trained
    rows = runtime._request_rows(holdout[FEATURES].head(30))
    np.testing.assert_array_equal(scorer.predict_matrix(scorer.encode(rows)), scorer.predict_proba(rows))
    with pytest.raises(ValueError, match="expected a \\(rows, 11\\) matrix"):
        scorer.predict_matrix(np.zeros((3, 4)))


def test_saved_scorer_loads_and_predicts_the_same_without_pickle(trained, scorer, tmp_path):
    pipeline, _, holdout = trained
    scorer.save(tmp_path / "fast_scorer")
    assert sorted(p.name for p in (tmp_path / "fast_scorer").iterdir()) == ["model.treelite", "scorer.json"]
    spec = json.loads((tmp_path / "fast_scorer" / "scorer.json").read_text())
    assert [f["name"] for f in spec["features"]] == FEATURES
    loaded = runtime.CompiledScorer.load(tmp_path / "fast_scorer")
    rows = runtime._request_rows(holdout[FEATURES].head(200))
    np.testing.assert_array_equal(loaded.predict_proba(rows), scorer.predict_proba(rows))
    assert runtime.parity(pipeline, loaded, holdout) <= runtime.PARITY_TOLERANCE


def test_parity_catches_a_scorer_of_another_model(trained):
    pipeline, schema, holdout = trained
    other = training.train(generate_transactions(6_000, seed=8), seed=8, bootstrap=0).pipeline
    assert runtime.parity(pipeline, runtime.compile_pipeline(other, schema), holdout) > 1e-3


def test_pyfunc_scorer_answers_like_the_pipeline(trained):
    pipeline, schema, holdout = trained
    pyfunc = runtime.PyfuncScorer(pipeline, runtime.features_from_schema(schema))
    assert pyfunc.kind == "pyfunc"
    assert runtime.parity(pipeline, pyfunc, holdout.head(500)) == 0.0

    class PredictOnly:  # an MLflow pyfunc model: predict() returns the score
        def predict(self, frame):
            return frame["amount"].to_numpy() / 1000

    scores = runtime.PyfuncScorer(PredictOnly(), runtime.features_from_schema(schema)).predict_proba(
        [{"amount": 500.0}, {"amount": 20}]
    )
    np.testing.assert_array_equal(scores, [0.5, 0.02])


def _fitted(pipeline):
    frame = generate_transactions(3_000, seed=1)
    return pipeline.fit(frame[FEATURES], frame[LABEL])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: _fitted(
                Pipeline(
                    [
                        ("preprocess", ColumnTransformer([("numeric", "passthrough", NUMERIC_FEATURES)])),
                        ("model", DummyClassifier()),
                    ]
                )
            ),
            "HistGradientBoostingClassifier",
        ),
        (lambda: _fitted(_with_encoder(OrdinalEncoder())), "unknown categories to NaN"),
        (
            lambda: _fitted(
                _with_encoder(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
            ),
            "unknown categories to NaN",
        ),
    ],
)
def test_other_pipelines_are_refused(make, message, trained):
    _, schema, _ = trained
    with pytest.raises(runtime.NotCompilable, match=message):
        runtime.compile_pipeline(make(), schema)


def _with_encoder(encoder):
    pipeline = training.build_pipeline(max_iter=5)
    preprocess = pipeline.named_steps["preprocess"]
    preprocess.set_params(categorical=encoder)
    return pipeline


def test_a_signature_without_a_model_input_is_refused(trained):
    pipeline, schema, _ = trained
    with pytest.raises(runtime.NotCompilable, match="the signature lacks: channel"):
        runtime.compile_pipeline(pipeline, [column for column in schema if column["name"] != "channel"])
    with pytest.raises(runtime.NotCompilable, match="no input signature"):
        runtime.schema_of_signature(None)


def test_request_rows_are_plain_python_values(trained):
    _, _, holdout = trained
    row = runtime._request_rows(holdout[FEATURES].head(1))[0]
    assert type(row["hour"]) is int
    assert type(row["amount"]) is float
    assert type(row["channel"]) is str
