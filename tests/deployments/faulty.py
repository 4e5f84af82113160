"""A model that raises on every prediction: logged to MLflow as a version whose canary must fail.

Importable (tests.deployments.faulty) so the inference processes can unpickle it.
"""


class RaisingModel:
    def predict_proba(self, frame):
        raise RuntimeError("this model version is broken on purpose")

    def predict(self, frame):
        raise RuntimeError("this model version is broken on purpose")
