"""The study's evaluation, in four modules (imported explicitly, so that importing the package pulls in no
TensorFlow): `features` (the judge, ImageNet InceptionV3 from a local file), `run` (`EvaluationConfig`,
`evaluate`), `report` (`results_table`, TensorBoard output), `utility` (train on synthetic, test on real)."""
