"""The InceptionV3 tumor-class judge: model, weights, training and metrics.

Also the feature extractor of the GAN metrics: `load_classifier(path).features_and_probs(images)`
gives pooled 2048-d features and class probabilities in one pass.
"""

from classifier.model import (TumorClassifier, build_classifier, from_uint8, load_classifier,
                              predict_features_and_probs, save_classifier)

__all__ = ["TumorClassifier", "build_classifier", "from_uint8", "load_classifier", "predict_features_and_probs",
           "save_classifier"]
